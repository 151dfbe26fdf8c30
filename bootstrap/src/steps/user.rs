//! The user that manages VMs (`stack` unless `--user`): exists, has its home (owned by it;
//! created 0700 when missing, an existing home keeps its mode) and the login shell
//! [`desired::USER_SHELL`]. Created with the distribution's `useradd` (so its defaults:
//! user group, skeleton, uid range), `--root` when the host root is not `/`.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::accounts::{Accounts, User};
use crate::atomic::{self, Owner};
use crate::cmd::{self, CommandExt};
use crate::desired;
use crate::hostroot::HostRoot;
use crate::step::{Check, Progress, Step};
use crate::username::UserName;

/// Mode of a home this step creates itself (useradd applies the distribution's own).
pub const HOME_MODE: u32 = 0o700;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserStep {
    pub name: UserName,
}

/// What is wrong with the home of `user` (empty: nothing).
fn home_changes(root: &HostRoot, user: &User) -> Result<Vec<String>> {
    let home = root.path(&user.home);
    match fs::symlink_metadata(&home) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(vec![format!(
            "create home {} (mode {HOME_MODE:04o}, owner {})",
            user.home, user.name
        )]),
        Err(e) => Err(e).with_context(|| format!("{}: cannot stat", home.display())),
        Ok(m) if !m.is_dir() => bail!(
            "{}: home of '{}' exists and is not a directory",
            home.display(),
            user.name
        ),
        Ok(m) if (m.uid(), m.gid()) != (user.uid, user.gid) => Ok(vec![format!(
            "chown {} to {}:{} (now {}:{})",
            user.home,
            user.uid,
            user.gid,
            m.uid(),
            m.gid()
        )]),
        Ok(_) => Ok(vec![]),
    }
}

/// A tool run against the host root: `--root DIR` when the root is not `/`.
fn host_command(root: &HostRoot, tool: &str) -> Result<Command> {
    let path = cmd::find(tool)
        .with_context(|| format!("{tool} not found (install passwd/shadow-utils)"))?;
    let mut cmd = Command::new(path);
    if !root.is_system() {
        cmd.arg("--root").arg(root.dir());
    }
    Ok(cmd)
}

impl Step for UserStep {
    fn id(&self) -> &'static str {
        "user"
    }

    fn check(&self, root: &HostRoot) -> Result<Check> {
        let accounts = Accounts::read(root)?;
        let Some(user) = accounts.user(self.name.as_str()) else {
            return Ok(Check::Pending(vec![format!(
                "create user {} (home {}, shell {})",
                self.name,
                desired::user_home(&self.name),
                desired::USER_SHELL
            )]));
        };
        let mut changes = Vec::new();
        if user.shell != desired::USER_SHELL {
            changes.push(format!(
                "set login shell of {} to {} (now '{}')",
                user.name,
                desired::USER_SHELL,
                user.shell
            ));
        }
        changes.extend(home_changes(root, user)?);
        Ok(if changes.is_empty() {
            Check::Converged(format!(
                "{} (uid {}) with home {} and shell {}",
                user.name, user.uid, user.home, user.shell
            ))
        } else {
            Check::Pending(changes)
        })
    }

    fn apply(&self, root: &HostRoot, _: &dyn Progress) -> Result<()> {
        if Accounts::read(root)?.user(self.name.as_str()).is_none() {
            let mut cmd = host_command(root, "useradd")?;
            cmd.args(["--create-home", "--shell", desired::USER_SHELL])
                .arg(self.name.as_str());
            cmd.run()?;
        }
        let accounts = Accounts::read(root)?;
        let user = accounts.user(self.name.as_str()).with_context(|| {
            format!(
                "useradd succeeded but '{}' is not in {}",
                self.name,
                root.path("/etc/passwd").display()
            )
        })?;
        if user.shell != desired::USER_SHELL {
            let mut cmd = host_command(root, "usermod")?;
            cmd.args(["--shell", desired::USER_SHELL])
                .arg(self.name.as_str());
            cmd.run()?;
        }
        if !home_changes(root, user)?.is_empty() {
            let home = root.path(&user.home);
            if home.exists() {
                // Only the directory itself: a recursive chown of a home is not ours to do.
                std::os::unix::fs::lchown(&home, Some(user.uid), Some(user.gid))
                    .with_context(|| format!("{}: cannot chown", home.display()))?;
            } else {
                atomic::create_dirs(&home, HOME_MODE, user.owner())?;
            }
        }
        Ok(())
    }
}

/// The owner of `name`'s files, read from the host's user database.
pub fn owner_of(root: &HostRoot, name: &UserName) -> Result<Owner> {
    Accounts::read(root)?
        .user(name.as_str())
        .map(User::owner)
        .with_context(|| format!("no user '{name}' in {}", root.path("/etc/passwd").display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::{Quiet, Status};
    use crate::steps::testroot::{self, Snapshot, STACK_GID, STACK_UID};
    use std::os::unix::fs::PermissionsExt;

    fn name(n: &str) -> UserName {
        UserName::parse(n, crate::username::Rules::Any).unwrap()
    }

    /// A root with the distribution's useradd configuration, as `useradd --root` reads it.
    fn root_with_login_defs() -> (tempfile::TempDir, HostRoot) {
        let (t, root) = testroot::new();
        for f in ["/etc/login.defs", "/etc/default/useradd"] {
            if let Ok(text) = fs::read_to_string(f) {
                testroot::write(&root, f, &text, 0o644);
            }
        }
        fs::create_dir_all(root.path("/etc/skel")).unwrap();
        testroot::write(&root, "/etc/skel/.profile", "# skel\n", 0o644);
        (t, root)
    }

    #[test]
    fn creates_a_user_with_useradd_in_the_root() {
        let (_t, root) = root_with_login_defs();
        let host_passwd = fs::read_to_string("/etc/passwd").unwrap();
        let s = UserStep { name: name("ops") };
        let Check::Pending(changes) = s.check(&root).unwrap() else {
            panic!("pending expected");
        };
        assert_eq!(
            changes,
            ["create user ops (home /home/ops, shell /bin/bash)"]
        );
        s.apply(&root, &Quiet).unwrap();
        let a = Accounts::read(&root).unwrap();
        let ops = a.user("ops").unwrap();
        assert_eq!(
            (ops.home.as_str(), ops.shell.as_str()),
            ("/home/ops", "/bin/bash")
        );
        assert!(ops.uid >= 1000 && ops.uid != STACK_UID, "uid {}", ops.uid);
        let m = fs::metadata(root.path("/home/ops")).unwrap();
        assert!(m.is_dir());
        assert_eq!((m.uid(), m.gid()), (ops.uid, ops.gid));
        assert!(root.path("/home/ops/.profile").exists(), "skeleton copied");
        // The running system was not touched.
        assert_eq!(fs::read_to_string("/etc/passwd").unwrap(), host_passwd);
        assert!(matches!(s.check(&root).unwrap(), Check::Converged(_)));
        let before = Snapshot::take(&root);
        let out = testroot::apply_one(s, &root);
        assert_eq!(out.status, Status::Ok, "{out:?}");
        assert_eq!(Snapshot::take(&root), before);
    }

    #[test]
    fn fixes_the_shell_with_usermod() {
        let (_t, root) = root_with_login_defs();
        let passwd = testroot::PASSWD.replace("/home/stack:/bin/bash", "/home/stack:/bin/sh");
        testroot::write(&root, "/etc/passwd", &passwd, 0o644);
        let s = UserStep {
            name: name("stack"),
        };
        let Check::Pending(changes) = s.check(&root).unwrap() else {
            panic!("pending expected");
        };
        assert_eq!(
            changes,
            ["set login shell of stack to /bin/bash (now '/bin/sh')"]
        );
        let out = testroot::apply_one(s.clone(), &root);
        assert_eq!(out.status, Status::Changed, "{out:?}");
        let text = fs::read_to_string(root.path("/etc/passwd")).unwrap();
        // usermod changed that one field; the other lines are as they were.
        assert_eq!(text, testroot::PASSWD);
    }

    #[test]
    fn an_existing_user_and_home_are_converged() {
        let (_t, root) = testroot::new();
        let s = UserStep {
            name: name("stack"),
        };
        let Check::Converged(detail) = s.check(&root).unwrap() else {
            panic!("converged expected");
        };
        assert!(detail.contains("uid 1234"), "{detail}");
        let before = Snapshot::take(&root);
        s.apply(&root, &Quiet).unwrap();
        assert_eq!(Snapshot::take(&root), before);
    }

    #[test]
    fn creates_a_missing_home_and_fixes_its_owner() {
        let (_t, root) = testroot::new();
        let s = UserStep {
            name: name("stack"),
        };
        let home = root.path("/home/stack");
        fs::remove_dir(&home).unwrap();
        s.apply(&root, &Quiet).unwrap();
        let m = fs::metadata(&home).unwrap();
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (0o700, STACK_UID, STACK_GID)
        );
        // Owned by root, mode 0750: owner fixed, the distribution's mode kept.
        std::os::unix::fs::chown(&home, Some(0), Some(0)).unwrap();
        fs::set_permissions(&home, fs::Permissions::from_mode(0o750)).unwrap();
        assert!(matches!(s.check(&root).unwrap(), Check::Pending(_)));
        s.apply(&root, &Quiet).unwrap();
        let m = fs::metadata(&home).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid()), (0o750, STACK_UID));
        assert!(matches!(s.check(&root).unwrap(), Check::Converged(_)));
        assert_eq!(owner_of(&root, &name("stack")).unwrap().uid, STACK_UID);
        assert!(owner_of(&root, &name("nobody-here")).is_err());
    }
}
