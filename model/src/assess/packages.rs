//! The package requirements: every package of [`desired::packages`] installed, and the iPXE
//! ROM package a 2016 or later build ([`desired::IPXE_MIN_BUILD`]).
//!
//! Each package is one requirement ([`package`]: validate's `package.<name>`); bootstrap's
//! `packages` step owns them together ([`set`], which also wants an interrupted dpkg run
//! finished first). The build of the iPXE ROMs is its own requirement ([`ipxe_build`]:
//! validate's `ipxe.build`, bootstrap's `ipxe` step). What the repositories offer is not a
//! fact of the host: the steps ask the package manager when they act (and in `--check`, to
//! say what they would install); the assessments never do.

use super::{Action, Assessment};
use crate::desired::{self, Package};
use crate::ipxe::build_date;
use crate::os::Family;
use crate::pkg::Installed;

/// What the `packages` and `ipxe` steps do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageAction {
    /// `dpkg --configure -a`: a killed run left these half-configured.
    Repair { interrupted: Vec<String> },
    /// Install these, each from its repository, with `manager` (`dnf`, `apt-get`).
    Install {
        manager: &'static str,
        packages: Vec<(String, String)>,
    },
    /// Upgrade the iPXE ROM package to a build of [`desired::IPXE_MIN_BUILD`] or later.
    Upgrade {
        name: String,
        version: String,
        repo: String,
    },
}

impl Action for PackageAction {
    fn describe(&self) -> String {
        match self {
            PackageAction::Repair { interrupted } => format!(
                "finish the interrupted dpkg run (`dpkg --configure -a`): {}",
                interrupted.join(", ")
            ),
            PackageAction::Install { manager, packages } => {
                let names: Vec<&str> = packages.iter().map(|(n, _)| n.as_str()).collect();
                let from = match packages.first() {
                    Some((_, repo)) if packages.iter().all(|(_, r)| r == repo) => {
                        format!("from {repo}")
                    }
                    _ => packages
                        .iter()
                        .map(|(n, repo)| format!("{n} from {repo}"))
                        .collect::<Vec<_>>()
                        .join("; "),
                };
                format!(
                    "install {}: `{manager} install {}` ({from})",
                    names.join(", "),
                    names.join(" ")
                )
            }
            PackageAction::Upgrade {
                name,
                version,
                repo,
            } => format!(
                "upgrade {name} {version} to a {} or later build (from {repo})",
                desired::IPXE_MIN_BUILD.year
            ),
        }
    }
}

/// `p` installed (`installed` is the package database's answer for the wanted names;
/// `family` says which package manager installs it).
pub fn package(family: Family, p: &Package, installed: &Installed) -> Assessment<PackageAction> {
    match installed.get(p.name) {
        Some(v) => Assessment::Met(format!("{} {v}", p.name)),
        None => Assessment::NotMet {
            detail: format!("{} is not installed", p.name),
            actions: vec![install(family, &[p])],
        },
    }
}

fn install(family: Family, ps: &[&Package]) -> PackageAction {
    PackageAction::Install {
        manager: family.package_manager(),
        packages: ps
            .iter()
            .map(|p| (p.name.to_string(), p.repo_hint.clone()))
            .collect(),
    }
}

/// All of `wanted` installed, and no dpkg run left half-done (`interrupted`: the packages
/// dpkg has not finished configuring).
pub fn set(
    family: Family,
    wanted: &[Package],
    installed: &Installed,
    interrupted: &[String],
) -> Assessment<PackageAction> {
    let missing: Vec<&Package> = wanted
        .iter()
        .filter(|p| !installed.contains_key(p.name))
        .collect();
    let mut actions = vec![];
    let mut wrong = vec![];
    if !interrupted.is_empty() {
        wrong.push(format!(
            "an interrupted dpkg run left {} unconfigured",
            interrupted.join(", ")
        ));
        actions.push(PackageAction::Repair {
            interrupted: interrupted.to_vec(),
        });
    }
    if !missing.is_empty() {
        wrong.push(format!(
            "not installed: {}",
            missing
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        actions.push(install(family, &missing));
    }
    if actions.is_empty() {
        return Assessment::Met(format!(
            "{} packages installed ({})",
            wanted.len(),
            wanted.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
        ));
    }
    Assessment::NotMet {
        detail: wrong.join("; "),
        actions,
    }
}

/// The iPXE ROM package `rom` is installed and a build of [`desired::IPXE_MIN_BUILD`] or
/// later. A version without a build date cannot be judged: unknown (validate WARNs,
/// bootstrap warns and goes on; the boot proof shows what the ROM does).
pub fn ipxe_build(
    family: Family,
    rom: &Package,
    installed: &Installed,
) -> Assessment<PackageAction> {
    let floor = desired::IPXE_MIN_BUILD;
    let name = rom.name;
    let Some(version) = installed.get(name) else {
        return Assessment::NotMet {
            detail: format!("{name} is not installed: no iPXE ROMs for network boot"),
            actions: vec![install(family, &[rom])],
        };
    };
    match build_date(version) {
        Some(d) if d >= floor => {
            Assessment::Met(format!("{name} {version}: built {d} (at least {floor})"))
        }
        Some(d) => Assessment::NotMet {
            detail: format!(
                "{name} {version}: built {d}, older than {floor}; such builds make PXE boots \
                 time out"
            ),
            actions: vec![PackageAction::Upgrade {
                name: name.to_string(),
                version: version.clone(),
                repo: rom.repo_hint.clone(),
            }],
        },
        None => Assessment::Unknown(format!(
            "{name} {version}: no build date in the version; make sure it is a {} or later \
             build",
            floor.year
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::Role;

    fn pkg(name: &'static str, role: Role) -> Package {
        Package {
            name,
            role,
            repo_hint: "the base repository".into(),
        }
    }

    fn have(pairs: &[(&str, &str)]) -> Installed {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_set_is_met_only_with_everything_installed_and_dpkg_finished() {
        let wanted = [pkg("libvirt", Role::Libvirt), pkg("wget", Role::Wget)];
        let both = have(&[("libvirt", "9.0"), ("wget", "1.21")]);
        assert!(matches!(
            set(Family::Apt, &wanted, &both, &[]),
            Assessment::Met(_)
        ));
        let a = set(
            Family::Apt,
            &wanted,
            &have(&[("libvirt", "9.0")]),
            &["libvirt".into()],
        );
        assert_eq!(
            a.described(),
            [
                "finish the interrupted dpkg run (`dpkg --configure -a`): libvirt",
                "install wget: `apt-get install wget` (from the base repository)"
            ]
        );
        // Each package on its own: the one missing is the only one not met.
        assert!(matches!(
            package(Family::Apt, &wanted[0], &have(&[("libvirt", "9.0")])),
            Assessment::Met(ref d) if d == "libvirt 9.0"
        ));
        assert_eq!(
            package(Family::Apt, &wanted[1], &have(&[])).described(),
            ["install wget: `apt-get install wget` (from the base repository)"]
        );
    }

    #[test]
    fn the_ipxe_build_is_judged_by_its_date() {
        let rom = pkg("ipxe-roms-qemu", Role::IpxeRoms);
        let at = |v: &str| ipxe_build(Family::Dnf, &rom, &have(&[("ipxe-roms-qemu", v)]));
        assert!(matches!(
            at("20180825-3.git133f4c47.el8"),
            Assessment::Met(_)
        ));
        let old = at("20130517-8.gitc4bce43.el7");
        assert_eq!(
            old.described(),
            [
                "upgrade ipxe-roms-qemu 20130517-8.gitc4bce43.el7 to a 2016 or later build (from \
              the base repository)"
            ]
        );
        assert!(matches!(at("weird"), Assessment::Unknown(_)));
        assert_eq!(
            ipxe_build(Family::Dnf, &rom, &have(&[])).described(),
            ["install ipxe-roms-qemu: `dnf install ipxe-roms-qemu` (from the base repository)"]
        );
    }
}
