//! `packages`: carries out [`crate::assess::packages::set`]'s actions: installs what
//! `desired::packages` names and the host lacks. Asks the package
//! manager first whether each is available, so a missing repository is reported by name;
//! finishes an interrupted dpkg run first, so a run killed mid-install converges.

use anyhow::bail;

use crate::assess::packages::{self, PackageAction};
use crate::assess::{Action, Assessment};
use crate::desired::Package;
use crate::hostroot::HostRoot;
use crate::pkg::PackageDb;
use crate::step::{Check, Progress, Quiet, Step, ToCheck};

pub struct Packages<'a> {
    pub db: &'a dyn PackageDb,
    pub packages: Vec<Package>,
}

impl Packages<'_> {
    /// The shared assessment of the package set ([`crate::assess::packages::set`]).
    fn assess(&self) -> anyhow::Result<Assessment<PackageAction>> {
        let names: Vec<&str> = self.packages.iter().map(|p| p.name).collect();
        let installed = self.db.installed(&names)?;
        let interrupted = self.db.interrupted()?;
        Ok(packages::set(
            self.db.family(),
            &self.packages,
            &installed,
            &interrupted,
        ))
    }

    /// Fails with every unavailable package and the repository that provides it; returns
    /// what `install` would do, with the candidate versions, otherwise.
    fn availability(
        &self,
        install: &[(String, String)],
        progress: &dyn Progress,
    ) -> anyhow::Result<String> {
        let names: Vec<&str> = install.iter().map(|(n, _)| n.as_str()).collect();
        let avail = self.db.available_progress(&names, progress)?;
        if avail.is_empty() && self.db.lists_may_be_stale() {
            return Ok(format!(
                "install {} (apt package lists know none of them: `apt-get update` runs first)",
                names.join(", ")
            ));
        }
        let unavailable: Vec<String> = install
            .iter()
            .filter(|(n, _)| !avail.contains_key(n))
            .map(|(n, repo)| format!("{n} (configure {repo})"))
            .collect();
        if !unavailable.is_empty() {
            bail!(
                "not available from the configured {} repositories: {}",
                self.db.family(),
                unavailable.join("; ")
            );
        }
        Ok(format!(
            "install {}",
            names
                .iter()
                .map(|n| format!("{n} {}", avail[*n]))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

impl Step for Packages<'_> {
    fn id(&self) -> &'static str {
        "packages"
    }

    fn check(&self, _root: &HostRoot) -> anyhow::Result<Check> {
        let actions = match self.assess()? {
            Assessment::NotMet { actions, .. } => actions,
            other => return other.to_check(|why| why.to_string()),
        };
        let mut pending = vec![];
        for a in &actions {
            pending.push(match a {
                PackageAction::Install { packages, .. } => self.availability(packages, &Quiet)?,
                other => other.describe(),
            });
        }
        Ok(Check::Pending(pending))
    }

    fn apply(&self, _root: &HostRoot, progress: &dyn Progress) -> anyhow::Result<()> {
        // The repair first, once: it can change what is installed, so the set is assessed
        // again after it. What it leaves (a package dpkg had only half unpacked) apt-get's
        // install completes, so a second assessment that still lists it goes on to install.
        let mut repaired = false;
        'assess: loop {
            let Assessment::NotMet { actions, .. } = self.assess()? else {
                return Ok(());
            };
            for a in &actions {
                match a {
                    PackageAction::Repair { .. } if !repaired => {
                        self.db.repair(progress)?;
                        repaired = true;
                        continue 'assess;
                    }
                    PackageAction::Repair { .. } => {}
                    PackageAction::Install { packages, .. } => {
                        self.availability(packages, progress)?;
                        let names: Vec<&str> = packages.iter().map(|(n, _)| n.as_str()).collect();
                        self.db.install(&names, progress)?;
                    }
                    PackageAction::Upgrade { name, .. } => self.db.upgrade(&[name], progress)?,
                }
            }
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired;
    use crate::os::{OsRelease, Platform};
    use crate::pkg::FixturePackageDb;
    use crate::step::{run, Mode, Quiet, Status};

    fn el7() -> Platform {
        Platform::detect(&OsRelease::parse("ID=rhel\nVERSION_ID=7.4"), None).unwrap()
    }

    #[test]
    fn installs_only_the_missing_and_a_second_run_costs_no_install() {
        let p = el7();
        let db = FixturePackageDb::new(
            p.family,
            "wget\t(none):1.14-15.el7\nlibvirt\t(none):3.2.0-14.el7\n",
            "Available Packages\nqemu-kvm.x86_64  10:1.5.3-141.el7  rhel-7-server-rpms\nlibguestfs-tools.noarch 1:1.36.3-6.el7 rhel-7-server-rpms\nlibguestfs-xfs.x86_64 1:1.36.3-6.el7 rhel-7-server-rpms\nvirt-install.noarch 1.4.1-7.el7 rhel-7-server-rpms\nipxe-roms-qemu.noarch 20170123-1.git4e85b27.el7_4.1 rhel-7-server-rpms\nOVMF.noarch 20170228-5.gitc325e41585e3.el7 rhel-7-server-rpms\nlibvirt-python.x86_64 3.2.0-3.el7 rhel-7-server-rpms\npython-lxml.x86_64 3.2.1-4.el7 rhel-7-server-rpms\n",
        );
        let steps: Vec<Box<dyn Step>> = vec![Box::new(Packages {
            db: &db,
            packages: desired::packages(&p),
        })];
        let root = HostRoot::at("/nonexistent");
        let out = run(&steps, &root, Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Changed, "{out:?}");
        assert_eq!(
            db.calls.borrow().as_slice(),
            ["install qemu-kvm libguestfs-tools libguestfs-xfs virt-install ipxe-roms-qemu OVMF libvirt-python python-lxml"]
        );
        let out = run(&steps, &root, Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Ok);
        assert_eq!(db.calls.borrow().len(), 1);
    }

    #[test]
    fn an_unavailable_package_fails_naming_it_and_its_repository() {
        let p = el7();
        let db = FixturePackageDb::new(p.family, "", "");
        let steps: Vec<Box<dyn Step>> = vec![Box::new(Packages {
            db: &db,
            packages: desired::packages(&p),
        })];
        let out = run(&steps, &HostRoot::at("/x"), Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Failed);
        assert!(
            out[0]
                .detail
                .contains("ipxe-roms-qemu (configure the RHEL 7 server channel"),
            "{}",
            out[0].detail
        );
        assert!(db.calls.borrow().is_empty());
    }

    #[test]
    fn an_interrupted_dpkg_is_repaired_first() {
        let p = Platform::detect(&OsRelease::parse("ID=debian\nVERSION_ID=12"), None).unwrap();
        let installed: String = desired::packages(&p)
            .iter()
            .map(|pk| {
                format!(
                    "{}\t1.0\t{}\n",
                    pk.name,
                    if pk.name == "qemu-system-x86" {
                        "iU "
                    } else {
                        "ii "
                    }
                )
            })
            .collect();
        let db = FixturePackageDb::new(
            p.family,
            &installed,
            "qemu-system-x86:\n  Installed: 1.0\n  Candidate: 1.0\n",
        );
        let steps: Vec<Box<dyn Step>> = vec![Box::new(Packages {
            db: &db,
            packages: desired::packages(&p),
        })];
        let out = run(&steps, &HostRoot::at("/x"), Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Changed, "{out:?}");
        assert!(out[0].changes[0].contains("dpkg --configure -a"));
        assert_eq!(db.calls.borrow().as_slice(), ["repair"]);
    }

    /// dpkg as a SIGKILL mid-unpack leaves it: `dpkg --configure -a` cannot finish a
    /// half-installed package, apt-get's next install does (what the e2e's killed run shows).
    struct HalfInstalled {
        db: FixturePackageDb,
        stuck: std::cell::RefCell<Vec<String>>,
    }

    impl PackageDb for HalfInstalled {
        fn family(&self) -> crate::os::Family {
            self.db.family()
        }
        fn installed(&self, names: &[&str]) -> anyhow::Result<crate::pkg::Installed> {
            self.db.installed(names)
        }
        fn available(&self, names: &[&str]) -> anyhow::Result<crate::pkg::Available> {
            self.db.available(names)
        }
        fn interrupted(&self) -> anyhow::Result<Vec<String>> {
            Ok(self.stuck.borrow().clone())
        }
        fn repair(&self, progress: &dyn Progress) -> anyhow::Result<()> {
            self.db.repair(progress)
        }
        fn install(&self, names: &[&str], progress: &dyn Progress) -> anyhow::Result<()> {
            self.db.install(names, progress)?;
            self.stuck.borrow_mut().clear();
            Ok(())
        }
        fn upgrade(&self, names: &[&str], progress: &dyn Progress) -> anyhow::Result<()> {
            self.db.upgrade(names, progress)
        }
    }

    #[test]
    fn what_the_repair_leaves_half_installed_the_install_finishes() {
        let p = Platform::detect(&OsRelease::parse("ID=debian\nVERSION_ID=12"), None).unwrap();
        let db = HalfInstalled {
            db: FixturePackageDb::new(
                p.family,
                "",
                "wget:\n  Installed: (none)\n  Candidate: 1.21\n",
            ),
            stuck: std::cell::RefCell::new(vec!["augeas-lenses".into()]),
        };
        let mut packages = desired::packages(&p);
        packages.retain(|pk| pk.name == "wget");
        let steps: Vec<Box<dyn Step>> = vec![Box::new(Packages { db: &db, packages })];
        let out = run(&steps, &HostRoot::at("/x"), Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Changed, "{out:?}");
        assert_eq!(db.db.calls.borrow().as_slice(), ["repair", "install wget"]);
        let out = run(&steps, &HostRoot::at("/x"), Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Ok, "{out:?}");
    }

    /// A package manager whose availability question refreshes the package lists first
    /// (apt with stale lists): that refresh is progress the user must see.
    struct Refreshing(FixturePackageDb);

    impl PackageDb for Refreshing {
        fn family(&self) -> crate::os::Family {
            self.0.family()
        }
        fn installed(&self, names: &[&str]) -> anyhow::Result<crate::pkg::Installed> {
            self.0.installed(names)
        }
        fn available(&self, names: &[&str]) -> anyhow::Result<crate::pkg::Available> {
            self.0.available(names)
        }
        fn available_progress(
            &self,
            names: &[&str],
            progress: &dyn Progress,
        ) -> anyhow::Result<crate::pkg::Available> {
            progress.tick("apt-get -q update");
            self.0.available(names)
        }
        fn interrupted(&self) -> anyhow::Result<Vec<String>> {
            self.0.interrupted()
        }
        fn repair(&self, progress: &dyn Progress) -> anyhow::Result<()> {
            self.0.repair(progress)
        }
        fn install(&self, names: &[&str], progress: &dyn Progress) -> anyhow::Result<()> {
            self.0.install(names, progress)
        }
        fn upgrade(&self, names: &[&str], progress: &dyn Progress) -> anyhow::Result<()> {
            self.0.upgrade(names, progress)
        }
    }

    #[test]
    fn refreshing_the_package_lists_shows_progress() {
        struct Ticks(std::cell::RefCell<Vec<String>>);
        impl Progress for Ticks {
            fn tick(&self, m: &str) {
                self.0.borrow_mut().push(m.to_string());
            }
        }
        let p = Platform::detect(&OsRelease::parse("ID=debian\nVERSION_ID=12"), None).unwrap();
        let db = Refreshing(FixturePackageDb::new(
            p.family,
            "",
            "wget:\n  Installed: (none)\n  Candidate: 1.21\n",
        ));
        let mut packages = desired::packages(&p);
        packages.retain(|pk| pk.name == "wget");
        let steps: Vec<Box<dyn Step>> = vec![Box::new(Packages { db: &db, packages })];
        let ticks = Ticks(Default::default());
        let out = run(&steps, &HostRoot::at("/x"), Mode::Apply, &ticks, |_| {});
        assert_eq!(out[0].status, Status::Changed, "{out:?}");
        assert_eq!(ticks.0.borrow().as_slice(), ["apt-get -q update"]);
    }
}
