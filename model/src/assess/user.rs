//! The VM user requirement (`stack` unless `--user`): the account exists, has a login shell
//! (infrared and the BMC emulators SSH in as it) and a home directory it owns. bootstrap
//! creates a missing user with [`desired::USER_SHELL`]; an existing user's own login shell
//! (zsh, sh) is kept, and only a shell that refuses logins (`nologin`, `false`, none) is
//! replaced. A home that exists but is not a directory is the operator's to sort out.

use super::{Action, Assessment};
use crate::accounts::User;
use crate::desired;
use crate::username::UserName;

/// What the host has at the user's home path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    Missing,
    /// A file, a symlink, anything but a directory.
    NotDir,
    /// A directory, with its owner.
    Dir {
        uid: u32,
        gid: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAction {
    /// `useradd --create-home --shell /bin/bash NAME`.
    Create { name: String, home: String },
    /// `usermod --shell /bin/bash NAME`.
    SetShell { name: String, now: String },
    /// The home directory, created 0700 and owned by the user.
    CreateHome { name: String, home: String },
    /// `chown` of the home directory itself (never recursive).
    ChownHome {
        home: String,
        uid: u32,
        gid: u32,
        now: (u32, u32),
    },
}

impl Action for UserAction {
    fn describe(&self) -> String {
        let shell = desired::USER_SHELL;
        match self {
            UserAction::Create { name, home } => {
                format!("create user {name} (home {home}, shell {shell})")
            }
            UserAction::SetShell { name, now } => {
                format!("set login shell of {name} to {shell} (now '{now}', which refuses logins)")
            }
            UserAction::CreateHome { name, home } => format!(
                "create home {home} (mode {:04o}, owner {name})",
                desired::USER_HOME_MODE
            ),
            UserAction::ChownHome {
                home,
                uid,
                gid,
                now,
            } => {
                format!("chown {home} to {uid}:{gid} (now {}:{})", now.0, now.1)
            }
        }
    }
}

/// Whether `shell` lets the user log in.
pub fn is_login_shell(shell: &str) -> bool {
    !shell.is_empty() && !shell.ends_with("/nologin") && !shell.ends_with("/false")
}

/// The requirement for `name`, where the user database has `user` and its home is `home`.
pub fn assess(name: &UserName, user: Option<&User>, home: Home) -> Assessment<UserAction> {
    let Some(u) = user else {
        return Assessment::NotMet {
            detail: format!("no user {name} in /etc/passwd"),
            actions: vec![UserAction::Create {
                name: name.to_string(),
                home: desired::user_home(name),
            }],
        };
    };
    let mut actions = vec![];
    let mut wrong = vec![];
    if !is_login_shell(&u.shell) {
        wrong.push(format!("no login shell ('{}'), SSH logins fail", u.shell));
        actions.push(UserAction::SetShell {
            name: u.name.clone(),
            now: u.shell.clone(),
        });
    }
    match home {
        Home::Missing => {
            wrong.push(format!("the home directory {} does not exist", u.home));
            actions.push(UserAction::CreateHome {
                name: u.name.clone(),
                home: u.home.clone(),
            });
        }
        Home::NotDir => {
            return Assessment::Blocked {
                detail: format!(
                    "{}: the home of '{}' exists and is not a directory",
                    u.home, u.name
                ),
                hint: format!(
                    "move it out of the way (or give {} another home with `usermod -d`), then run \
                     bootstrap again",
                    u.name
                ),
            }
        }
        Home::Dir { uid, gid } if (uid, gid) != (u.uid, u.gid) => {
            wrong.push(format!(
                "{} is owned by {uid}:{gid}, not by {}",
                u.home, u.name
            ));
            actions.push(UserAction::ChownHome {
                home: u.home.clone(),
                uid: u.uid,
                gid: u.gid,
                now: (uid, gid),
            });
        }
        Home::Dir { .. } => {}
    }
    let detail = format!("{} uid {} home {} shell {}", u.name, u.uid, u.home, u.shell);
    if actions.is_empty() {
        Assessment::Met(detail)
    } else {
        Assessment::NotMet {
            detail: format!("{detail}: {}", wrong.join("; ")),
            actions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(shell: &str) -> User {
        User {
            name: "stack".into(),
            uid: 1000,
            gid: 1001,
            home: "/home/stack".into(),
            shell: shell.into(),
        }
    }

    #[test]
    fn each_shape_of_the_user() {
        let n: UserName = "stack".parse().unwrap();
        let ok = Home::Dir {
            uid: 1000,
            gid: 1001,
        };
        assert!(matches!(
            assess(&n, Some(&user("/bin/bash")), ok),
            Assessment::Met(_)
        ));
        // Another login shell is the user's choice.
        assert!(matches!(
            assess(&n, Some(&user("/bin/zsh")), ok),
            Assessment::Met(_)
        ));
        let a = assess(&n, None, Home::Missing);
        assert_eq!(
            a.described(),
            ["create user stack (home /home/stack, shell /bin/bash)"]
        );
        let a = assess(
            &n,
            Some(&user("/usr/sbin/nologin")),
            Home::Dir { uid: 0, gid: 0 },
        );
        assert_eq!(
            a.described(),
            [
                "set login shell of stack to /bin/bash (now '/usr/sbin/nologin', which refuses logins)",
                "chown /home/stack to 1000:1001 (now 0:0)"
            ]
        );
        let a = assess(&n, Some(&user("")), Home::Missing);
        assert_eq!(a.described().len(), 2);
        assert!(matches!(
            assess(&n, Some(&user("/bin/bash")), Home::NotDir),
            Assessment::Blocked { .. }
        ));
        assert!(is_login_shell("/bin/sh") && !is_login_shell("/bin/false") && !is_login_shell(""));
    }
}
