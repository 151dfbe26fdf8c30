//! The hypervisor package set of `virthost_model::desired::packages`, the iPXE ROM build, and
//! the ROM files of the requested NIC models.
//!
//! Ids: `package.<name>` (one per package), `ipxe.build`, `ipxe.rom.<nic>`.

use std::collections::BTreeMap;

use virthost_model::assess::packages::{self, PackageAction};
use virthost_model::assess::Assessment;
use virthost_model::desired::{self, NIC_ROMS};
use virthost_model::os::{Family, Platform};

use super::Host;
use crate::assessed::{self, Severity};
use crate::check::CheckResult;
use crate::options::Options;

/// Installed versions of `names` (the shared `virthost_model::pkg` query: `dpkg-query`, or
/// `rpm -q --whatprovides` per name, so a name another package provides counts when that
/// package is installed); a name missing from the map is not installed.
pub fn installed(
    host: &Host,
    family: Family,
    names: &[&str],
) -> anyhow::Result<BTreeMap<String, String>> {
    host.probe.package_db(family)?.installed(names)
}

pub fn run(opts: &Options, host: &Host) -> Vec<CheckResult> {
    let Some(platform) = &host.platform else {
        return vec![CheckResult::fail(
            "package.query",
            "unknown OS and no dpkg or rpm database: cannot check packages",
            format!("supported: {}", virthost_model::os::SUPPORTED),
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
                format!("{e:#}"),
                "is the package database readable? run validate as root",
            )];
        }
    };
    for p in &wanted {
        let id = format!("package.{}", p.name);
        let a = packages::package(platform.family, p, &versions);
        out.push(assessed::result(&id, Severity::Fail, BY_PACKAGES, &a));
    }
    out.push(ipxe_build(platform, &versions));
    out.extend(roms(opts, host, platform));
    out
}

/// bootstrap's command line and the step that installs the packages.
const BY_PACKAGES: (&str, &str) = ("bootstrap", "packages");

/// `ipxe.build`: the shared assessment; a ROM package not installed is the `packages`
/// step's to install, an old build the `ipxe` step's to upgrade.
fn ipxe_build(platform: &Platform, versions: &BTreeMap<String, String>) -> CheckResult {
    let a = packages::ipxe_build(platform.family, &desired::ipxe_roms(platform), versions);
    let step = match &a {
        Assessment::NotMet { actions, .. }
            if matches!(actions.first(), Some(PackageAction::Install { .. })) =>
        {
            BY_PACKAGES
        }
        _ => ("bootstrap", "ipxe"),
    };
    assessed::result("ipxe.build", Severity::Fail, step, &a)
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
