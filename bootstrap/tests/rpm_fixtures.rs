//! The RPM fixture hosts answer "installed?" the way rpm does (`rpm -q --whatprovides`,
//! fixtures/README.md): every name bootstrap asks has a captured answer, the answers agree
//! with the host's `rpm -qa` inventory, and the model's names are the ones the releases'
//! repositories call the packages (docs/packages.md).

use std::path::PathBuf;

use bootstrap::desired;
use bootstrap::facts::Facts;
use bootstrap::hostroot::HostRoot;
use bootstrap::os::Platform;
use bootstrap::pkg::{self, FixturePackageDb, PackageDb};
use bootstrap::step::{run, Mode, Quiet, Status, Step};
use bootstrap::steps::packages::Packages;

use virthost_testkit::fixtures::host;

/// The shared hosts of the rpm family (validate's cases carry no `whatprovides` answers).
fn rpm_hosts() -> Vec<(PathBuf, Platform)> {
    let mut out = vec![];
    for path in virthost_testkit::fixtures::hosts() {
        let root = HostRoot::at(&path);
        let Ok(Ok(platform)) = Facts::platform(&root, None) else {
            continue;
        };
        if platform.family.is_rpm() {
            out.push((path, platform));
        }
    }
    assert!(out.len() >= 7, "RPM fixture hosts missing: {out:?}");
    out
}

/// Every name `Facts::gather` asks on the host (the model's packages and the polkit names).
fn asked(platform: &Platform) -> Vec<&'static str> {
    let mut names: Vec<&str> = desired::packages(platform).iter().map(|p| p.name).collect();
    names.extend(["polkitd", "policykit-1", "polkit"]);
    names
}

#[test]
fn every_asked_name_has_a_captured_whatprovides_answer_consistent_with_rpm_qa() {
    for (dir, platform) in rpm_hosts() {
        let inventory =
            pkg::parse_rpm_qa(&std::fs::read_to_string(dir.join("pkg/installed.txt")).unwrap());
        let answers = dir.join("pkg/whatprovides");
        for name in asked(&platform) {
            let file = answers.join(name);
            let out = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e} (capture it)", file.display()));
            let providers = pkg::parse_rpm_whatprovides(name, &out)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            for (p, v) in &providers {
                assert_eq!(
                    inventory.get(p),
                    Some(v),
                    "{}: provider {p} {v} is not in installed.txt",
                    file.display()
                );
            }
            if providers.is_empty() {
                // A package provides its own name: nothing provides it, so none is installed.
                assert!(
                    !inventory.contains_key(name),
                    "{}: {name} is in installed.txt",
                    file.display()
                );
            }
        }
        // And every captured answer, asked or not, is rpm's answer for its own name.
        for e in std::fs::read_dir(&answers).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let out = std::fs::read_to_string(e.path()).unwrap();
            pkg::parse_rpm_whatprovides(&name, &out)
                .unwrap_or_else(|err| panic!("{}: {err}", e.path().display()));
        }
    }
}

/// Fedora 40 and EL9: the virt-* tools are `guestfs-tools`; the old name is only a
/// `Provides:` of virt-win-reg, which these hosts lack, so rpm finds nothing for it while the
/// tools are installed. Fedora 40's `wget` is wget2-wget.
#[test]
fn fedora_40_and_el9_hosts_have_guestfs_tools_and_rpm_resolves_provides() {
    for name in ["fedora-40", "rocky-9", "centos-stream-9"] {
        let dir = host(name);
        let platform = Facts::platform(&HostRoot::at(&dir), None).unwrap().unwrap();
        let names: Vec<&str> = desired::packages(&platform)
            .iter()
            .map(|p| p.name)
            .collect();
        assert!(
            names.contains(&"guestfs-tools") && !names.contains(&"libguestfs-tools"),
            "{name}: {names:?}"
        );
        let db = FixturePackageDb::load(&dir, platform.family).unwrap();
        let got = db
            .installed(&["guestfs-tools", "libguestfs-tools", "libguestfs-tools-c"])
            .unwrap();
        assert!(!got.contains_key("libguestfs-tools"), "{name}: {got:?}");
        if name != "centos-stream-9" {
            assert_eq!(
                got.get("libguestfs-tools-c"),
                got.get("guestfs-tools"),
                "{name}"
            );
            assert!(got.contains_key("guestfs-tools"), "{name}: {got:?}");
        } else {
            assert!(got.is_empty(), "{name}: {got:?}");
        }
    }
    let dir = host("fedora-40");
    let db = FixturePackageDb::load(&dir, bootstrap::os::Family::Dnf).unwrap();
    let got = db.installed(&["wget", "wget2-wget"]).unwrap();
    assert_eq!(got.get("wget").map(String::as_str), Some("2.1.0-9.fc40"));
    assert_eq!(got.get("wget"), got.get("wget2-wget"));
}

/// The packages step on the fresh CentOS Stream 9 and the partly installed Fedora 40 host
/// installs what is missing, by its package name; a second run finds everything installed
/// (through `rpm -q --whatprovides`) and installs nothing.
#[test]
fn a_second_packages_run_on_rpm_hosts_is_a_no_op() {
    for (name, want) in [
        (
            "centos-stream-9",
            "install libvirt qemu-kvm guestfs-tools libguestfs-xfs virt-install wget ipxe-roms-qemu edk2-ovmf python3-libvirt python3-lxml",
        ),
        (
            "fedora-40",
            "install virt-install python3-libvirt python3-lxml",
        ),
    ] {
        let dir = host(name);
        let platform = Facts::platform(&HostRoot::at(&dir), None)
            .unwrap()
            .unwrap();
        let db = FixturePackageDb::load(&dir, platform.family).unwrap();
        let steps: Vec<Box<dyn Step>> = vec![Box::new(Packages {
            db: &db,
            packages: desired::packages(&platform),
        })];
        let root = HostRoot::at("/nonexistent");
        let out = run(&steps, &root, Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Changed, "{name}: {out:?}");
        assert_eq!(db.calls.borrow().as_slice(), [want], "{name}");
        let out = run(&steps, &root, Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Ok, "{name}: {out:?}");
        assert_eq!(db.calls.borrow().len(), 1, "{name}");
        let names: Vec<&str> = desired::packages(&platform).iter().map(|p| p.name).collect();
        assert_eq!(db.installed(&names).unwrap().len(), names.len(), "{name}");
    }
}
