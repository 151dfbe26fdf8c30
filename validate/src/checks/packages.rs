//! The hypervisor package set of `bootstrap::desired::packages`, the iPXE ROM build, and
//! the ROM files of the requested NIC models.
//!
//! Ids: `package.<name>` (one per package), `ipxe.build`, `ipxe.rom.<nic>`.

use std::collections::BTreeMap;

use bootstrap::desired::{self, IPXE_MIN_BUILD, NIC_ROMS};
use bootstrap::ipxe::build_date;
use bootstrap::os::{Family, Platform};

use super::Host;
use crate::check::CheckResult;
use crate::options::Options;

/// Installed versions of `names` (the shared `bootstrap::pkg` query: `dpkg-query`, or
/// `rpm -q --whatprovides` per name, so a name another package provides counts when that
/// package is installed); a name missing from the map is not installed.
pub fn installed(
    host: &Host,
    family: Family,
    names: &[&str],
) -> Result<BTreeMap<String, String>, String> {
    let db = host
        .probe
        .package_db(family)
        .map_err(|e| format!("{e:#}"))?;
    db.installed(names).map_err(|e| format!("{e:#}"))
}

pub fn run(opts: &Options, host: &Host) -> Vec<CheckResult> {
    let Some(platform) = &host.platform else {
        return vec![CheckResult::fail(
            "package.query",
            "unknown OS and no dpkg or rpm database: cannot check packages",
            format!("supported: {}", bootstrap::os::SUPPORTED),
        )];
    };
    let mut out = Vec::new();
    let wanted = desired::packages(platform);
    let names: Vec<&str> = wanted.iter().map(|p| p.name).collect();
    let versions = match installed(host, platform.family, &names) {
        Ok(v) => v,
        Err(e) => {
            return vec![CheckResult::fail(
                "package.query",
                e,
                "is the package database readable? run validate as root",
            )];
        }
    };
    for p in &wanted {
        let id = format!("package.{}", p.name);
        out.push(match versions.get(p.name) {
            Some(v) => CheckResult::pass(id, format!("{} {v}", p.name)),
            None => CheckResult::fail(
                id,
                format!("{} is not installed", p.name),
                install_hint(platform, p.name, &p.repo_hint),
            ),
        });
    }
    out.push(ipxe_build(platform, &versions));
    out.extend(roms(opts, host, platform));
    out
}

fn install_hint(platform: &Platform, name: &str, repo: &str) -> String {
    format!(
        "run bootstrap, or `{} install {name}` (from {repo})",
        platform.family.package_manager()
    )
}

fn ipxe_build(platform: &Platform, versions: &BTreeMap<String, String>) -> CheckResult {
    let id = "ipxe.build";
    let name = desired::ipxe_package(platform.family);
    let repo = desired::packages(platform)
        .into_iter()
        .find(|p| p.name == name)
        .map(|p| p.repo_hint)
        .unwrap_or_default();
    let Some(version) = versions.get(name) else {
        return CheckResult::fail(
            id,
            format!("{name} is not installed: no iPXE ROMs for network boot"),
            install_hint(platform, name, &repo),
        );
    };
    match build_date(version) {
        Some(d) if d >= IPXE_MIN_BUILD => {
            CheckResult::pass(id, format!("{name} {version}: built {d} (at least {IPXE_MIN_BUILD})"))
        }
        Some(d) => CheckResult::fail(
            id,
            format!("{name} {version}: built {d}, older than {IPXE_MIN_BUILD}; such builds make PXE boots time out"),
            format!("update {name} to a 2016 or later build (from {repo})"),
        ),
        None => CheckResult::warn(
            id,
            format!("{name} {version}: no build date in the version"),
            format!("make sure it is a {} or later build", IPXE_MIN_BUILD.year),
        ),
    }
}

fn roms(opts: &Options, host: &Host, platform: &Platform) -> Vec<CheckResult> {
    let dirs = desired::rom_dirs(platform.family);
    let name = desired::ipxe_package(platform.family);
    opts.nics
        .iter()
        .map(|nic| {
            let id = format!("ipxe.rom.{nic}");
            let Some((_, files)) = NIC_ROMS.iter().find(|(m, _)| m == nic) else {
                return CheckResult::fail(
                    id,
                    format!("unknown NIC model {nic}"),
                    "use virtio, e1000 or rtl8139",
                );
            };
            let found: Vec<String> = dirs
                .iter()
                .flat_map(|d| files.iter().map(move |f| format!("{d}/{f}")))
                .filter(|p| host.probe.root().exists(p))
                .collect();
            if found.is_empty() {
                CheckResult::fail(
                    id,
                    format!(
                        "no ROM for {nic} ({}) in {}",
                        files.join(", "),
                        dirs.join(", ")
                    ),
                    format!("install {name}; without the ROM a {nic} NIC cannot network-boot"),
                )
            } else {
                CheckResult::pass(id, found.join(", "))
            }
        })
        .collect()
}
