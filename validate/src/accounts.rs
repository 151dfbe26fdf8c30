//! `/etc/passwd` and `/etc/group`, read as files (never NSS: ENVIRONMENT.md, static glibc
//! binaries segfault in getpwnam for unknown names).
//!
//! TODO(shared): switch to `bootstrap::accounts` once the lead merges it into main; this is
//! the minimal private parser until then.

use bootstrap::hostroot::HostRoot;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    pub users: Vec<User>,
    pub groups: Vec<Group>,
}

impl Accounts {
    pub fn read(root: &HostRoot) -> Accounts {
        let passwd = root
            .read_optional("/etc/passwd")
            .ok()
            .flatten()
            .unwrap_or_default();
        let group = root
            .read_optional("/etc/group")
            .ok()
            .flatten()
            .unwrap_or_default();
        Accounts::parse(&passwd, &group)
    }

    pub fn parse(passwd: &str, group: &str) -> Accounts {
        let users = passwd
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                if f.len() < 7 {
                    return None;
                }
                Some(User {
                    name: f[0].to_string(),
                    uid: f[2].parse().ok()?,
                    gid: f[3].parse().ok()?,
                    home: f[5].to_string(),
                    shell: f[6].to_string(),
                })
            })
            .collect();
        let groups = group
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                if f.len() < 4 {
                    return None;
                }
                Some(Group {
                    name: f[0].to_string(),
                    gid: f[2].parse().ok()?,
                    members: f[3]
                        .split(',')
                        .filter(|m| !m.is_empty())
                        .map(str::to_string)
                        .collect(),
                })
            })
            .collect();
        Accounts { users, groups }
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn user_by_uid(&self, uid: u32) -> Option<&User> {
        self.users.iter().find(|u| u.uid == uid)
    }

    pub fn group_by_gid(&self, gid: u32) -> Option<&Group> {
        self.groups.iter().find(|g| g.gid == gid)
    }

    /// The gids a user's processes run with: the primary group and every group listing it.
    pub fn gids_of(&self, user: &User) -> Vec<u32> {
        let mut gids = vec![user.gid];
        for g in &self.groups {
            if g.members.iter().any(|m| m == &user.name) && !gids.contains(&g.gid) {
                gids.push(g.gid);
            }
        }
        gids
    }

    /// `name` of a uid, or the number.
    pub fn uid_name(&self, uid: u32) -> String {
        self.user_by_uid(uid)
            .map(|u| u.name.clone())
            .unwrap_or_else(|| uid.to_string())
    }

    pub fn gid_name(&self, gid: u32) -> String {
        self.group_by_gid(gid)
            .map(|g| g.name.clone())
            .unwrap_or_else(|| gid.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_users_groups_and_supplementary_membership() {
        let a = Accounts::parse(
            "root:x:0:0:root:/root:/bin/bash\nlibvirt-qemu:x:64055:107:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin\nbroken\n",
            "root:x:0:\nkvm:x:107:\nlibvirt:x:106:stack,libvirt-qemu\n",
        );
        let q = a.user("libvirt-qemu").unwrap();
        assert_eq!((q.uid, q.gid), (64055, 107));
        assert_eq!(a.gids_of(q), vec![107, 106]);
        assert_eq!(a.gid_name(107), "kvm");
        assert_eq!(a.uid_name(4242), "4242");
        assert!(a.user("broken").is_none());
    }
}
