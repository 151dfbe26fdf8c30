//! SSH and SCP to the machine under test: the VM on a forwarded loopback port, or a real host.

use crate::cmd::{CommandExt, Timeout, Watch};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Deadline of one `ssh true` attempt while waiting for the machine to answer (docs/e2e.md,
/// "Deadlines"); a refused connection returns at once.
const PROBE_ATTEMPT: Duration = Duration::from_secs(30);

/// How host keys are checked.
#[derive(Clone, Debug)]
pub enum HostKeys {
    /// Only the key in this known_hosts file is accepted (our own image's, or the one a cloud
    /// image got from the run's seed).
    Pinned(PathBuf),
    /// The user's own ssh configuration decides (--host).
    UserConfig,
}

/// One login on the machine under test.
#[derive(Clone, Debug)]
pub struct Remote {
    pub user: String,
    pub host: String,
    pub port: Option<u16>,
    /// Private key to use (and only it); None uses the user's ssh config and agent.
    pub identity: Option<PathBuf>,
    /// An ssh configuration file (`ssh -F`) instead of the user's (--host --ssh-config).
    pub config: Option<PathBuf>,
    pub host_keys: HostKeys,
    /// The VM's serial console log, named when a command times out (None: a real host).
    pub serial_log: Option<PathBuf>,
}

impl Remote {
    pub fn dest(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// The same machine, logged in as another user with another key.
    pub fn as_user(&self, user: &str, identity: Option<PathBuf>) -> Remote {
        Remote {
            user: user.into(),
            identity,
            ..self.clone()
        }
    }

    pub fn opts(&self) -> Vec<String> {
        let mut o: Vec<String> = [
            "BatchMode=yes",
            "ConnectTimeout=10",
            "ServerAliveInterval=15",
            "ServerAliveCountMax=4",
            "LogLevel=ERROR",
        ]
        .iter()
        .flat_map(|s| ["-o".to_string(), s.to_string()])
        .collect();
        if let Some(f) = &self.config {
            o.splice(0..0, ["-F".to_string(), f.display().to_string()]);
        }
        if let Some(key) = &self.identity {
            o.extend(["-i".into(), key.display().to_string()]);
            o.extend(["-o".into(), "IdentitiesOnly=yes".into()]);
        }
        let kh = |o: &mut Vec<String>, file: &Path, strict: &str| {
            o.extend([
                "-o".into(),
                format!("UserKnownHostsFile={}", file.display()),
            ]);
            o.extend(["-o".into(), "GlobalKnownHostsFile=/dev/null".into()]);
            o.extend(["-o".into(), format!("StrictHostKeyChecking={strict}")]);
        };
        match &self.host_keys {
            HostKeys::Pinned(f) => kh(&mut o, f, "yes"),
            HostKeys::UserConfig => {}
        }
        o
    }

    /// `ssh ... user@host -- script`, not yet run.
    pub fn ssh(&self, script: &str) -> Command {
        let mut c = Command::new("ssh");
        c.args(self.opts());
        if let Some(p) = self.port {
            c.args(["-p", &p.to_string()]);
        }
        c.arg(self.dest()).arg("--").arg(script);
        c
    }

    /// Runs a script with stdout and stderr captured (stderr also shown as it arrives), for at
    /// most `limit`; returns the output whatever the exit status (the caller judges it). Says
    /// every minute that it is still waiting. At the deadline ssh is killed and the error names
    /// the command, the deadline and the time it ran.
    pub fn capture(&self, script: &str, limit: Duration) -> Result<Output> {
        self.ssh(script)
            .output_within(limit, Watch::Live)
            .map_err(|e| self.explain("running a command on", e))
    }

    /// Copies local files into the login's home directory, taking at most `limit`.
    pub fn upload(&self, files: &[&Path], limit: Duration) -> Result<()> {
        for f in files {
            anyhow::ensure!(f.is_file(), "{} does not exist", f.display());
        }
        let mut c = Command::new("scp");
        c.arg("-q").args(self.opts());
        if let Some(p) = self.port {
            c.args(["-P", &p.to_string()]);
        }
        c.args(files).arg(format!("{}:", self.dest()));
        c.run_output_within(limit)
            .map_err(|e| self.explain("copying files to", e))?;
        Ok(())
    }

    /// Says what failed where; a timeout also points at the VM's serial console, where a hung
    /// guest leaves its traces (hung tasks, OOM kills, panics).
    fn explain(&self, what: &str, e: anyhow::Error) -> anyhow::Error {
        let hint = match (&self.serial_log, e.is::<Timeout>()) {
            (Some(log), true) => format!(
                " timed out (the VM's serial console log is {})",
                log.display()
            ),
            (None, true) => " timed out".into(),
            (_, false) => String::new(),
        };
        e.context(format!("{what} {}{hint}", self.dest()))
    }

    /// Waits until `ssh true` succeeds; `alive` is polled between attempts and may fail the
    /// wait (e.g. QEMU exited). Each attempt has a deadline of its own: ConnectTimeout bounds
    /// the connect and the handshake, PROBE_ATTEMPT a login that hangs after it.
    pub fn wait(&self, timeout: Duration, mut alive: impl FnMut() -> Result<()>) -> Result<()> {
        let start = Instant::now();
        let mut last_note = start;
        loop {
            alive()?;
            let why = match self.ssh("true").output_within(PROBE_ATTEMPT, Watch::Quiet) {
                Ok(out) if out.status.success() => return Ok(()),
                Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
                Err(e) if e.is::<Timeout>() => format!(
                    "`ssh true` hung for {} s and was killed",
                    PROBE_ATTEMPT.as_secs()
                ),
                Err(e) => return Err(e),
            };
            if start.elapsed() > timeout {
                anyhow::bail!(
                    "no SSH on {} port {:?} after {} s: {why}",
                    self.dest(),
                    self.port,
                    timeout.as_secs(),
                );
            }
            if last_note.elapsed() > Duration::from_secs(20) {
                super::say(&format!(
                    "waiting for SSH ({} s)",
                    start.elapsed().as_secs()
                ));
                last_note = Instant::now();
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// Generates a throwaway ed25519 key pair at `path` (and `path.pub`).
pub fn keygen(path: &Path, comment: &str) -> Result<()> {
    Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .run_output()?;
    Ok(())
}

/// `ssh-ed25519 AAAA...` of an OpenSSH public key file (its comment left out), as a
/// known_hosts line wants it.
pub fn key_type_and_blob(pub_file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(pub_file)?;
    let mut w = text.split_whitespace();
    match (w.next(), w.next()) {
        (Some(t), Some(b)) => Ok(format!("{t} {b}")),
        _ => anyhow::bail!("{} is not an OpenSSH public key", pub_file.display()),
    }
}

/// One `Host` entry of an ssh_config: the alias, where it is, root's key and the pinned
/// known_hosts file. Paths are double-quoted; one with a quote, a backslash or a control
/// character is refused rather than written (it would change what the file says).
pub fn config_entry(
    alias: &str,
    host: &str,
    port: u16,
    key: &Path,
    known_hosts: &Path,
) -> Result<String> {
    let quoted = |p: &Path| -> Result<String> {
        let s = p
            .to_str()
            .with_context(|| format!("{} is not UTF-8", p.display()))?;
        anyhow::ensure!(
            !s.chars().any(|c| c == '"' || c == '\\' || c.is_control()),
            "refusing to write {s:?} into an ssh_config (a quote, backslash or control character)"
        );
        Ok(format!("\"{s}\""))
    };
    for word in [alias, host] {
        anyhow::ensure!(
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)),
            "refusing {word:?} as an ssh_config host"
        );
    }
    Ok(format!(
        "Host {alias}\n  HostName {host}\n  Port {port}\n  User root\n  IdentityFile {}\n  \
         IdentitiesOnly yes\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  \
         StrictHostKeyChecking yes\n",
        quoted(key)?,
        quoted(known_hosts)?
    ))
}

/// The base64 blob of an OpenSSH public key file.
pub fn pub_blob(pub_file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(pub_file)?;
    text.split_whitespace()
        .nth(1)
        .map(String::from)
        .with_context(|| format!("{} is not an OpenSSH public key", pub_file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(c: &Command) -> Vec<String> {
        c.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn pinned_host_key_and_only_our_identity() {
        let r = Remote {
            user: "root".into(),
            host: "127.0.0.1".into(),
            port: Some(2222),
            identity: Some("/k".into()),
            config: None,
            host_keys: HostKeys::Pinned("/kh".into()),
            serial_log: None,
        };
        let a = args(&r.ssh("true"));
        for want in [
            "StrictHostKeyChecking=yes",
            "UserKnownHostsFile=/kh",
            "IdentitiesOnly=yes",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} not in {a:?}");
        }
        let tail: Vec<&str> = a.iter().rev().take(4).map(|s| s.as_str()).collect();
        assert_eq!(tail, ["true", "--", "root@127.0.0.1", "2222"]);
        let stack = r.as_user("stack", None);
        assert!(!args(&stack.ssh("x")).iter().any(|x| x == "-i"));
    }

    #[test]
    fn a_hung_remote_command_times_out_naming_the_serial_log() {
        // A loopback listener that never accepts: the TCP handshake completes in the kernel,
        // the SSH banner never comes, so ssh hangs until the deadline kills it.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let r = Remote {
            user: "root".into(),
            host: "127.0.0.1".into(),
            port: Some(silent.local_addr().unwrap().port()),
            identity: None,
            config: None,
            host_keys: HostKeys::Pinned("/nonexistent/known_hosts".into()),
            serial_log: Some("/run/e2e/serial.log".into()),
        };
        let start = Instant::now();
        let err = r
            .capture("sleep 1000", Duration::from_millis(300))
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(err.is::<Timeout>());
        let msg = format!("{err:#}");
        for want in [
            "running a command on root@127.0.0.1 timed out (the VM's serial console log is \
             /run/e2e/serial.log)",
            "-- 'sleep 1000'` did not finish within its deadline of 0.3 s",
        ] {
            assert!(msg.contains(want), "{want:?} not in {msg}");
        }
        let t = err.downcast_ref::<Timeout>().unwrap();
        assert!(!Path::new(&format!("/proc/{}", t.pid)).exists());
    }

    #[test]
    fn a_kept_vms_ssh_config_quotes_paths_and_refuses_what_would_change_it() {
        let e = config_entry(
            "virthost-e2e",
            "127.0.0.1",
            2222,
            Path::new("/w/a b/root_ed25519"),
            Path::new("/w/a b/known_hosts"),
        )
        .unwrap();
        assert!(e.contains("IdentityFile \"/w/a b/root_ed25519\"\n"), "{e}");
        assert!(e.contains("Port 2222\n") && e.contains("StrictHostKeyChecking yes"));
        for bad in [
            "/w/x\nHost *\n  ProxyCommand evil",
            "/w/\"q",
            "/w/back\\slash",
        ] {
            assert!(
                config_entry("h", "127.0.0.1", 1, Path::new(bad), Path::new("/k")).is_err(),
                "{bad:?}"
            );
        }
        assert!(config_entry("h x", "127.0.0.1", 1, Path::new("/k"), Path::new("/k")).is_err());
    }

    #[test]
    fn a_config_file_comes_first() {
        let r = Remote {
            user: "root".into(),
            host: "virthost-e2e".into(),
            port: None,
            identity: None,
            config: Some("/run/ssh_config".into()),
            host_keys: HostKeys::UserConfig,
            serial_log: None,
        };
        let a = args(&r.ssh("true"));
        assert_eq!(&a[..2], ["-F", "/run/ssh_config"]);
    }
}
