//! `ipxe`: the iPXE ROM package must be a 2016 or newer build (`desired::IPXE_MIN_BUILD`),
//! as [`crate::assess::packages::ipxe_build`] judges it; a version without a build date is
//! a warning, not a failure (validate WARNs on it too).
//! An older build is upgraded through the package manager and read again; if it is still
//! old the step fails with the reason and the repository that has a newer build.

use std::cell::Cell;

use anyhow::bail;

use crate::assess::packages::{self, PackageAction};
use crate::assess::Assessment;
use crate::desired::{self, Package};
use crate::hostroot::HostRoot;
use crate::ipxe::{build_date, BuildDate};
use crate::pkg::PackageDb;
use crate::step::{Check, Progress, Step};

pub struct Ipxe<'a> {
    pub db: &'a dyn PackageDb,
    /// The ROM package of the platform (its `repo_hint` names the repository).
    pub package: Package,
    attempted: Cell<bool>,
}

const WHY: &str = "the 2013 builds made PXE boots time out";

impl<'a> Ipxe<'a> {
    pub fn new(db: &'a dyn PackageDb, package: Package) -> Self {
        Self {
            db,
            package,
            attempted: Cell::new(false),
        }
    }

    fn floor() -> BuildDate {
        desired::IPXE_MIN_BUILD
    }

    fn describe(version: &str) -> String {
        match build_date(version) {
            Some(d) => format!("{version} (built {d})"),
            None => format!("{version} (no build date)"),
        }
    }

    fn too_old(&self, version: &str, date: BuildDate, extra: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "{} {version} is a {date} build, older than {}: {WHY}; {extra}; a newer build is in {}",
            self.package.name,
            Self::floor(),
            self.package.repo_hint
        )
    }
}

impl Step for Ipxe<'_> {
    fn id(&self) -> &'static str {
        "ipxe"
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &["packages"]
    }

    fn check(&self, _root: &HostRoot) -> anyhow::Result<Check> {
        let name = self.package.name;
        let installed = self.db.installed(&[name])?;
        // Asked only when needed: a converged host costs no repository query.
        let candidate =
            || -> anyhow::Result<Option<String>> { Ok(self.db.available(&[name])?.remove(name)) };
        let version = match packages::ipxe_build(self.db.family(), &self.package, &installed) {
            Assessment::Met(detail) => return Ok(Check::Converged(detail)),
            Assessment::Unknown(why) | Assessment::Blocked { detail: why, .. } => {
                return Ok(Check::Skip(format!("warning: {why}")))
            }
            Assessment::NotMet { actions, .. } => match actions.first() {
                Some(PackageAction::Upgrade { version, .. }) => version.clone(),
                // Not installed. Only in check mode: in apply mode `packages` ran first.
                _ => {
                    return Ok(match candidate()?.as_deref().map(|c| (c, build_date(c))) {
                        Some((c, Some(d))) if d < Self::floor() => bail!(
                            "{name} is not installed and the repositories offer only {}: {WHY}; a newer build is in {}",
                            Self::describe(c),
                            self.package.repo_hint
                        ),
                        Some((c, _)) => Check::Pending(vec![format!(
                            "{name} comes with the packages step: {}",
                            Self::describe(c)
                        )]),
                        None => Check::Pending(vec![format!("{name} comes with the packages step")]),
                    })
                }
            },
        };
        let Some(date) = build_date(&version) else {
            bail!("cannot read a build date from {name} {version}");
        };
        if self.attempted.get() {
            return Err(self.too_old(&version, date, "the package manager has no newer one"));
        }
        match candidate()?.as_deref().map(|c| (c, build_date(c))) {
            Some((c, Some(d))) if d >= Self::floor() => Ok(Check::Pending(vec![format!(
                "upgrade {name} {} to {}",
                Self::describe(&version),
                Self::describe(c)
            )])),
            Some((c, _)) if c != version => Err(self.too_old(
                &version,
                date,
                &format!(
                    "the configured repositories offer only {}",
                    Self::describe(c)
                ),
            )),
            _ => Err(self.too_old(
                &version,
                date,
                "the configured repositories offer no newer build",
            )),
        }
    }

    fn apply(&self, _root: &HostRoot, progress: &dyn Progress) -> anyhow::Result<()> {
        self.attempted.set(true);
        self.db.upgrade(&[self.package.name], progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::{OsRelease, Platform};
    use crate::pkg::FixturePackageDb;
    use crate::step::{run, Mode, Quiet, Status};

    fn step_for(db: &FixturePackageDb) -> Vec<Box<dyn Step + '_>> {
        let p = Platform::detect(&OsRelease::parse("ID=rhel\nVERSION_ID=7.3"), None).unwrap();
        let pkg = desired::packages(&p)
            .into_iter()
            .find(|p| p.role == desired::Role::IpxeRoms)
            .unwrap();
        vec![Box::new(Ipxe::new(db, pkg))]
    }

    #[test]
    fn a_2013_build_is_upgraded_when_a_newer_one_is_offered() {
        let db = FixturePackageDb::new(
            crate::os::Family::Yum,
            "ipxe-roms-qemu\t(none):20130517-8.gitc4bce43.el7\n",
            "Available Packages\nipxe-roms-qemu.noarch   20170123-1.git4e85b27.el7_4.1   rhel-7-server-rpms\n",
        );
        let steps = step_for(&db);
        let out = run(&steps, &HostRoot::at("/x"), Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Changed, "{out:?}");
        assert!(out[0].detail.contains("built 2017-01-23"));
        assert_eq!(db.calls.borrow().as_slice(), ["upgrade ipxe-roms-qemu"]);
    }

    #[test]
    fn a_2013_build_with_nothing_newer_fails_with_the_reason_and_the_repository() {
        let db = FixturePackageDb::new(
            crate::os::Family::Yum,
            "ipxe-roms-qemu\t(none):20130517-8.gitc4bce43.el7\n",
            "",
        );
        let steps = step_for(&db);
        let out = run(&steps, &HostRoot::at("/x"), Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Failed);
        let d = &out[0].detail;
        assert!(
            d.contains("2013-05-17 build") && d.contains(WHY) && d.contains("rhel-7-server-rpms"),
            "{d}"
        );
    }

    #[test]
    fn a_version_without_a_build_date_is_a_warning_as_in_validate() {
        let db = FixturePackageDb::new(
            crate::os::Family::Yum,
            "ipxe-roms-qemu\t(none):1.0-local\n",
            "",
        );
        let steps = step_for(&db);
        let out = run(&steps, &HostRoot::at("/x"), Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Skipped, "{out:?}");
        assert!(
            out[0]
                .detail
                .starts_with("warning: ipxe-roms-qemu 1.0-local: no build date"),
            "{}",
            out[0].detail
        );
        assert!(db.calls.borrow().is_empty());
    }
}
