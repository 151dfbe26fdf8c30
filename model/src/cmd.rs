//! Running host commands. An extension trait on [`std::process::Command`] (as bootc's
//! `utils/src/command.rs`): every failure carries the whole command line, the exit status
//! and stderr, so an operator sees exactly what was run and what it said.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};

/// Where sbin tools live when `PATH` lacks them (a `sudo` or cron environment).
const SBIN_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The path of `program` on this system, from `PATH` or else the sbin directories.
pub fn find(program: &str) -> Option<PathBuf> {
    which::which(program).ok().or_else(|| {
        SBIN_DIRS
            .iter()
            .map(|d| Path::new(d).join(program))
            .find(|p| p.is_file())
    })
}

/// A command that could not be started or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// (The I/O error is in the message and is not also the error's source, so an error
    /// chain, `{:#}`, shows it once.)
    #[error("cannot run `{cmdline}`: {error}")]
    Spawn {
        cmdline: String,
        error: std::io::Error,
    },
    #[error("`{cmdline}` failed ({status}){}", stderr_suffix(.stderr))]
    Failed {
        cmdline: String,
        status: ExitStatus,
        stderr: String,
    },
}

impl CmdError {
    /// The error, with `install` (which package brings the tool) said only when the command
    /// could not start: a tool that ran and failed says why itself.
    pub fn or_install(self, install: &str) -> anyhow::Error {
        match self {
            CmdError::Spawn { .. } => anyhow::Error::new(self).context(install.to_string()),
            CmdError::Failed { .. } => anyhow::Error::new(self),
        }
    }

    /// The exit code, when the command ran and exited.
    pub fn code(&self) -> Option<i32> {
        match self {
            CmdError::Failed { status, .. } => status.code(),
            CmdError::Spawn { .. } => None,
        }
    }

    pub fn stderr(&self) -> &str {
        match self {
            CmdError::Failed { stderr, .. } => stderr,
            CmdError::Spawn { .. } => "",
        }
    }
}

fn stderr_suffix(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

/// The command line as a shell would show it: program, then arguments, quoted when needed.
pub struct CmdLine<'a>(pub &'a Command);

impl fmt::Display for CmdLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in self.0.get_envs() {
            if let Some(v) = v {
                write!(
                    f,
                    "{}={} ",
                    k.to_string_lossy(),
                    quote(&v.to_string_lossy())
                )?;
            }
        }
        write!(f, "{}", quote(&self.0.get_program().to_string_lossy()))?;
        for a in self.0.get_args() {
            write!(f, " {}", quote(&a.to_string_lossy()))?;
        }
        Ok(())
    }
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Where bootstrap's steps run the host's commands (`useradd`, `groupadd`, `modprobe`,
/// `systemctl`, a daemon, `restorecon`, `visudo`): [`System`] runs them; in tests a fixture
/// world (`crate::fixture::World`) carries them out inside its root and records them. A step
/// never asks whether its root is `/`: the runner it is given decides where a command acts.
pub trait Runner: Sync {
    /// Runs `cmd` to completion: its stdout, or the error with the command line, the exit
    /// status and stderr (or why it could not start).
    fn run(&self, cmd: &mut Command) -> Result<String, CmdError>;
}

/// The running system: commands run as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct System;

impl Runner for System {
    fn run(&self, cmd: &mut Command) -> Result<String, CmdError> {
        cmd.run_get_string()
    }
}

/// A host tool by name: its path from `PATH` or the sbin directories ([`find`]), else the
/// bare name (running it then fails naming it).
pub fn tool(name: &str) -> Command {
    Command::new(find(name).unwrap_or_else(|| PathBuf::from(name)))
}

pub trait CommandExt {
    /// The command line, for messages and logs.
    fn cmdline(&self) -> String;
    /// Runs to completion; stdout is discarded, stderr is captured for the error.
    fn run(&mut self) -> Result<(), CmdError>;
    /// Runs to completion and returns stdout (lossy UTF-8).
    fn run_get_string(&mut self) -> Result<String, CmdError>;
    /// Runs to completion and returns the raw output whatever the exit status (the caller
    /// decides what an exit code means); fails only when the command cannot start.
    fn run_get_output(&mut self) -> Result<Output, CmdError>;
}

impl CommandExt for Command {
    fn cmdline(&self) -> String {
        CmdLine(self).to_string()
    }

    fn run(&mut self) -> Result<(), CmdError> {
        self.stdout(Stdio::null());
        self.run_get_string().map(|_| ())
    }

    fn run_get_string(&mut self) -> Result<String, CmdError> {
        let out = self.run_get_output()?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(CmdError::Failed {
                cmdline: self.cmdline(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }

    fn run_get_output(&mut self) -> Result<Output, CmdError> {
        self.stdin(Stdio::null());
        self.output().map_err(|source| CmdError::Spawn {
            cmdline: self.cmdline(),
            error: source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_command_line_status_and_stderr() {
        let err = Command::new("sh")
            .args(["-c", "echo boom >&2; exit 3"])
            .run_get_string()
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`sh -c 'echo boom >&2; exit 3'`"), "{msg}");
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(msg.ends_with(": boom"), "{msg}");
        assert_eq!(err.code(), Some(3));
    }

    #[test]
    fn the_install_hint_is_said_only_when_the_tool_cannot_start() {
        let missing = Command::new("/nonexistent/useradd").run().unwrap_err();
        let msg = format!("{:#}", missing.or_install("install passwd"));
        assert!(msg.starts_with("install passwd: cannot run"), "{msg}");
        let failed = Command::new("sh")
            .args(["-c", "echo 'user exists' >&2; exit 9"])
            .run()
            .unwrap_err();
        let msg = format!("{:#}", failed.or_install("install passwd"));
        assert!(
            !msg.contains("install passwd") && msg.contains("user exists"),
            "{msg}"
        );
    }

    #[test]
    fn a_spawn_error_chain_says_why_once() {
        let err = anyhow::Error::new(Command::new("/nonexistent/prog").run().unwrap_err());
        let chain = format!("{err:#}");
        assert_eq!(chain.matches("No such file").count(), 1, "{chain}");
    }

    #[test]
    fn spawn_errors_name_the_program_and_success_returns_stdout() {
        let err = Command::new("/nonexistent/prog")
            .arg("x")
            .run()
            .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("cannot run `/nonexistent/prog x`"));
        let out = Command::new("sh")
            .args(["-c", "printf hi"])
            .env("A", "b c")
            .run_get_string()
            .unwrap();
        assert_eq!(out, "hi");
        assert!(find("sh").is_some());
        assert!(find("no-such-tool-virthost").is_none());
        let mut c = Command::new("apt-get");
        c.env("DEBIAN_FRONTEND", "noninteractive").arg("-y");
        assert_eq!(c.cmdline(), "DEBIAN_FRONTEND=noninteractive apt-get -y");
    }
}
