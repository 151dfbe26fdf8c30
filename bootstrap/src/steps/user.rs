//! `user`: carries out [`crate::assess::user`]'s actions for the VM user: created with the
//! distribution's `useradd` (so its defaults: user group, skeleton, uid range), run through
//! the plan's [`Runner`]; a shell that refuses logins replaced with `usermod`; a
//! missing home created 0700 (an existing home keeps its mode), a wrongly owned one chowned
//! (the directory alone).

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;

use anyhow::{bail, Context, Result};

use crate::accounts::{Accounts, User};
use crate::assess::user::{self, Home, UserAction};
use crate::assess::Assessment;
use crate::atomic::{self, Owner};
use crate::cmd::{self, Runner};
use crate::desired;
use crate::hostroot::HostRoot;
use crate::step::{Check, Progress, Step, ToCheck};
use crate::username::UserName;

use crate::desired::USER_HOME_MODE as HOME_MODE;

#[derive(Clone)]
pub struct UserStep<'a> {
    pub name: UserName,
    /// Runs `useradd` and `usermod`.
    pub run: &'a dyn Runner,
}

/// What is at the home path of `user`.
fn home_facts(root: &HostRoot, user: &User) -> Result<Home> {
    let home = root.path(&user.home);
    match fs::symlink_metadata(&home) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Home::Missing),
        Err(e) => Err(e).with_context(|| format!("{}: cannot stat", home.display())),
        Ok(m) if !m.is_dir() => Ok(Home::NotDir),
        Ok(m) => Ok(Home::Dir {
            uid: m.uid(),
            gid: m.gid(),
        }),
    }
}

/// What to install when an account tool is missing (said only when it cannot start).
pub(crate) const ACCOUNT_TOOLS: &str =
    "useradd, usermod and groupadd come with passwd (Debian, Ubuntu) or shadow-utils";

impl UserStep<'_> {
    fn assess(&self, root: &HostRoot) -> Result<Assessment<UserAction>> {
        let accounts = Accounts::read(root)?;
        let user = accounts.user(self.name.as_str());
        let home = match user {
            Some(u) => home_facts(root, u)?,
            None => Home::Missing,
        };
        Ok(user::assess(&self.name, user, home))
    }

    fn act(&self, root: &HostRoot, a: &UserAction) -> Result<()> {
        match a {
            UserAction::Create { .. } => {
                let mut c = cmd::tool("useradd");
                c.args(["--create-home", "--shell", desired::USER_SHELL])
                    .arg(self.name.as_str());
                self.run
                    .run(&mut c)
                    .map_err(|e| e.or_install(ACCOUNT_TOOLS))?;
            }
            UserAction::SetShell { .. } => {
                let mut c = cmd::tool("usermod");
                c.args(["--shell", desired::USER_SHELL])
                    .arg(self.name.as_str());
                self.run
                    .run(&mut c)
                    .map_err(|e| e.or_install(ACCOUNT_TOOLS))?;
            }
            UserAction::CreateHome { home, .. } => {
                let owner = owner_of(root, &self.name)?;
                atomic::create_dirs(&root.path(home), HOME_MODE, owner)?;
            }
            UserAction::ChownHome { home, uid, gid, .. } => {
                // Only the directory itself: a recursive chown of a home is not ours to do.
                let p = root.path(home);
                std::os::unix::fs::lchown(&p, Some(*uid), Some(*gid))
                    .with_context(|| format!("{}: cannot chown", p.display()))?;
            }
        }
        Ok(())
    }
}

impl Step for UserStep<'_> {
    fn id(&self) -> &'static str {
        "user"
    }

    fn check(&self, root: &HostRoot) -> Result<Check> {
        self.assess(root)?.to_check(|why| why.to_string())
    }

    fn apply(&self, root: &HostRoot, _: &dyn Progress) -> Result<()> {
        // Twice at most: a user useradd just made is assessed again for what is left.
        for _ in 0..2 {
            match self.assess(root)? {
                Assessment::Met(_) | Assessment::Unknown(_) => return Ok(()),
                Assessment::Blocked { detail, hint } => bail!("{detail}: {hint}"),
                Assessment::NotMet { actions, .. } => {
                    for a in &actions {
                        self.act(root, a)?;
                    }
                }
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
        let world = crate::fixture::World::at(root.dir());
        let s = UserStep {
            name: name("ops"),
            run: &world,
        };
        let Check::Pending(changes) = s.check(&root).unwrap() else {
            panic!("pending expected");
        };
        assert_eq!(
            changes,
            ["create user ops (home /home/ops, shell /bin/bash)"]
        );
        s.apply(&root, &Quiet).unwrap();
        assert_eq!(
            world.calls(),
            ["useradd --create-home --shell /bin/bash ops"]
        );
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
        // A shell of the user's own (sh) is kept; one that refuses logins is replaced.
        let sh = testroot::PASSWD.replace("/home/stack:/bin/bash", "/home/stack:/bin/sh");
        testroot::write(&root, "/etc/passwd", &sh, 0o644);
        let world = crate::fixture::World::at(root.dir());
        let s = UserStep {
            name: name("stack"),
            run: &world,
        };
        assert!(matches!(s.check(&root).unwrap(), Check::Converged(_)));
        let passwd =
            testroot::PASSWD.replace("/home/stack:/bin/bash", "/home/stack:/usr/sbin/nologin");
        testroot::write(&root, "/etc/passwd", &passwd, 0o644);
        let world = crate::fixture::World::at(root.dir());
        let s = UserStep {
            name: name("stack"),
            run: &world,
        };
        let Check::Pending(changes) = s.check(&root).unwrap() else {
            panic!("pending expected");
        };
        assert_eq!(
            changes,
            ["set login shell of stack to /bin/bash (now '/usr/sbin/nologin', which refuses logins)"]
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
        let world = crate::fixture::World::at(root.dir());
        let s = UserStep {
            name: name("stack"),
            run: &world,
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
        let world = crate::fixture::World::at(root.dir());
        let s = UserStep {
            name: name("stack"),
            run: &world,
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
