//! libvirt through its own client, `virsh`: `bootstrap` is a static binary and never links
//! libvirt. [`Virsh`] is the seam: [`SystemVirsh`] runs `virsh -c URI ...` through
//! [`crate::cmd`], `crate::fixture::WorldVirsh` answers from a fixture host's captured output. The
//! parsers read what libvirt 9.0's virsh prints (`fixtures/virsh/libvirt-9.0/`); virsh runs
//! with `LC_ALL=C`, so its own words are not translated.

use std::io;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};

use crate::cmd::{self, CmdError, CommandExt};

/// Runs virsh against one libvirt URI. `Sync`: a step may run two calls at once.
pub trait Virsh: Sync {
    /// `virsh -c URI ARGS`: stdout when it exits 0, else the error with the command line,
    /// the exit status and stderr.
    fn run(&self, args: &[&str]) -> Result<String, CmdError>;
    /// The command line `run(args)` runs, for messages.
    fn cmdline(&self, args: &[&str]) -> String;
}

/// The host's virsh (found when it runs: the packages step may install it first).
#[derive(Debug, Clone)]
pub struct SystemVirsh {
    pub uri: String,
}

impl SystemVirsh {
    pub fn new(uri: &str) -> Self {
        Self { uri: uri.into() }
    }

    fn command(&self, args: &[&str]) -> Command {
        let program = cmd::find("virsh").unwrap_or_else(|| PathBuf::from("virsh"));
        let mut c = Command::new(program);
        c.env("LC_ALL", "C").arg("-c").arg(&self.uri).args(args);
        c
    }
}

impl Virsh for SystemVirsh {
    fn run(&self, args: &[&str]) -> Result<String, CmdError> {
        self.command(args).run_get_string()
    }
    fn cmdline(&self, args: &[&str]) -> String {
        self.command(args).cmdline()
    }
}

/// Why a virsh command failed, as far as a caller decides anything on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// virsh is not installed.
    NotInstalled,
    /// virsh ran but libvirt did not answer: no daemon (socket), or access denied.
    Unreachable,
    /// libvirt has no storage pool of that name.
    NoSuchPool,
    Other,
}

/// Classifies a failed virsh run by its stderr (virsh's and libvirt's English messages:
/// `LC_ALL=C`; a daemon running in another locale could word `NoSuchPool` differently,
/// which then stays `Other`, an error rather than a wrong guess).
pub fn classify(e: &CmdError) -> Failure {
    match e {
        CmdError::Spawn { error: source, .. } if source.kind() == io::ErrorKind::NotFound => {
            Failure::NotInstalled
        }
        CmdError::Spawn { .. } => Failure::Other,
        CmdError::Failed { stderr, .. } => {
            if stderr.contains("failed to connect to the hypervisor") {
                Failure::Unreachable
            } else if stderr.contains("Storage pool not found")
                || stderr.contains("no storage pool with matching name")
            {
                Failure::NoSuchPool
            } else {
                Failure::Other
            }
        }
    }
}

/// The last line of virsh's stderr without its `error: ` prefix: libvirt's own reason
/// (`Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or
/// directory`).
pub fn reason(e: &CmdError) -> String {
    match e {
        CmdError::Failed { stderr, .. } => stderr
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .map(|l| l.strip_prefix("error: ").unwrap_or(l).to_string())
            .unwrap_or_else(|| e.to_string()),
        CmdError::Spawn { .. } => e.to_string(),
    }
}

/// A storage pool's state as `virsh pool-info` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolState {
    Running,
    Inactive,
    /// `building`, `degraded`, `inaccessible`: active but not usable as it is.
    Other(String),
}

/// `virsh pool-info NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInfo {
    pub name: String,
    pub state: PoolState,
    /// Defined (survives a daemon restart); `false` for a pool made by `pool-create-as`.
    pub persistent: bool,
    pub autostart: bool,
}

/// Parses `virsh pool-info` output: `Key:` then the value after spaces, one a line.
/// `State`, `Persistent` and `Autostart` must be there; virsh prints `Autostart: no
/// autostart` when it cannot tell, read as not autostarted.
pub fn parse_pool_info(text: &str) -> anyhow::Result<PoolInfo> {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let need = |key: &str| {
        field(key).with_context(|| format!("no `{key}:` line in virsh pool-info output: {text:?}"))
    };
    let state = match need("State")?.as_str() {
        "running" => PoolState::Running,
        "inactive" => PoolState::Inactive,
        other => PoolState::Other(other.to_string()),
    };
    let persistent = match need("Persistent")?.as_str() {
        "yes" => true,
        "no" => false,
        other => bail!("virsh pool-info says `Persistent: {other}`: libvirt could not tell"),
    };
    Ok(PoolInfo {
        name: field("Name").unwrap_or_default(),
        state,
        persistent,
        autostart: need("Autostart")? == "yes",
    })
}

/// What a pool's XML (`virsh pool-dumpxml NAME`) says about where it keeps volumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolDef {
    /// `<pool type='...'>`: `dir`, `fs`, `logical`, `netfs`, ...
    pub kind: String,
    /// `<target><path>`; pools without a local directory (`rbd`, `iscsi-direct`) have none.
    pub path: Option<String>,
}

/// Parses a pool's XML: the live description (`virsh pool-dumpxml`, libvirt's API) or the
/// persistent definition (`/etc/libvirt/storage/NAME.xml`, with libvirt's warning comment).
/// With `roxmltree` (a full XML parser: entities, comments, CDATA, either quote).
pub fn parse_pool_xml(xml: &str) -> anyhow::Result<PoolDef> {
    let doc = roxmltree::Document::parse(xml).context("the pool's XML does not parse")?;
    let pool = doc.root_element();
    if pool.tag_name().name() != "pool" {
        anyhow::bail!("the XML is a <{}>, not a <pool>", pool.tag_name().name());
    }
    let kind = pool
        .attribute("type")
        .context("<pool> has no type attribute")?;
    let path = pool
        .children()
        .find(|n| n.has_tag_name("target"))
        .and_then(|t| t.children().find(|n| n.has_tag_name("path")))
        .and_then(|p| p.text())
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from);
    Ok(PoolDef {
        kind: kind.to_string(),
        path,
    })
}

/// Whether two absolute paths name the same directory as libvirt compares them: repeated
/// and trailing slashes do not count (libvirt's `virFileSanitizePath`); symlinks do.
pub fn same_path(a: &str, b: &str) -> bool {
    fn clean(p: &str) -> String {
        let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
        format!("/{}", parts.join("/"))
    }
    clean(a) == clean(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    /// What libvirt 9.0's virsh printed on this project's machine (see the README there).
    fn capture(name: &str) -> String {
        let p = virthost_testkit::fixtures::virsh_templates().join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn failed(stderr: &str, code: i32) -> CmdError {
        CmdError::Failed {
            cmdline: "virsh -c qemu:///system pool-info x".into(),
            status: ExitStatus::from_raw(code << 8),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn pool_info_of_every_captured_state() {
        let cases = [
            ("pool-info-transient.txt", PoolState::Running, false, false),
            ("pool-info-defined.txt", PoolState::Inactive, true, false),
            ("pool-info-running.txt", PoolState::Running, true, false),
            (
                "pool-info-running-autostart.txt",
                PoolState::Running,
                true,
                true,
            ),
            (
                "pool-info-inactive-autostart.txt",
                PoolState::Inactive,
                true,
                true,
            ),
        ];
        for (file, state, persistent, autostart) in cases {
            let info = parse_pool_info(&capture(file)).unwrap();
            assert_eq!(
                info,
                PoolInfo {
                    name: "virthost-capture-12606".into(),
                    state,
                    persistent,
                    autostart
                },
                "{file}"
            );
        }
    }

    #[test]
    fn pool_info_oddities() {
        let info = parse_pool_info(
            "State:          inaccessible\nPersistent:     yes\nAutostart:      no autostart\n",
        )
        .unwrap();
        assert_eq!(info.state, PoolState::Other("inaccessible".into()));
        assert!(!info.autostart);
        let e = parse_pool_info("Name: x\n").unwrap_err().to_string();
        assert!(e.contains("no `State:` line"), "{e}");
        let e = parse_pool_info("State: running\nPersistent: unknown\nAutostart: no\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Persistent: unknown"), "{e}");
    }

    #[test]
    fn pool_xml_of_every_captured_state() {
        for file in [
            "pool-dumpxml-transient.xml",
            "pool-dumpxml-defined.xml",
            "pool-dumpxml-defined-inactive.xml",
            "pool-dumpxml-running.xml",
        ] {
            assert_eq!(
                parse_pool_xml(&capture(file)).unwrap(),
                PoolDef {
                    kind: "dir".into(),
                    path: Some("/tmp/virthost-capture-pool.97GIC7".into())
                },
                "{file}"
            );
        }
        // validate's fixture, captured by another run of the same libvirt.
        let p = virthost_testkit::fixtures::dir().join("validate/libvirt-9.0/pool-dir.xml");
        let def = parse_pool_xml(&std::fs::read_to_string(p).unwrap()).unwrap();
        assert_eq!(def.path.as_deref(), Some("/tmp/virthost-vfix-pool.C3PrDF"));
    }

    #[test]
    fn pool_xml_of_other_pool_kinds() {
        let logical = "<pool type=\"logical\">\n  <name>default</name>\n  <source>\n    <device path='/dev/sdb'/>\n    <name>vg</name>\n  </source>\n  <target>\n    <path>/dev/vg</path>\n  </target>\n</pool>\n";
        assert_eq!(
            parse_pool_xml(logical).unwrap(),
            PoolDef {
                kind: "logical".into(),
                path: Some("/dev/vg".into())
            }
        );
        let rbd = "<pool type='rbd'><name>default</name><source><name>rbd</name></source></pool>";
        assert_eq!(parse_pool_xml(rbd).unwrap().path, None);
        let escaped = "<pool type='dir'><target><path>/srv/a&amp;b</path></target></pool>";
        assert_eq!(
            parse_pool_xml(escaped).unwrap().path.as_deref(),
            Some("/srv/a&b")
        );
        assert!(parse_pool_xml("<pools/>").is_err());
        assert!(parse_pool_xml("<pool><name>x</name></pool>").is_err());
    }

    #[test]
    fn failures_are_classified_from_captured_stderr() {
        // `virsh pool-info virthost-nonexistent`: exit code 1 and this stderr.
        assert_eq!(capture("pool-info-missing.exit").trim(), "1");
        let missing = failed(&capture("pool-info-missing.stderr"), 1);
        assert_eq!(classify(&missing), Failure::NoSuchPool);
        assert_eq!(
            reason(&missing),
            "Storage pool not found: no storage pool with matching name 'virthost-nonexistent'"
        );
        assert_eq!(
            classify(&failed(&capture("pool-dumpxml-missing.stderr"), 1)),
            Failure::NoSuchPool
        );
        assert_eq!(capture("pool-info-unreachable.exit").trim(), "1");
        let down = failed(&capture("pool-info-unreachable.stderr"), 1);
        assert_eq!(classify(&down), Failure::Unreachable);
        assert_eq!(
            reason(&down),
            "Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory"
        );
        let denied = failed(&capture("pool-info-nonroot.stderr"), 1);
        assert_eq!(classify(&denied), Failure::Unreachable);
        assert!(reason(&denied).starts_with("authentication unavailable"));
        let active = failed("error: Failed to start pool x\nerror: Requested operation is not valid: storage pool 'x' is already active\n", 1);
        assert_eq!(classify(&active), Failure::Other);
        let gone = CmdError::Spawn {
            cmdline: "virsh".into(),
            error: io::Error::from(io::ErrorKind::NotFound),
        };
        assert_eq!(classify(&gone), Failure::NotInstalled);
    }

    #[test]
    fn paths_compare_as_libvirt_sanitizes_them() {
        assert!(same_path(
            "/var/lib/libvirt/images",
            "/var/lib/libvirt/images/"
        ));
        assert!(same_path(
            "/var//lib/libvirt/images",
            "/var/lib/libvirt/images"
        ));
        assert!(!same_path("/var/lib/libvirt/images", "/srv/images"));
        assert!(!same_path("/var/lib/libvirt/images", "/var/lib/libvirt"));
    }

    #[test]
    fn a_fixture_host_s_captured_failures_are_its_world_s_answers() {
        use crate::fixture::{World, WorldVirsh};
        let d = tempfile::tempdir().unwrap();
        let w = World::at(d.path());
        let v = WorldVirsh::new(&w, &virthost_testkit::fixtures::virsh_templates());
        let e = v.run(&["pool-info", "default"]).unwrap_err();
        assert_eq!(classify(&e), Failure::NotInstalled);
        // A modular host's own "failed to connect" names virtqemud's socket.
        let modular =
            "error: failed to connect to the hypervisor\nerror: Failed to connect socket \
                       to '/var/run/libvirt/virtqemud-sock': No such file or directory\n";
        std::fs::create_dir_all(d.path().join("virsh/pool-info")).unwrap();
        std::fs::write(d.path().join("virsh/pool-info/default.stderr"), modular).unwrap();
        let e = v.run(&["pool-info", "default"]).unwrap_err();
        assert_eq!(
            (classify(&e), e.code(), e.stderr()),
            (Failure::Unreachable, Some(1), modular)
        );
        // Once a daemon listens that capture no longer holds: libvirt's words for no pool.
        std::fs::create_dir_all(d.path().join("run/libvirt")).unwrap();
        std::fs::write(d.path().join("run/libvirt/virtqemud-sock"), "").unwrap();
        let e = v.run(&["pool-info", "default"]).unwrap_err();
        assert_eq!(classify(&e), Failure::NoSuchPool, "{e}");
        assert!(e.stderr().contains("'default'"), "{e}");
    }
}
