//! Which operating system a host runs, and which package-manager family `bootstrap` drives
//! there. Read from `/etc/os-release` (os-release(5)).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// The fields of `/etc/os-release` that matter here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OsRelease {
    pub id: String,
    pub id_like: Vec<String>,
    pub version_id: String,
    pub name: String,
    pub pretty_name: String,
}

impl OsRelease {
    /// Parses os-release(5) text: `KEY=value` lines, values optionally quoted.
    pub fn parse(text: &str) -> Self {
        let mut kv = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                kv.insert(k.trim().to_string(), unquote(v.trim()));
            }
        }
        let get = |k: &str| kv.get(k).cloned().unwrap_or_default();
        let name = get("NAME");
        OsRelease {
            id: get("ID").to_ascii_lowercase(),
            id_like: get("ID_LIKE")
                .split_whitespace()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            version_id: get("VERSION_ID"),
            pretty_name: kv
                .get("PRETTY_NAME")
                .cloned()
                .unwrap_or_else(|| name.clone()),
            name,
        }
    }

    /// `(major, minor)` of `VERSION_ID` (`"7.4"` -> `(7, Some(4))`, `"24.04"` -> `(24, Some(4))`).
    pub fn version(&self) -> Option<(u32, Option<u32>)> {
        let mut it = self.version_id.split('.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next().and_then(|m| m.parse().ok());
        Some((major, minor))
    }
}

fn unquote(v: &str) -> String {
    let v = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(v);
    v.replace("\\\"", "\"")
        .replace("\\$", "$")
        .replace("\\\\", "\\")
}

/// The package-manager family `bootstrap` drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// RHEL/CentOS 7: `yum` and `rpm`.
    Yum,
    /// RHEL/CentOS Stream/Rocky/Alma 8-10 and Fedora: `dnf` and `rpm`.
    Dnf,
    /// Debian 12+ and Ubuntu 22.04+: `apt-get` and `dpkg`.
    Apt,
}

impl Family {
    pub fn is_rpm(self) -> bool {
        matches!(self, Family::Yum | Family::Dnf)
    }

    pub fn package_manager(self) -> &'static str {
        match self {
            Family::Yum => "yum",
            Family::Dnf => "dnf",
            Family::Apt => "apt-get",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Yum => "yum",
            Family::Dnf => "dnf",
            Family::Apt => "apt",
        })
    }
}

impl std::str::FromStr for Family {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "yum" => Ok(Family::Yum),
            "dnf" => Ok(Family::Dnf),
            "apt" => Ok(Family::Apt),
            other => Err(format!(
                "unknown OS family '{other}' (expected yum, dnf or apt)"
            )),
        }
    }
}

/// The distributions virthost knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Distro {
    Rhel,
    CentOs,
    CentOsStream,
    Rocky,
    Alma,
    Fedora,
    Debian,
    Ubuntu,
    /// Anything else, driven through a family given with `--os-family`.
    Other,
}

/// How far virthost vouches for a platform (the spec: RHEL 7.3/7.4 tested, CentOS expected
/// to work, other distributions best effort).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Support {
    /// RHEL 7.3 and 7.4: the releases the spec was tested on.
    Tested,
    /// Expected to work: CentOS 7, the EL 8-10 rebuilds, Fedora, Debian 12+, Ubuntu 22.04+.
    Supported,
    /// An unknown OS driven through `--os-family`.
    BestEffort,
}

impl fmt::Display for Support {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Support::Tested => "tested",
            Support::Supported => "expected to work",
            Support::BestEffort => "best effort",
        })
    }
}

/// A host's OS, classified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Platform {
    pub os: OsRelease,
    pub distro: Distro,
    pub family: Family,
    pub major: u32,
    pub minor: Option<u32>,
    pub support: Support,
}

/// What `bootstrap` supports, for error messages and `--help`.
pub const SUPPORTED: &str = "RHEL/CentOS 7 (yum); RHEL, CentOS Stream, Rocky and Alma Linux 8-10 \
and Fedora (dnf); Debian 12+ and Ubuntu 22.04+ (apt)";

/// The OS is not one virthost supports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported OS: {pretty} (ID={id}, VERSION_ID={version}); supported: {SUPPORTED}; \
     to try anyway, pass --os-family yum|dnf|apt (best effort)"
)]
pub struct Unsupported {
    pub pretty: String,
    pub id: String,
    pub version: String,
}

impl Platform {
    /// Classifies `os`. `family_override` (from `--os-family`) makes any OS best effort.
    pub fn detect(
        os: &OsRelease,
        family_override: Option<Family>,
    ) -> Result<Platform, Unsupported> {
        let (major, minor) = os.version().unwrap_or((0, None));
        let named = classify(os, major, minor);
        match (named, family_override) {
            (Some((distro, family, support)), None) => Ok(Platform {
                os: os.clone(),
                distro,
                family,
                major,
                minor,
                support,
            }),
            (Some((distro, family, _)), Some(f)) if f == family => Ok(Platform {
                os: os.clone(),
                distro,
                family,
                major,
                minor,
                support: Support::BestEffort,
            }),
            (named, Some(f)) => Ok(Platform {
                os: os.clone(),
                distro: named.map(|n| n.0).unwrap_or_else(|| distro_by_id(os)),
                family: f,
                major,
                minor,
                support: Support::BestEffort,
            }),
            (None, None) => Err(Unsupported {
                pretty: if os.pretty_name.is_empty() {
                    "unknown".into()
                } else {
                    os.pretty_name.clone()
                },
                id: os.id.clone(),
                version: os.version_id.clone(),
            }),
        }
    }
}

fn distro_by_id(os: &OsRelease) -> Distro {
    match os.id.as_str() {
        "rhel" => Distro::Rhel,
        "centos" if os.name.contains("Stream") => Distro::CentOsStream,
        "centos" => Distro::CentOs,
        "rocky" => Distro::Rocky,
        "almalinux" => Distro::Alma,
        "fedora" => Distro::Fedora,
        "debian" => Distro::Debian,
        "ubuntu" => Distro::Ubuntu,
        _ => Distro::Other,
    }
}

fn classify(os: &OsRelease, major: u32, minor: Option<u32>) -> Option<(Distro, Family, Support)> {
    use Distro::*;
    let el = |d: Distro| -> Option<(Distro, Family, Support)> {
        match major {
            7 => Some((d, Family::Yum, Support::Supported)),
            8..=10 => Some((d, Family::Dnf, Support::Supported)),
            _ => None,
        }
    };
    match os.id.as_str() {
        "rhel" => {
            let tested = major == 7 && matches!(minor, Some(3) | Some(4));
            el(Rhel).map(|(d, f, s)| (d, f, if tested { Support::Tested } else { s }))
        }
        "centos" if os.name.contains("Stream") => {
            (8..=10)
                .contains(&major)
                .then_some((CentOsStream, Family::Dnf, Support::Supported))
        }
        "centos" => el(CentOs),
        "rocky" => (8..=10)
            .contains(&major)
            .then_some((Rocky, Family::Dnf, Support::Supported)),
        "almalinux" => (8..=10)
            .contains(&major)
            .then_some((Alma, Family::Dnf, Support::Supported)),
        "fedora" => (major >= 38).then_some((Fedora, Family::Dnf, Support::Supported)),
        "debian" => (major >= 12).then_some((Debian, Family::Apt, Support::Supported)),
        "ubuntu" => (major >= 22).then_some((Ubuntu, Family::Apt, Support::Supported)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(text: &str) -> OsRelease {
        OsRelease::parse(text)
    }

    #[test]
    fn parses_quoted_and_unquoted_values() {
        let o = os("NAME=\"Red Hat Enterprise Linux Server\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"7.4\"\n# c\nPRETTY_NAME='RHEL 7.4'\n");
        assert_eq!(o.id, "rhel");
        assert_eq!(o.id_like, vec!["fedora"]);
        assert_eq!(o.version(), Some((7, Some(4))));
        assert_eq!(o.pretty_name, "RHEL 7.4");
    }

    #[test]
    fn classifies_every_supported_platform() {
        let cases = [
            (
                "ID=rhel\nVERSION_ID=7.4",
                Family::Yum,
                Distro::Rhel,
                Support::Tested,
            ),
            (
                "ID=rhel\nVERSION_ID=7.3",
                Family::Yum,
                Distro::Rhel,
                Support::Tested,
            ),
            (
                "ID=rhel\nVERSION_ID=7.9",
                Family::Yum,
                Distro::Rhel,
                Support::Supported,
            ),
            (
                "ID=centos\nNAME=\"CentOS Linux\"\nVERSION_ID=7",
                Family::Yum,
                Distro::CentOs,
                Support::Supported,
            ),
            (
                "ID=rhel\nVERSION_ID=8.10",
                Family::Dnf,
                Distro::Rhel,
                Support::Supported,
            ),
            (
                "ID=rhel\nVERSION_ID=9.4",
                Family::Dnf,
                Distro::Rhel,
                Support::Supported,
            ),
            (
                "ID=centos\nNAME=\"CentOS Stream\"\nVERSION_ID=9",
                Family::Dnf,
                Distro::CentOsStream,
                Support::Supported,
            ),
            (
                "ID=rocky\nVERSION_ID=9.3",
                Family::Dnf,
                Distro::Rocky,
                Support::Supported,
            ),
            (
                "ID=almalinux\nVERSION_ID=8.9",
                Family::Dnf,
                Distro::Alma,
                Support::Supported,
            ),
            (
                "ID=fedora\nVERSION_ID=40",
                Family::Dnf,
                Distro::Fedora,
                Support::Supported,
            ),
            (
                "ID=debian\nVERSION_ID=\"12\"",
                Family::Apt,
                Distro::Debian,
                Support::Supported,
            ),
            (
                "ID=ubuntu\nVERSION_ID=\"24.04\"",
                Family::Apt,
                Distro::Ubuntu,
                Support::Supported,
            ),
            (
                "ID=ubuntu\nVERSION_ID=\"22.04\"",
                Family::Apt,
                Distro::Ubuntu,
                Support::Supported,
            ),
        ];
        for (text, family, distro, support) in cases {
            let p = Platform::detect(&os(text), None).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                (p.family, p.distro, p.support),
                (family, distro, support),
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_unknown_or_too_old_and_says_how_to_override() {
        for text in [
            "ID=arch",
            "ID=debian\nVERSION_ID=11",
            "ID=ubuntu\nVERSION_ID=20.04",
            "ID=rhel\nVERSION_ID=6.10",
            "",
        ] {
            let err = Platform::detect(&os(text), None).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("--os-family"), "{msg}");
            assert!(msg.contains("Debian 12+"), "{msg}");
        }
    }

    #[test]
    fn override_makes_any_os_best_effort() {
        let p =
            Platform::detect(&os("ID=opensuse-leap\nVERSION_ID=15.5"), Some(Family::Dnf)).unwrap();
        assert_eq!(
            (p.family, p.distro, p.support),
            (Family::Dnf, Distro::Other, Support::BestEffort)
        );
        let p = Platform::detect(&os("ID=debian\nVERSION_ID=11"), Some(Family::Apt)).unwrap();
        assert_eq!((p.distro, p.support), (Distro::Debian, Support::BestEffort));
    }
}
