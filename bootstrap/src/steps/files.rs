//! A file `bootstrap` owns outright (its name says virthost, its first line says it is
//! managed): exact content, mode, `root:root`, written atomically. Used for
//! [`crate::desired::NESTED_CONF_PATH`] and [`crate::desired::KVM_UDEV_RULE_PATH`], and by
//! the polkit and sudo steps.

use std::path::Path;

use anyhow::Result;

use crate::atomic::{self, Owner, Wanted};
use crate::hostroot::HostRoot;
use crate::step::{Check, Progress, Step};

/// Mode of directories created for a managed file.
pub const DIR_MODE: u32 = 0o755;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedFile {
    pub id: &'static str,
    /// Absolute host path (`/etc/modprobe.d/virthost-kvm-nested.conf`).
    pub path: String,
    pub content: String,
    pub mode: u32,
}

impl ManagedFile {
    pub fn new(
        id: &'static str,
        path: impl Into<String>,
        content: impl Into<String>,
        mode: u32,
    ) -> Self {
        Self {
            id,
            path: path.into(),
            content: content.into(),
            mode,
        }
    }

    fn wanted(&self) -> Wanted<'_> {
        root_owned(&self.content, self.mode)
    }
}

/// A file bootstrap owns outright: exactly `content`, `root:root`, `mode`.
pub fn root_owned(content: &str, mode: u32) -> Wanted<'_> {
    Wanted {
        content: content.as_bytes(),
        mode,
        owner: Owner::ROOT,
    }
}

/// What writing `want` to the host path `path` would change, as a [`Check`].
pub fn check_file(root: &HostRoot, path: &str, want: &Wanted) -> Result<Check> {
    let real = root.path(path);
    let mut changes: Vec<String> = match real.parent() {
        Some(dir) => atomic::missing_dirs(dir)
            .iter()
            .map(|d| format!("create directory {}", d.display()))
            .collect(),
        None => vec![],
    };
    changes.extend(atomic::diff(&real, want)?);
    Ok(if changes.is_empty() {
        Check::Converged(format!("{path} in place"))
    } else {
        Check::Pending(changes)
    })
}

/// Writes `want` to the host path `path`, creating missing parent directories
/// (`root:root 0755`); `verify` sees the finished temp file before it is put in place.
/// Writes nothing when the file is already right.
pub fn apply_file(
    root: &HostRoot,
    path: &str,
    want: &Wanted,
    verify: impl FnOnce(&Path) -> Result<()>,
) -> Result<Vec<String>> {
    let real = root.path(path);
    if let Some(dir) = real.parent() {
        atomic::create_dirs(dir, DIR_MODE, Owner::ROOT)?;
    }
    atomic::ensure_verified(&real, want, verify)
}

impl Step for ManagedFile {
    fn id(&self) -> &'static str {
        self.id
    }

    fn check(&self, root: &HostRoot) -> Result<Check> {
        check_file(root, &self.path, &self.wanted())
    }

    fn apply(&self, root: &HostRoot, _: &dyn Progress) -> Result<()> {
        apply_file(root, &self.path, &self.wanted(), |_| Ok(())).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::VirtExtension;
    use crate::desired;
    use crate::step::{run, Mode, Quiet, Status};
    use crate::steps::testroot::{self, Snapshot};
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn steps() -> Vec<ManagedFile> {
        vec![
            ManagedFile::new(
                "nested",
                desired::NESTED_CONF_PATH,
                desired::nested_conf(VirtExtension::Vmx),
                0o644,
            ),
            ManagedFile::new(
                "kvm-udev",
                desired::KVM_UDEV_RULE_PATH,
                desired::kvm_udev_rule(),
                0o644,
            ),
        ]
    }

    #[test]
    fn writes_then_is_converged_and_writes_nothing() {
        let (_t, root) = testroot::new();
        for step in steps() {
            let Check::Pending(changes) = step.check(&root).unwrap() else {
                panic!("{} should be pending", step.id);
            };
            assert!(
                changes.iter().any(|c| c.contains("create directory")),
                "{changes:?}"
            );
            step.apply(&root, &Quiet).unwrap();
            let p = root.path(&step.path);
            assert_eq!(fs::read_to_string(&p).unwrap(), step.content);
            let m = fs::metadata(&p).unwrap();
            assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o644, 0, 0));
            let dm = fs::metadata(p.parent().unwrap()).unwrap();
            assert_eq!(dm.mode() & 0o7777, 0o755);
            assert!(matches!(step.check(&root).unwrap(), Check::Converged(_)));
            let before = Snapshot::take(&root);
            step.apply(&root, &Quiet).unwrap();
            assert_eq!(Snapshot::take(&root), before);
        }
        let boxed: Vec<Box<dyn Step>> = steps()
            .into_iter()
            .map(|s| Box::new(s) as Box<dyn Step>)
            .collect();
        let out = run(&boxed, &root, Mode::Apply, &Quiet, |_| {});
        assert!(out.iter().all(|o| o.status == Status::Ok), "{out:?}");
    }

    #[test]
    fn a_changed_file_is_rewritten_and_mode_fixed() {
        let (_t, root) = testroot::new();
        let step = &steps()[0];
        let p = root.path(&step.path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, "options kvm_intel nested=0\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        let out = testroot::apply_one(step.clone(), &root);
        assert_eq!(out.status, Status::Changed, "{out:?}");
        assert_eq!(out.changes.len(), 2, "{:?}", out.changes);
        assert_eq!(fs::read_to_string(&p).unwrap(), step.content);
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o644);
    }

    #[test]
    fn check_mode_writes_nothing() {
        let (_t, root) = testroot::new();
        let before = Snapshot::take(&root);
        let boxed: Vec<Box<dyn Step>> = steps()
            .into_iter()
            .map(|s| Box::new(s) as Box<dyn Step>)
            .collect();
        let out = run(&boxed, &root, Mode::Check, &Quiet, |_| {});
        assert!(out.iter().all(|o| o.status == Status::Changed));
        assert_eq!(Snapshot::take(&root), before);
    }
}
