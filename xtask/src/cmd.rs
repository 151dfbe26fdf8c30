//! Running commands: every failure names the whole command line and carries its stderr, so an
//! operator sees what was run (the coreos-installer / bootc pattern).

use anyhow::{bail, Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::ffi::OsStr;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// What the caller sees while a command runs under a deadline. Its stdout and stderr are
/// captured either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watch {
    /// Nothing is shown while it runs.
    Quiet,
    /// Its stderr is copied to ours as it arrives, and a line every minute says it is still
    /// running.
    Live,
}

/// A command that was still running at its deadline. It was killed with its whole process
/// group; what it had printed until then is kept.
#[derive(Debug)]
pub struct Timeout {
    pub command: String,
    pub pid: u32,
    pub limit: Duration,
    pub elapsed: Duration,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` did not finish within its deadline of {:.1} s: killed (pid {} and its process \
             group) after {:.1} s",
            self.command,
            self.limit.as_secs_f64(),
            self.pid,
            self.elapsed.as_secs_f64()
        )?;
        for (name, bytes) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let text = String::from_utf8_lossy(bytes);
            let lines: Vec<&str> = text.lines().collect();
            if lines.is_empty() {
                write!(f, "\n--- {name} so far: nothing")?;
            } else {
                let shown = &lines[lines.len().saturating_sub(TIMEOUT_TAIL)..];
                write!(
                    f,
                    "\n--- {name} so far (last {} of {} lines):\n{}",
                    shown.len(),
                    lines.len(),
                    shown.join("\n")
                )?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Timeout {}

/// Lines of each stream a [`Timeout`] shows.
const TIMEOUT_TAIL: usize = 20;
/// How often a command under a deadline is checked.
const POLL: Duration = Duration::from_millis(20);
/// How often [`Watch::Live`] says that a command is still running.
const NOTE_EVERY: Duration = Duration::from_secs(60);
/// How long the pipe readers get to drain after a timeout kill.
const DRAIN: Duration = Duration::from_secs(2);

pub trait CommandExt {
    /// Runs with inherited stdio; fails unless the exit status is 0.
    fn run(&mut self) -> Result<()>;
    /// Runs with stdout and stderr captured; fails (with stderr) unless the exit status is 0.
    fn run_output(&mut self) -> Result<Output>;
    /// Runs with stdin null and stdout and stderr captured, for at most `limit`; returns the
    /// output whatever the exit status (the caller judges it). At the deadline the command and
    /// everything it started are killed and the error is a [`Timeout`] (use
    /// `anyhow::Error::downcast_ref`) with what it printed so far.
    ///
    /// The command runs in a process group of its own, so the kill reaches its children too;
    /// since a terminal's Ctrl-C then no longer reaches it, it also gets
    /// `PR_SET_PDEATHSIG=SIGKILL` and dies with xtask.
    fn output_within(&mut self, limit: Duration, watch: Watch) -> Result<Output>;
    /// [`CommandExt::output_within`], quiet, failing (with stderr) unless the exit status is 0.
    fn run_output_within(&mut self, limit: Duration) -> Result<Output>;
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
        succeeded(self, out)
    }

    fn output_within(&mut self, limit: Duration, watch: Watch) -> Result<Output> {
        let command = display(self);
        self.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            self.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let start = Instant::now();
        let mut child = self
            .spawn()
            .with_context(|| format!("cannot run `{command}`"))?;
        let stdout = Drain::spawn(child.stdout.take().expect("piped"), None::<std::io::Stderr>);
        let stderr = Drain::spawn(
            child.stderr.take().expect("piped"),
            (watch == Watch::Live).then(std::io::stderr),
        );
        let mut status = None;
        let mut next_note = NOTE_EVERY;
        loop {
            if status.is_none() {
                status = child.try_wait()?;
            }
            // Done when the command has exited and its pipes are closed (a child it left
            // behind may still hold them; the deadline covers that too).
            if let Some(status) = status {
                if stdout.finished() && stderr.finished() {
                    return Ok(Output {
                        status,
                        stdout: stdout.take(),
                        stderr: stderr.take(),
                    });
                }
            }
            let elapsed = start.elapsed();
            if elapsed >= limit {
                // The group outlives the leader only while a member lives; ESRCH means none.
                let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                let _ = child.wait();
                let until = Instant::now() + DRAIN;
                while !(stdout.finished() && stderr.finished()) && Instant::now() < until {
                    std::thread::sleep(POLL);
                }
                return Err(Timeout {
                    command,
                    pid: child.id(),
                    limit,
                    elapsed,
                    stdout: stdout.take(),
                    stderr: stderr.take(),
                }
                .into());
            }
            if watch == Watch::Live && elapsed >= next_note {
                eprintln!(
                    "  still running ({} s, deadline {} s)",
                    next_note.as_secs(),
                    limit.as_secs()
                );
                next_note += NOTE_EVERY;
            }
            std::thread::sleep(POLL.min(limit - elapsed));
        }
    }

    fn run_output_within(&mut self, limit: Duration) -> Result<Output> {
        let out = self.output_within(limit, Watch::Quiet)?;
        succeeded(self, out)
    }
}

fn succeeded(cmd: &Command, out: Output) -> Result<Output> {
    if !out.status.success() {
        bail!(
            "`{}` failed: {}\n{}",
            display(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(out)
}

/// A thread reading one pipe to its end into a buffer that can be taken at any time (after a
/// timeout, whatever arrived so far), optionally copying each chunk to `echo`.
struct Drain {
    buf: Arc<Mutex<Vec<u8>>>,
    thread: JoinHandle<()>,
}

impl Drain {
    fn spawn(
        mut pipe: impl Read + Send + 'static,
        mut echo: Option<impl Write + Send + 'static>,
    ) -> Drain {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buf);
        let thread = std::thread::spawn(move || {
            let mut chunk = [0u8; 64 * 1024];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        if let Some(e) = echo.as_mut() {
                            let _ = e.write_all(&chunk[..n]);
                        }
                        sink.lock()
                            .expect("drain buffer")
                            .extend_from_slice(&chunk[..n]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
        Drain { buf, thread }
    }

    fn finished(&self) -> bool {
        self.thread.is_finished()
    }

    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buf.lock().expect("drain buffer"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    /// Gone, or a zombie that only waits for init to reap it (it holds no pipe, runs nothing).
    fn gone(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z')),
        }
    }

    /// Whether `pid` is gone within 5 s. SIGKILL is delivered at once, but the process dies
    /// when it is next scheduled: on a loaded host that can take a moment (CI once saw a
    /// killed `sleep` still listed right after the kill).
    fn gone_soon(pid: u32) -> bool {
        let until = Instant::now() + Duration::from_secs(5);
        while !gone(pid) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        gone(pid)
    }

    #[test]
    fn a_command_past_its_deadline_is_killed_with_its_children() {
        // The shell prints the pid of a background `sleep` (its own child) and waits for it.
        let mut c = sh("sleep 30 & echo $!; echo waiting >&2; wait");
        let start = Instant::now();
        let err = c
            .output_within(Duration::from_millis(300), Watch::Quiet)
            .expect_err("sleep 30 cannot finish in 300 ms");
        let took = start.elapsed();
        assert!(took < Duration::from_secs(5), "returned after {took:?}");
        let t = err.downcast_ref::<Timeout>().expect("a Timeout error");
        assert_eq!(t.limit, Duration::from_millis(300));
        assert!(t.elapsed >= t.limit && t.elapsed <= took, "{t:?}");
        // The shell was reaped: no /proc entry, and waitpid has nothing left to collect.
        assert!(!Path::new(&format!("/proc/{}", t.pid)).exists());
        assert!(nix::sys::wait::waitpid(Pid::from_raw(t.pid as i32), None).is_err());
        // Its child, in the same process group, was killed too.
        let stdout = String::from_utf8_lossy(&t.stdout);
        let sleep: u32 = stdout.trim().parse().expect("the sleep's pid on stdout");
        assert!(
            gone_soon(sleep),
            "sleep {sleep} still runs 5 s after the kill"
        );
        // What it printed before the kill is kept, and the message names command and times.
        assert_eq!(String::from_utf8_lossy(&t.stderr), "waiting\n");
        let msg = format!("{err:#}");
        for want in [
            "`sh -c 'sleep 30 &".to_string(),
            "deadline of 0.3 s".to_string(),
            format!("killed (pid {} and its process group)", t.pid),
            format!("after {:.1} s", t.elapsed.as_secs_f64()),
            "--- stderr so far (last 1 of 1 lines):\nwaiting".to_string(),
        ] {
            assert!(msg.contains(&want), "{want:?} not in {msg}");
        }
    }

    #[test]
    fn a_plain_sleep_is_gone_after_its_deadline() {
        let start = Instant::now();
        let err = Command::new("sleep")
            .arg("30")
            .output_within(Duration::from_millis(300), Watch::Live)
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        let t = err.downcast_ref::<Timeout>().expect("a Timeout error");
        assert!(!Path::new(&format!("/proc/{}", t.pid)).exists());
    }

    #[test]
    fn a_child_left_holding_the_pipes_counts_against_the_deadline() {
        // `sh` exits at once; the `sleep` it leaves keeps stdout open, so the output is not
        // complete. The deadline ends the wait and kills the group.
        let err = sh("sleep 30 & echo $!")
            .output_within(Duration::from_millis(300), Watch::Quiet)
            .unwrap_err();
        let t = err.downcast_ref::<Timeout>().expect("a Timeout error");
        let sleep: u32 = String::from_utf8_lossy(&t.stdout).trim().parse().unwrap();
        assert!(
            gone_soon(sleep),
            "sleep {sleep} still runs 5 s after the kill"
        );
    }

    #[test]
    fn output_inside_the_deadline_is_complete_even_when_large() {
        // Far more than a pipe buffer (64 KiB) on both streams: reading one stream only after
        // the other, or only after exit, would deadlock and end in a timeout.
        let out = sh("head -c 3000000 /dev/zero | tr '\\0' o; \
                      head -c 1500000 /dev/zero | tr '\\0' e >&2; exit 3")
        .output_within(Duration::from_secs(60), Watch::Quiet)
        .expect("finishes well inside 60 s");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout.len(), 3_000_000);
        assert!(out.stdout.iter().all(|&b| b == b'o'));
        assert_eq!(out.stderr.len(), 1_500_000);
        assert!(out.stderr.iter().all(|&b| b == b'e'));
    }

    #[test]
    fn run_output_within_fails_on_a_bad_exit_with_stderr() {
        let ok = sh("echo fine").run_output_within(Duration::from_secs(30));
        assert_eq!(ok.unwrap().stdout, b"fine\n");
        let err = sh("echo broken >&2; exit 1")
            .run_output_within(Duration::from_secs(30))
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("exit status: 1") && msg.contains("broken"),
            "{msg}"
        );
        assert!(err.downcast_ref::<Timeout>().is_none());
    }
}
