//! Users and groups read from `/etc/passwd` and `/etc/group` under a [`HostRoot`]. Never
//! NSS: in a static glibc binary `getpwnam` segfaults (ENVIRONMENT.md), and a temp root
//! must be read, not the running system.

use anyhow::{Context, Result};

use crate::atomic::Owner;
use crate::hostroot::HostRoot;

pub const PASSWD_PATH: &str = "/etc/passwd";
pub const GROUP_PATH: &str = "/etc/group";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

impl User {
    pub fn owner(&self) -> Owner {
        Owner {
            uid: self.uid,
            gid: self.gid,
        }
    }
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
    /// Reads `/etc/passwd` and `/etc/group` of `root`; a missing `/etc/group` counts as
    /// empty, a missing `/etc/passwd` is an error.
    pub fn read(root: &HostRoot) -> Result<Accounts> {
        let passwd = root
            .read_to_string(PASSWD_PATH)
            .context("cannot read the user database")?;
        let group = root
            .read_optional(GROUP_PATH)
            .context("cannot read the group database")?
            .unwrap_or_default();
        Ok(Accounts::parse(&passwd, &group))
    }

    pub fn parse(passwd: &str, group: &str) -> Accounts {
        Accounts {
            users: parse_passwd(passwd),
            groups: parse_group(group),
        }
    }

    /// The first entry of that name, as the C library would find it.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    pub fn group_by_gid(&self, gid: u32) -> Option<&Group> {
        self.groups.iter().find(|g| g.gid == gid)
    }

    pub fn user_by_uid(&self, uid: u32) -> Option<&User> {
        self.users.iter().find(|u| u.uid == uid)
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

    /// The name of a uid, or the number.
    pub fn uid_name(&self, uid: u32) -> String {
        self.user_by_uid(uid)
            .map(|u| u.name.clone())
            .unwrap_or_else(|| uid.to_string())
    }

    /// The name of a gid, or the number.
    pub fn gid_name(&self, gid: u32) -> String {
        self.group_by_gid(gid)
            .map(|g| g.name.clone())
            .unwrap_or_else(|| gid.to_string())
    }

    /// Whether group `gid` exists and its only member is the user `uid`: every user whose
    /// primary group it is has that uid, the group lists no one else, and someone is a
    /// member. (The test Debian's sshd applies before it accepts a group-writable file.)
    pub fn sole_member(&self, gid: u32, uid: u32) -> bool {
        let Some(group) = self.group_by_gid(gid) else {
            return false;
        };
        let primary: Vec<&User> = self.users.iter().filter(|u| u.gid == gid).collect();
        if primary.iter().any(|u| u.uid != uid) {
            return false;
        }
        let listed = match group.members.as_slice() {
            [] => false,
            [only] if self.user(only).is_some_and(|u| u.uid == uid) => true,
            _ => return false,
        };
        !primary.is_empty() || listed
    }

    /// Whether `user` is in `group`, as primary group or listed member.
    pub fn in_group(&self, user: &str, group: &str) -> bool {
        let Some(g) = self.group(group) else {
            return false;
        };
        g.members.iter().any(|m| m == user) || self.user(user).is_some_and(|u| u.gid == g.gid)
    }
}

/// Entries of a passwd file: `name:pw:uid:gid:gecos:home:shell`. Comments, blank lines,
/// NIS `+`/`-` lines and malformed lines are skipped.
pub fn parse_passwd(text: &str) -> Vec<User> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = fields(line)?;
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
        .collect()
}

/// Entries of a group file: `name:pw:gid:member,member`.
pub fn parse_group(text: &str) -> Vec<Group> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = fields(line)?;
            if f.len() < 4 {
                return None;
            }
            Some(Group {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(String::from)
                    .collect(),
            })
        })
        .collect()
}

/// Where useradd reads the first uid of a regular (not system) account.
pub const LOGIN_DEFS_PATH: &str = "/etc/login.defs";
/// `UID_MIN` when login.defs does not say: shadow's default, and every family's.
pub const DEFAULT_UID_MIN: u32 = 1000;

/// `UID_MIN` of login.defs text (`UID_MIN  1000`); the last valid setting counts.
pub fn uid_min(login_defs: &str) -> u32 {
    login_defs
        .lines()
        .rev()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("UID_MIN")).then(|| w.next()?.parse().ok())?
        })
        .unwrap_or(DEFAULT_UID_MIN)
}

/// `UID_MIN` of the host (its default when login.defs is missing or does not say).
pub fn read_uid_min(root: &HostRoot) -> u32 {
    root.read_optional(LOGIN_DEFS_PATH)
        .ok()
        .flatten()
        .map_or(DEFAULT_UID_MIN, |t| uid_min(&t))
}

fn fields(line: &str) -> Option<Vec<&str>> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() || line.starts_with('#') || line.starts_with(['+', '-']) {
        return None;
    }
    let f: Vec<&str> = line.split(':').collect();
    (!f[0].is_empty()).then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        # a comment\n\
        \n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        broken:x:notanumber:1::/:/bin/sh\n\
        short:x:5\n\
        +nisuser::::::\n\
        stack:x:1001:1002:Stack User,,,:/home/stack:/bin/bash\n\
        noshell:x:1003:1003::/home/noshell:\n";
    const GROUP: &str = "root:x:0:\nkvm:x:104:stack\nlibvirt:x:105:alice, stack ,\nstack:x:1002:\n";

    #[test]
    fn parses_users_and_groups() {
        let a = Accounts::parse(PASSWD, GROUP);
        assert_eq!(
            a.users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
            ["root", "daemon", "stack", "noshell"]
        );
        let s = a.user("stack").unwrap();
        assert_eq!(
            (s.uid, s.gid, s.home.as_str(), s.shell.as_str()),
            (1001, 1002, "/home/stack", "/bin/bash")
        );
        assert_eq!(
            s.owner(),
            Owner {
                uid: 1001,
                gid: 1002
            }
        );
        assert_eq!(a.user("noshell").unwrap().shell, "");
        assert_eq!(a.user("root").unwrap().home, "/root");
        assert!(a.user("nisuser").is_none() && a.user("broken").is_none());
        assert_eq!(a.group("libvirt").unwrap().members, ["alice", "stack"]);
        assert_eq!(a.group_by_gid(104).unwrap().name, "kvm");
        assert!(a.in_group("stack", "kvm"));
        assert!(a.in_group("stack", "stack"), "primary group");
        assert!(!a.in_group("daemon", "kvm"));
        assert!(!a.in_group("stack", "nosuchgroup"));
    }

    #[test]
    fn uid_min_from_login_defs() {
        assert_eq!(
            uid_min("# UID_MIN 5\nUID_MIN\t\t 1000\nUID_MAX 60000\n"),
            1000
        );
        assert_eq!(uid_min("UID_MIN 500\n"), 500);
        assert_eq!(uid_min("UID_MIN x\nUID_MINX 7\n"), DEFAULT_UID_MIN);
        assert_eq!(uid_min(""), DEFAULT_UID_MIN);
    }

    #[test]
    fn reads_from_a_host_root() {
        let t = tempfile::tempdir().unwrap();
        let root = HostRoot::at(t.path());
        let err = Accounts::read(&root).unwrap_err();
        assert!(format!("{err:#}").contains("etc/passwd"), "{err:#}");
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/passwd"), PASSWD).unwrap();
        let a = Accounts::read(&root).unwrap();
        assert!(a.groups.is_empty() && a.user("stack").is_some());
        std::fs::write(t.path().join("etc/group"), GROUP).unwrap();
        assert_eq!(Accounts::read(&root).unwrap().groups.len(), 4);
    }
}
