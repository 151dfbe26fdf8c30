//! An account as validate's proofs act as it (a user's uid, gid, home and groups), looked up
//! in the shared user database (`virthost_model::accounts`, read from `/etc/passwd` and
//! `/etc/group`, never NSS).

use std::path::Path;

#[cfg(test)]
use virthost_model::accounts::Accounts;

/// A user as `/etc/passwd` and `/etc/group` describe it (read directly, never through NSS:
/// NSS lookups crash in a static glibc binary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    /// Supplementary groups: the primary group and every group that lists the user.
    pub groups: Vec<u32>,
}

/// Looks `name` up in `<root>/etc/passwd` and `<root>/etc/group` (parsed by
/// `virthost_model::accounts`, the same reading `bootstrap` does).
pub fn lookup_account(root: &Path, name: &str) -> Option<Account> {
    let accounts =
        virthost_model::accounts::Accounts::read(&virthost_model::hostroot::HostRoot::at(root))
            .ok()?;
    let user = accounts.user(name)?;
    let groups = accounts.gids_of(user);
    Some(Account {
        name: user.name.clone(),
        uid: user.uid,
        gid: user.gid,
        home: user.home.clone(),
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supplementary_groups_and_names() {
        let a = Accounts::parse(
            "root:x:0:0:root:/root:/bin/bash\nlibvirt-qemu:x:64055:107:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin\n",
            "root:x:0:\nkvm:x:107:\nlibvirt:x:106:stack,libvirt-qemu\n",
        );
        let q = a.user("libvirt-qemu").unwrap();
        assert_eq!(a.gids_of(q), vec![107, 106]);
        assert_eq!(a.gid_name(107), "kvm");
        assert_eq!(a.uid_name(64055), "libvirt-qemu");
        assert_eq!(a.uid_name(4242), "4242");
    }

    #[test]
    fn sole_member_of_a_group() {
        let a = Accounts::parse(
            "root:x:0:0::/root:/bin/bash\nstack:x:1000:1000::/home/stack:/bin/bash\nops:x:1001:1001::/home/ops:/bin/bash\nwww:x:33:1001::/var/www:/bin/sh\n",
            "root:x:0:\nstack:x:1000:\nops:x:1001:\nusers:x:100:stack\nshared:x:200:stack,ops\nempty:x:300:\n",
        );
        // stack's private group: its primary group, nobody else's.
        assert!(a.sole_member(1000, 1000));
        assert!(!a.sole_member(1000, 1001));
        // Listed alone as a supplementary member.
        assert!(a.sole_member(100, 1000));
        // Shared, empty, another user's primary group too, or no such group.
        assert!(!a.sole_member(200, 1000));
        assert!(!a.sole_member(300, 1000));
        assert!(!a.sole_member(1001, 1001));
        assert!(!a.sole_member(4242, 1000));
    }

    #[test]
    fn accounts_from_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nstack:x:1001:1001::/home/stack:/bin/bash\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nlibvirt:x:120:alice,stack\nkvm:x:104:\nstack:x:1001:\n",
        )
        .unwrap();
        let a = lookup_account(dir.path(), "stack").unwrap();
        assert_eq!((a.uid, a.gid, a.home.as_str()), (1001, 1001, "/home/stack"));
        assert_eq!(a.groups, [1001, 120]);
        assert!(lookup_account(dir.path(), "nobody").is_none());
    }
}
