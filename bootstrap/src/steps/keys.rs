//! SSH keys for root (`--root-key`) and the user (`--stack-key`), as
//! [`crate::assess::keys`] judges them: every given key that is not already in `~user/.ssh/authorized_keys` (same type and blob) is appended; lines
//! already there are kept verbatim, in order. `.ssh` is 0700 and `authorized_keys` 0600,
//! owned by the user; the SELinux context is restored where SELinux is enabled.
//!
//! Key files are parsed up front ([`KeysStep::from_files`]), so a bad or private key is
//! refused before any step has written anything.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::accounts::{Accounts, User};
use crate::assess::keys;
use crate::atomic::{self, Wanted};
use crate::cmd::{self, Runner};
use crate::facts::Selinux;
use crate::hostroot::HostRoot;
use crate::os::Family;
use crate::sshkey::{self, PublicKey};
use crate::step::{Check, Progress, Step};
use crate::username::UserName;

pub const SSH_DIR_MODE: u32 = 0o700;
pub const AUTHORIZED_KEYS_MODE: u32 = 0o600;
/// Exists when SELinux is enabled (any mode but disabled).
pub const SELINUX_ENFORCE: &str = "/sys/fs/selinux/enforce";

#[derive(Clone)]
pub struct KeysStep<'a> {
    /// Whose `authorized_keys`.
    pub user: UserName,
    pub keys: Vec<PublicKey>,
    /// Runs `restorecon` where SELinux is enabled.
    pub run: &'a dyn Runner,
    /// The host's family: Debian's sshd accepts a home writable by the user's own group.
    pub family: Family,
}

impl std::fmt::Debug for KeysStep<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeysStep")
            .field("user", &self.user)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl<'a> KeysStep<'a> {
    /// The step for `user` with every key of `files`, parsed now: the first unreadable,
    /// invalid or private key file is an error (the CLI exits 2).
    pub fn from_files(
        user: &UserName,
        files: &[PathBuf],
        run: &'a dyn Runner,
        family: Family,
    ) -> Result<KeysStep<'a>> {
        Ok(KeysStep {
            user: user.clone(),
            keys: sshkey::read_key_files(files)?,
            run,
            family,
        })
    }

    /// The home's mode with the write bits sshd's `StrictModes` refuses taken off, when it
    /// has any (`assess::keys::strict_modes_refuse`): (home, its mode now, the mode wanted).
    fn home_fix(
        &self,
        root: &HostRoot,
        accounts: &Accounts,
        user: &User,
    ) -> Result<Option<(PathBuf, u32, u32)>> {
        let home = root.path(&user.home);
        // The directory the home names, through a symlink (ostree's /root -> var/roothome),
        // as sshd judges it.
        let md =
            std::fs::metadata(&home).with_context(|| format!("{}: cannot stat", home.display()))?;
        if !md.is_dir() {
            bail!(
                "{}: home of '{}' is not a directory",
                home.display(),
                self.user
            );
        }
        let mode = md.mode() & 0o7777;
        if !keys::strict_modes_refuse(mode, md.gid(), md.uid(), accounts, self.family) {
            return Ok(None);
        }
        // Only the user's own home: a shared directory someone made a home (/tmp) is not
        // bootstrap's to change.
        if md.uid() != user.uid {
            bail!(
                "{}: home of '{}', owned by uid {}, mode {mode:04o}: others can write it, so \
                 sshd's StrictModes ignores the keys; give '{}' a home of its own",
                home.display(),
                self.user,
                md.uid(),
                self.user
            );
        }
        Ok(Some((home, mode, mode & !0o022)))
    }

    fn is_root(&self) -> bool {
        self.user.is_root()
    }

    /// The given keys that `existing` (an `authorized_keys` text) lacks, without repeats
    /// (the shared [`crate::assess::keys::missing`]).
    pub fn missing<'k>(&'k self, existing: &str) -> Vec<&'k PublicKey> {
        keys::missing(existing, &self.keys)
    }

    /// Where the keys came from, for messages.
    fn given_with(&self) -> &'static str {
        if self.is_root() {
            "--root-key"
        } else {
            "--stack-key"
        }
    }
}

struct Paths {
    ssh_dir: PathBuf,
    file: PathBuf,
    /// Host path, for messages.
    shown: String,
}

fn paths(root: &HostRoot, user: &User) -> Paths {
    let ssh = format!("{}/.ssh", user.home.trim_end_matches('/'));
    Paths {
        ssh_dir: root.path(&ssh),
        file: root.path(format!("{ssh}/authorized_keys")),
        shown: format!("{ssh}/authorized_keys"),
    }
}

fn read_existing(file: &Path) -> Result<String> {
    match std::fs::symlink_metadata(file) {
        Ok(m) if !m.file_type().is_file() => {
            bail!("{}: exists and is not a regular file", file.display())
        }
        Ok(_) => std::fs::read_to_string(file)
            .with_context(|| format!("{}: cannot read", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e).with_context(|| format!("{}: cannot stat", file.display())),
    }
}

/// Whether SELinux contexts must be restored: SELinux is enabled.
pub fn selinux_enabled(root: &HostRoot) -> bool {
    Selinux::read(root).enabled()
}

impl Step for KeysStep<'_> {
    fn id(&self) -> &'static str {
        if self.is_root() {
            "root-keys"
        } else {
            "user-keys"
        }
    }

    fn depends_on(&self) -> &'static [&'static str] {
        if self.is_root() {
            &[]
        } else {
            &["user"]
        }
    }

    fn check(&self, root: &HostRoot) -> Result<Check> {
        if self.keys.is_empty() {
            return Ok(Check::Skip("no key given".into()));
        }
        let accounts = Accounts::read(root)?;
        let Some(user) = accounts.user(self.user.as_str()) else {
            return Ok(Check::Pending(vec![format!(
                "add {} key(s) to ~{}/.ssh/authorized_keys once user '{}' exists",
                self.keys.len(),
                self.user,
                self.user
            )]));
        };
        let p = paths(root, user);
        let owner = user.owner();
        let mut changes = vec![];
        if root.path(&user.home).is_dir() {
            if let Some((home, now, want)) = self.home_fix(root, &accounts, user)? {
                changes.push(format!(
                    "chmod {want:04o} {} (now {now:04o}: sshd's StrictModes ignores keys under a home others can write)",
                    home.display()
                ));
            }
        }
        changes.extend(atomic::dir_diff(&p.ssh_dir, SSH_DIR_MODE, owner)?);
        let existing = read_existing(&p.file)?;
        changes.extend(keys::keys(&p.shown, &existing, &self.keys, self.given_with()).described());
        if p.file.exists() {
            let want = Wanted {
                content: existing.as_bytes(),
                mode: AUTHORIZED_KEYS_MODE,
                owner,
            };
            changes.extend(atomic::diff(&p.file, &want)?);
        }
        Ok(if changes.is_empty() {
            Check::Converged(format!("{} key(s) present in {}", self.keys.len(), p.shown))
        } else {
            Check::Pending(changes)
        })
    }

    fn apply(&self, root: &HostRoot, _: &dyn Progress) -> Result<()> {
        let accounts = Accounts::read(root)?;
        let user = accounts.user(self.user.as_str()).with_context(|| {
            format!(
                "no user '{}' in {}",
                self.user,
                root.path("/etc/passwd").display()
            )
        })?;
        let p = paths(root, user);
        let home = root.path(&user.home);
        if !home.is_dir() {
            bail!("{}: home of '{}' does not exist", home.display(), self.user);
        }
        let owner = user.owner();
        if let Some((home, _, want)) = self.home_fix(root, &accounts, user)? {
            std::fs::set_permissions(&home, std::fs::Permissions::from_mode(want))
                .with_context(|| format!("chmod {want:04o} {}", home.display()))?;
        }
        let mut changed = !atomic::ensure_dir(&p.ssh_dir, SSH_DIR_MODE, owner)?.is_empty();
        let existing = read_existing(&p.file)?;
        let add: Vec<&str> = self
            .missing(&existing)
            .iter()
            .map(|k| k.line.as_str())
            .collect();
        let content = atomic::append_lines(&existing, &add);
        let want = Wanted {
            content: content.as_bytes(),
            mode: AUTHORIZED_KEYS_MODE,
            owner,
        };
        changed |= !atomic::ensure(&p.file, &want)?.is_empty();
        if changed && selinux_enabled(root) {
            self.run
                .run(cmd::tool("restorecon").arg("-R").arg(&p.ssh_dir))
                .context("SELinux is enabled: restoring the contexts of the keys (restorecon comes with policycoreutils)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::{Quiet, Status};
    use crate::steps::testroot::{self, Snapshot, STACK_GID, STACK_UID};
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use virthost_testkit::{ED25519, ED25519_2};

    fn key(line: &str) -> PublicKey {
        PublicKey::parse(line).unwrap()
    }

    fn step(user: &str, keys: &[&str]) -> KeysStep<'static> {
        KeysStep {
            user: UserName::parse(user, crate::username::Rules::Any).unwrap(),
            keys: keys.iter().map(|l| key(l)).collect(),
            run: &testroot::NO_COMMANDS,
            family: Family::Yum,
        }
    }

    fn mode_owner(p: &Path) -> (u32, u32, u32) {
        let m = fs::metadata(p).unwrap();
        (m.mode() & 0o7777, m.uid(), m.gid())
    }

    #[test]
    fn adds_keys_for_the_user_with_modes_and_owner_once() {
        let (_t, root) = testroot::new();
        let s = step("stack", &[ED25519, ED25519_2]);
        assert_eq!((s.id(), s.depends_on()), ("user-keys", &["user"][..]));
        let Check::Pending(changes) = s.check(&root).unwrap() else {
            panic!("pending expected");
        };
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert!(
            changes[1].contains("ssh-ed25519 alice@laptop"),
            "{changes:?}"
        );
        s.apply(&root, &Quiet).unwrap();
        let ssh = root.path("/home/stack/.ssh");
        let file = ssh.join("authorized_keys");
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            format!("{ED25519}\n{ED25519_2}\n")
        );
        assert_eq!(mode_owner(&ssh), (0o700, STACK_UID, STACK_GID));
        assert_eq!(mode_owner(&file), (0o600, STACK_UID, STACK_GID));
        assert!(matches!(s.check(&root).unwrap(), Check::Converged(_)));
        let before = Snapshot::take(&root);
        s.apply(&root, &Quiet).unwrap();
        let out = testroot::apply_one(s, &root);
        assert_eq!(out.status, Status::Ok, "{out:?}");
        assert_eq!(Snapshot::take(&root), before);
    }

    #[test]
    fn keeps_existing_lines_verbatim_and_adds_no_duplicate() {
        let (_t, root) = testroot::new();
        // Root's home comes from /etc/passwd, wherever it is.
        let passwd = testroot::PASSWD.replace(":/root:", ":/var/roothome:");
        testroot::write(&root, "/etc/passwd", &passwd, 0o644);
        fs::create_dir_all(root.path("/var/roothome")).unwrap();
        let alice_other_comment = format!(
            "no-pty,from=\"10.0.0.0/8\" {} renamed",
            ED25519.rsplit_once(' ').unwrap().0
        );
        // The user's own lines: a comment, an option-bearing copy of alice's key, a line
        // that is not a key, and no final newline.
        let existing = format!("# mine\n{alice_other_comment}\nnot a key at all");
        testroot::write(
            &root,
            "/var/roothome/.ssh/authorized_keys",
            &existing,
            0o644,
        );
        let s = step("root", &[ED25519, ED25519_2, ED25519]);
        assert_eq!((s.id(), s.depends_on()), ("root-keys", &[][..]));
        let Check::Pending(changes) = s.check(&root).unwrap() else {
            panic!("pending expected");
        };
        // .ssh mode (0755 from write()), bob's key, authorized_keys mode.
        assert_eq!(changes.len(), 3, "{changes:?}");
        s.apply(&root, &Quiet).unwrap();
        let file = root.path("/var/roothome/.ssh/authorized_keys");
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            format!("{existing}\n{ED25519_2}\n")
        );
        assert_eq!(mode_owner(&file), (0o600, 0, 0));
        assert!(matches!(s.check(&root).unwrap(), Check::Converged(_)));
    }

    #[test]
    fn a_wrong_mode_alone_is_fixed_in_place() {
        let (_t, root) = testroot::new();
        let s = step("stack", &[ED25519]);
        s.apply(&root, &Quiet).unwrap();
        let file = root.path("/home/stack/.ssh/authorized_keys");
        let ino = fs::metadata(&file).unwrap().ino();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let Check::Pending(changes) = s.check(&root).unwrap() else {
            panic!("pending expected");
        };
        assert_eq!(changes.len(), 1, "{changes:?}");
        s.apply(&root, &Quiet).unwrap();
        assert_eq!(mode_owner(&file), (0o600, STACK_UID, STACK_GID));
        assert_eq!(fs::metadata(&file).unwrap().ino(), ino);
    }

    #[test]
    fn a_hard_linked_authorized_keys_is_never_chmodded() {
        let (t, root) = testroot::new();
        let s = step("stack", &[ED25519]);
        s.apply(&root, &Quiet).unwrap();
        // The user links another file (here a stand-in for /etc/shadow) as authorized_keys
        // and makes it group-readable, so that a fix of the mode would land on that file.
        let secret = t.path().join("etc/shadow");
        let file = root.path("/home/stack/.ssh/authorized_keys");
        fs::remove_file(&file).unwrap();
        fs::write(&secret, format!("{ED25519}\n")).unwrap();
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o640)).unwrap();
        fs::hard_link(&secret, &file).unwrap();
        let err = format!("{:#}", s.apply(&root, &Quiet).unwrap_err());
        assert!(err.contains("has 2 hard links"), "{err}");
        assert_eq!(mode_owner(&secret), (0o640, 0, 0));
    }

    #[test]
    fn under_selinux_the_contexts_are_restored_after_a_change_only() {
        let (_t, root) = testroot::new();
        testroot::write(&root, SELINUX_ENFORCE, "1\n", 0o644);
        let world = crate::fixture::World::at(root.dir());
        let s = KeysStep {
            run: &world,
            ..step("stack", &[ED25519])
        };
        s.apply(&root, &Quiet).unwrap();
        assert_eq!(world.calls(), ["restorecon -R /home/stack/.ssh"]);
        s.apply(&root, &Quiet).unwrap();
        assert_eq!(
            world.calls().len(),
            1,
            "nothing changed, nothing relabelled"
        );
        // Without restorecon, the step fails saying what to install.
        testroot::write(&root, "/home/stack/.ssh/authorized_keys", "", 0o600);
        let err = format!(
            "{:#}",
            step("stack", &[ED25519]).apply(&root, &Quiet).unwrap_err()
        );
        assert!(err.contains("policycoreutils"), "{err}");
    }

    #[test]
    fn a_home_others_can_write_loses_those_bits_as_sshd_wants() {
        let (_t, root) = testroot::new();
        let home = root.path("/home/stack");
        fs::set_permissions(&home, fs::Permissions::from_mode(0o775)).unwrap();
        // Debian's sshd accepts a home writable by the user's private group: untouched.
        let apt = KeysStep {
            family: Family::Apt,
            ..step("stack", &[ED25519])
        };
        apt.apply(&root, &Quiet).unwrap();
        assert_eq!(mode_owner(&home).0, 0o775);
        // Elsewhere StrictModes refuses it: group write goes, the rest of the mode stays.
        let s = step("stack", &[ED25519]);
        let Check::Pending(changes) = s.check(&root).unwrap() else {
            panic!("pending expected");
        };
        assert!(changes[0].starts_with("chmod 0755 "), "{changes:?}");
        assert!(changes[0].contains("(now 0775"), "{changes:?}");
        let out = testroot::apply_one(s, &root);
        assert_eq!(out.status, Status::Changed, "{out:?}");
        assert_eq!(mode_owner(&home).0, 0o755);
        // World-writable: refused everywhere; the sticky bit stays.
        fs::set_permissions(&home, fs::Permissions::from_mode(0o1757)).unwrap();
        apt.apply(&root, &Quiet).unwrap();
        assert_eq!(mode_owner(&home).0, 0o1755);
        // A home that is not the user's own (a shared /tmp) is never changed.
        fs::set_permissions(&home, fs::Permissions::from_mode(0o1777)).unwrap();
        std::os::unix::fs::chown(&home, Some(0), Some(0)).unwrap();
        let err = format!("{:#}", apt.apply(&root, &Quiet).unwrap_err());
        assert!(err.contains("give 'stack' a home of its own"), "{err}");
        assert_eq!(mode_owner(&home), (0o1777, 0, 0));
    }

    #[test]
    fn a_home_that_is_a_symlink_is_judged_and_used_through_it() {
        // As on ostree hosts: /root -> var/roothome (relative here: the root is a test dir).
        let (_t, root) = testroot::new();
        let target = root.path("/var/roothome");
        fs::create_dir_all(&target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o750)).unwrap();
        fs::remove_dir_all(root.path("/root")).unwrap();
        std::os::unix::fs::symlink("var/roothome", root.path("/root")).unwrap();
        let s = step("root", &[ED25519]);
        assert!(matches!(s.check(&root).unwrap(), Check::Pending(_)));
        let out = testroot::apply_one(s, &root);
        assert_eq!(out.status, Status::Changed, "{out:?}");
        assert_eq!(
            fs::read_to_string(target.join(".ssh/authorized_keys")).unwrap(),
            format!("{ED25519}\n")
        );
        assert_eq!(mode_owner(&target).0, 0o750);
        assert!(matches!(
            step("root", &[ED25519]).check(&root).unwrap(),
            Check::Converged(_)
        ));
    }

    #[test]
    fn refuses_a_symlinked_ssh_dir() {
        let (t, root) = testroot::new();
        let elsewhere = t.path().join("etc");
        std::os::unix::fs::symlink(&elsewhere, root.path("/home/stack/.ssh")).unwrap();
        let s = step("stack", &[ED25519]);
        let err = s.check(&root).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
        assert!(s.apply(&root, &Quiet).is_err());
        assert!(!elsewhere.join("authorized_keys").exists());
    }

    #[test]
    fn a_missing_user_is_pending_in_check_and_fails_in_apply() {
        let (_t, root) = testroot::new();
        let s = step("ops", &[ED25519]);
        assert!(matches!(s.check(&root).unwrap(), Check::Pending(_)));
        let err = s.apply(&root, &Quiet).unwrap_err().to_string();
        assert!(err.contains("no user 'ops'"), "{err}");
        assert!(matches!(
            step("ops", &[]).check(&root).unwrap(),
            Check::Skip(_)
        ));
        assert!(!selinux_enabled(&root));
    }

    #[test]
    fn from_files_parses_all_and_dedups() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a.pub");
        let b = t.path().join("b.pub");
        fs::write(&a, format!("{ED25519}\n")).unwrap();
        fs::write(&b, format!("# two\n{ED25519_2}\n{ED25519}\n")).unwrap();
        let s = KeysStep::from_files(
            &UserName::parse("stack", crate::username::Rules::Any).unwrap(),
            &[a, b.clone()],
            &testroot::NO_COMMANDS,
            Family::Apt,
        )
        .unwrap();
        assert_eq!(s.keys.len(), 2);
        fs::write(&b, "-----BEGIN OPENSSH PRIVATE KEY-----\nxyz\n").unwrap();
        let err = format!(
            "{:#}",
            KeysStep::from_files(&UserName::root(), &[b], &testroot::NO_COMMANDS, Family::Apt)
                .unwrap_err()
        );
        assert!(err.contains("private key"), "{err}");
    }
}
