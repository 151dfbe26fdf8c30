//! The name of an account bootstrap creates or configures (`--user`, root for
//! `--root-key`): a [`UserName`] can only be built valid, so every step that names the user
//! holds a name that passed these rules. The files that carry the name (polkit, sudoers)
//! still quote it for their own language ([`crate::render`]): two locks, not one.
//!
//! The rules are the account-name rules of the target family, at most 32 bytes (utmp's
//! `ut_user`, useradd's own limit):
//! - apt (Debian, Ubuntu): adduser's default `NAME_REGEX`, `^[a-z][-a-z0-9_]*\$?$`. Debian's
//!   `useradd` (shadow 4.13 with Debian's relaxed-names patch) accepts nearly anything
//!   (measured: `x"y`, `a;b`, `a/b`, `.`, `123`, `ALL`); the distribution's policy is
//!   adduser's.
//! - yum/dnf (RHEL, CentOS, Fedora): shadow-utils' `is_valid_name`,
//!   `^[A-Za-z0-9._][A-Za-z0-9._-]*\$?$`, and not `.`, `..` or all digits.
//!
//! `validate` reads hosts of either family and checks a name with [`Rules::Any`], the
//! union (which is the yum/dnf set).

use std::fmt;

use crate::os::Family;

/// Longest account name (bytes).
pub const MAX_LEN: usize = 32;

/// Whose rules a name is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// Debian's and Ubuntu's adduser `NAME_REGEX`.
    Debian,
    /// shadow-utils on RHEL, CentOS and Fedora.
    RedHat,
    /// Either family (the union: [`Rules::RedHat`]'s set holds Debian's).
    Any,
}

impl Rules {
    pub fn of(family: Family) -> Rules {
        match family {
            Family::Apt => Rules::Debian,
            Family::Yum | Family::Dnf => Rules::RedHat,
        }
    }
}

/// A valid account name. Built only by [`UserName::parse`] (or [`UserName::root`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(String);

/// Why a name is not a valid account name; the message shows the name escaped, never raw.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{shown}' is not a valid user name: {why}")]
pub struct NameError {
    pub shown: String,
    pub why: String,
}

impl UserName {
    pub fn parse(name: &str, rules: Rules) -> Result<UserName, NameError> {
        let err = |why: String| NameError {
            shown: name.escape_default().to_string(),
            why,
        };
        if name.is_empty() {
            return Err(err("it is empty".into()));
        }
        if name.len() > MAX_LEN {
            return Err(err(format!(
                "it is {} bytes long, at most {MAX_LEN} are allowed",
                name.len()
            )));
        }
        let body = name.strip_suffix('$').unwrap_or(name);
        if body.is_empty() {
            return Err(err("it is only '$'".into()));
        }
        type ByteRule = fn(u8) -> bool;
        let (first, allowed, rule): (ByteRule, ByteRule, &str) = match rules {
            Rules::Debian => (
                |b| b.is_ascii_lowercase(),
                |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_',
                "on Debian and Ubuntu a name starts with a-z and holds only a-z, 0-9, '-', '_' \
                 (and may end in '$'), as adduser's NAME_REGEX says",
            ),
            Rules::RedHat | Rules::Any => (
                |b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_',
                |b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-',
                "a name starts with a letter, a digit, '.' or '_' and holds only those and '-' \
                 (and may end in '$'), as useradd requires",
            ),
        };
        let bytes = body.as_bytes();
        if !first(bytes[0]) || !bytes[1..].iter().all(|&b| allowed(b)) {
            return Err(err(rule.into()));
        }
        if bytes.iter().all(u8::is_ascii_digit) {
            return Err(err("it is all digits, which tools take for a uid".into()));
        }
        if body == "." || body == ".." {
            return Err(err("'.' and '..' name directories".into()));
        }
        Ok(UserName(name.to_string()))
    }

    /// The superuser, whose keys `--root-key` manages.
    pub fn root() -> UserName {
        UserName("root".into())
    }

    pub fn is_root(&self) -> bool {
        self.0 == "root"
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parsed with [`Rules::Any`] (either family).
impl std::str::FromStr for UserName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<UserName, NameError> {
        UserName::parse(s, Rules::Any)
    }
}

impl AsRef<str> for UserName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for UserName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for UserName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_of_each_family() {
        // (name, Debian, RedHat)
        let cases: &[(&str, bool, bool)] = &[
            ("stack", true, true),
            ("ops-1", true, true),
            ("a_b", true, true),
            ("samba$", true, true),
            ("Stack", false, true),
            ("john.doe", false, true),
            ("_svc", false, true),
            ("1abc", false, true),
            ("ALL", false, true),
            (&"a".repeat(32), true, true),
            (&"a".repeat(33), false, false),
            ("", false, false),
            ("$", false, false),
            ("123", false, false),
            (".", false, false),
            ("..", false, false),
            ("-x", false, false),
            ("a$b", false, false),
            ("x\" || true || \"", false, false),
            ("bad name;rm", false, false),
            ("a\nb", false, false),
            ("a/b", false, false),
            ("a:b", false, false),
            ("é", false, false),
            ("a*", false, false),
            ("a\0", false, false),
        ];
        for &(name, deb, rh) in cases {
            assert_eq!(
                UserName::parse(name, Rules::Debian).is_ok(),
                deb,
                "{name:?}"
            );
            assert_eq!(UserName::parse(name, Rules::RedHat).is_ok(), rh, "{name:?}");
            assert_eq!(UserName::parse(name, Rules::Any).is_ok(), rh, "{name:?}");
        }
    }

    #[test]
    fn errors_show_the_name_escaped() {
        let e = UserName::parse("a\nb\u{1b}[31m", Rules::Any).unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains('\n') && !msg.contains('\u{1b}'), "{msg}");
        assert!(
            msg.starts_with("'a\\nb\\u{1b}[31m' is not a valid user name"),
            "{msg}"
        );
        let long = UserName::parse(&"x".repeat(40), Rules::Debian).unwrap_err();
        assert!(
            long.to_string().contains("40 bytes long, at most 32"),
            "{long}"
        );
    }

    #[test]
    fn family_rules_and_root() {
        assert_eq!(Rules::of(Family::Apt), Rules::Debian);
        assert_eq!(Rules::of(Family::Dnf), Rules::RedHat);
        assert!(UserName::root().is_root());
        assert_eq!(
            UserName::parse("root", Rules::Debian).unwrap(),
            UserName::root()
        );
        assert!(!UserName::parse("stack", Rules::Debian).unwrap().is_root());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Whatever the text, parsing ends, and a name it accepts is short printable ASCII
        /// that every renderer writes back exactly (the second lock agrees with the first).
        #[test]
        fn any_text_parses_or_is_refused(s in "\\PC{0,40}|[a-zA-Z0-9._$ ;\"'\\-]{0,40}") {
            for rules in [Rules::Debian, Rules::RedHat] {
                if let Ok(n) = UserName::parse(&s, rules) {
                    proptest::prop_assert!(n.as_str().len() <= MAX_LEN);
                    proptest::prop_assert!(n.as_str().bytes().all(|b| b.is_ascii_graphic()));
                    let lit = crate::render::js_string(n.as_str());
                    let back: String = serde_json::from_str(&lit).unwrap();
                    proptest::prop_assert_eq!(back, n.as_str());
                    proptest::prop_assert!(crate::render::pkla("a", n.as_str()).is_ok());
                }
            }
        }
    }
}
