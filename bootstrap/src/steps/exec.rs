//! Running host tools (`useradd`, `visudo`, `restorecon`): a failure names the whole
//! command line and carries its stderr, so an operator sees what was run.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Where sbin tools live when `PATH` lacks them (a `sudo` or cron environment).
const SBIN_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The path of `program` on this system, from `PATH` or the sbin directories.
pub fn find(program: &str) -> Option<PathBuf> {
    which::which(program).ok().or_else(|| {
        SBIN_DIRS
            .iter()
            .map(|d| Path::new(d).join(program))
            .find(|p| p.is_file())
    })
}

/// The command line as a shell would show it.
pub fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion; its stdout, or an error with the command line and stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let line = display(cmd);
    let out = cmd
        .output()
        .with_context(|| format!("cannot run `{line}`"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!("`{line}` failed ({}): {}", out.status, stderr.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_command_and_its_stderr() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo oops >&2; exit 3"]);
        let err = run(&mut c).unwrap_err().to_string();
        assert!(
            err.starts_with("`sh -c echo oops >&2; exit 3` failed"),
            "{err}"
        );
        assert!(err.ends_with(": oops"), "{err}");
        assert_eq!(run(Command::new("echo").arg("hi")).unwrap(), "hi\n");
        assert!(find("sh").is_some());
        assert!(find("no-such-tool-virthost").is_none());
    }
}
