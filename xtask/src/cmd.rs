//! Running commands: every failure names the whole command line and carries its stderr, so an
//! operator sees what was run (the coreos-installer / bootc pattern).

use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

/// The command line as a shell would show it, quoting arguments that need it.
pub fn display(cmd: &Command) -> String {
    let mut parts = vec![quote(cmd.get_program())];
    parts.extend(cmd.get_args().map(quote));
    parts.join(" ")
}

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub trait CommandExt {
    /// Runs with inherited stdio; fails unless the exit status is 0.
    fn run(&mut self) -> Result<()>;
    /// Runs with stdout and stderr captured; fails (with stderr) unless the exit status is 0.
    fn run_output(&mut self) -> Result<Output>;
}

impl CommandExt for Command {
    fn run(&mut self) -> Result<()> {
        let status = self
            .status()
            .with_context(|| format!("cannot run `{}`", display(self)))?;
        if !status.success() {
            bail!("`{}` failed: {status}", display(self));
        }
        Ok(())
    }

    fn run_output(&mut self) -> Result<Output> {
        let out = self
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run `{}`", display(self)))?;
        if !out.status.success() {
            bail!(
                "`{}` failed: {}\n{}",
                display(self),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            );
        }
        Ok(out)
    }
}
