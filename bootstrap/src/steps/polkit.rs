//! The polkit rule that lets the user manage libvirt on `qemu:///system`: a JavaScript
//! rule or a `.pkla` file, whichever the installed polkit reads
//! ([`PolkitBackend`]). The path is ours (its name says virthost): whatever is there is
//! rewritten to the managed content, `root:root 0644`.

use anyhow::{bail, Result};

use crate::desired::PolkitBackend;
use crate::hostroot::HostRoot;
use crate::step::{Check, Progress, Step};
use crate::steps::files::{apply_file, check_file, root_owned};
use crate::username::UserName;

pub const MODE: u32 = 0o644;

/// Directories one of which an installed polkit has.
pub const POLKIT_DIRS: &[&str] = &["/usr/share/polkit-1", "/etc/polkit-1"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolkitStep {
    pub user: UserName,
    pub backend: PolkitBackend,
}

impl PolkitStep {
    fn content(&self) -> Result<String> {
        self.backend.content(&self.user)
    }
}

/// Whether polkit is installed under `root`.
pub fn polkit_installed(root: &HostRoot) -> bool {
    POLKIT_DIRS.iter().any(|d| root.path(d).is_dir())
}

impl Step for PolkitStep {
    fn id(&self) -> &'static str {
        "polkit"
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &["packages", "user"]
    }

    fn check(&self, root: &HostRoot) -> Result<Check> {
        let content = self.content()?;
        let want = root_owned(&content, MODE);
        check_file(root, self.backend.path(), &want)
    }

    fn apply(&self, root: &HostRoot, _: &dyn Progress) -> Result<()> {
        if !polkit_installed(root) {
            bail!(
                "polkit is not installed (none of {} exists): install it, then run again",
                POLKIT_DIRS.join(", ")
            );
        }
        let content = self.content()?;
        let want = root_owned(&content, MODE);
        apply_file(root, self.backend.path(), &want, |_| Ok(())).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::{Quiet, Status};
    use crate::steps::testroot::{self, Snapshot};
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn name(n: &str) -> UserName {
        UserName::parse(n, crate::username::Rules::Any).unwrap()
    }

    fn step(backend: PolkitBackend) -> PolkitStep {
        PolkitStep {
            user: name("stack"),
            backend,
        }
    }

    #[test]
    fn writes_the_rule_for_each_backend_once() {
        for backend in [PolkitBackend::Rules, PolkitBackend::LocalAuthority] {
            let (_t, root) = testroot::new();
            let s = step(backend);
            assert!(matches!(s.check(&root).unwrap(), Check::Pending(_)));
            s.apply(&root, &Quiet).unwrap();
            let p = root.path(backend.path());
            assert_eq!(
                fs::read_to_string(&p).unwrap(),
                backend.content(&name("stack")).unwrap()
            );
            let m = fs::metadata(&p).unwrap();
            assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o644, 0, 0));
            assert!(matches!(s.check(&root).unwrap(), Check::Converged(_)));
            let before = Snapshot::take(&root);
            s.apply(&root, &Quiet).unwrap();
            assert_eq!(Snapshot::take(&root), before, "{backend:?}");
        }
    }

    #[test]
    fn an_identical_file_is_converged_and_a_different_one_rewritten() {
        let (_t, root) = testroot::new();
        let s = step(PolkitBackend::Rules);
        let path = PolkitBackend::Rules.path();
        testroot::write(
            &root,
            path,
            &PolkitBackend::Rules.content(&name("stack")).unwrap(),
            0o644,
        );
        let before = Snapshot::take(&root);
        let out = testroot::apply_one(s.clone(), &root);
        assert_eq!(out.status, Status::Ok, "{out:?}");
        assert_eq!(Snapshot::take(&root), before);

        // Our file, for another user and world-writable: rewritten, mode fixed.
        testroot::write(
            &root,
            path,
            &PolkitBackend::Rules.content(&name("olduser")).unwrap(),
            0o666,
        );
        let out = testroot::apply_one(s, &root);
        assert_eq!(out.status, Status::Changed, "{out:?}");
        let p = root.path(path);
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            PolkitBackend::Rules.content(&name("stack")).unwrap()
        );
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o644);
    }

    #[test]
    fn keeps_an_existing_rules_dir_and_creates_a_missing_one() {
        let (_t, root) = testroot::new();
        // As Fedora ships it: polkitd-owned, 0700. Left alone.
        let dir = root.path("/etc/polkit-1/rules.d");
        fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(999), Some(0)).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        step(PolkitBackend::Rules).apply(&root, &Quiet).unwrap();
        let m = fs::metadata(&dir).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid()), (0o700, 999));
        // The pkla directory tree is missing entirely: created root:root 0755.
        step(PolkitBackend::LocalAuthority)
            .apply(&root, &Quiet)
            .unwrap();
        let la = root.path("/etc/polkit-1/localauthority/50-local.d");
        let m = fs::metadata(&la).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid()), (0o755, 0));
    }

    #[test]
    fn without_polkit_apply_fails_and_writes_nothing() {
        let t = tempfile::tempdir().unwrap();
        let root = HostRoot::at(t.path());
        let s = step(PolkitBackend::Rules);
        assert!(matches!(s.check(&root).unwrap(), Check::Pending(_)));
        let err = s.apply(&root, &Quiet).unwrap_err().to_string();
        assert!(err.contains("polkit is not installed"), "{err}");
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0);
    }
}
