//! The SSH key requirements: every key given for root (`--root-key`) and for the VM user
//! (`--stack-key`) is in that account's `authorized_keys`, compared by type and blob (the
//! comment and options of a line do not matter; lines that are no key are skipped, as sshd
//! skips them). bootstrap's `root-keys` and `user-keys` steps own them (validate's
//! `ssh.keys.root`, `ssh.keys.<user>`); how they write the file (modes, owner, SELinux
//! context) is theirs.

use super::{Action, Assessment};
use crate::accounts::Accounts;
use crate::os::Family;
use crate::sshkey::PublicKey;

/// Whether sshd's `StrictModes` ignores the keys of user `uid` because of a path on their
/// way (the home, `~/.ssh`, `authorized_keys`) with `mode` and group `gid`: writable by the
/// world, or by the group, except (Debian's and Ubuntu's sshd) a group whose only member is
/// the user. bootstrap's keys steps make the home meet it; validate's `ssh.perms.*` judge
/// every path with it.
pub fn strict_modes_refuse(
    mode: u32,
    gid: u32,
    uid: u32,
    accounts: &Accounts,
    family: Family,
) -> bool {
    let private_group = family == Family::Apt && accounts.sole_member(gid, uid);
    mode & 0o002 != 0 || (mode & 0o020 != 0 && !private_group)
}

/// What a keys step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAction {
    /// Append this key (its description) to `file`.
    Add { key: String, file: String },
}

impl Action for KeyAction {
    fn describe(&self) -> String {
        match self {
            KeyAction::Add { key, file } => format!("add {key} to {file}"),
        }
    }
}

/// The keys of `wanted` that `existing` (an `authorized_keys` text) lacks, each once.
pub fn missing<'a>(existing: &str, wanted: &'a [PublicKey]) -> Vec<&'a PublicKey> {
    let present: Vec<PublicKey> = existing
        .lines()
        .filter_map(|l| PublicKey::parse(l).ok())
        .collect();
    let mut missing: Vec<&PublicKey> = Vec::new();
    for k in wanted {
        let known = present.iter().chain(missing.iter().copied());
        if !known.into_iter().any(|p| p.same_key(k)) {
            missing.push(k);
        }
    }
    missing
}

/// `wanted` in `file` (the host path, for messages), whose text is `existing` (empty when
/// the file does not exist); `given_with` names where the keys came from (`--root-key`).
pub fn keys(
    file: &str,
    existing: &str,
    wanted: &[PublicKey],
    given_with: &str,
) -> Assessment<KeyAction> {
    let lacking = missing(existing, wanted);
    if lacking.is_empty() {
        return Assessment::Met(format!(
            "{file} holds all {} key(s) given with {given_with}",
            wanted.len()
        ));
    }
    let described: Vec<String> = lacking.iter().map(|k| k.describe()).collect();
    Assessment::NotMet {
        detail: format!(
            "{file} lacks {} of {} key(s) given with {given_with}: {}",
            lacking.len(),
            wanted.len(),
            described.join(", ")
        ),
        actions: described
            .into_iter()
            .map(|key| KeyAction::Add {
                key,
                file: file.to_string(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sshkey::tests::{ED25519, ED25519_2};

    #[test]
    fn a_key_counts_by_type_and_blob_whatever_its_comment() {
        let k = PublicKey::parse(ED25519).unwrap();
        let k2 = PublicKey::parse(ED25519_2).unwrap();
        let blob = ED25519
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let existing = format!("# a comment\nnot a key\nno-pty {blob} other-comment\n");
        let wanted = [k.clone(), k2.clone(), k2.clone()];
        let a = keys(
            "/root/.ssh/authorized_keys",
            &existing,
            &wanted,
            "--root-key",
        );
        let Assessment::NotMet { detail, actions } = &a else {
            panic!("{a:?}")
        };
        assert!(
            detail.starts_with("/root/.ssh/authorized_keys lacks 1 of 3"),
            "{detail}"
        );
        assert_eq!(
            actions,
            &[KeyAction::Add {
                key: k2.describe(),
                file: "/root/.ssh/authorized_keys".into()
            }]
        );
        let both = format!("{existing}{ED25519_2}\n");
        assert!(matches!(
            keys("/f", &both, &wanted, "--root-key"),
            Assessment::Met(_)
        ));
    }
}
