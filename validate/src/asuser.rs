//! Running a probe as another account: a forked child takes the account's uid, gid and
//! supplementary groups (as libvirt does for QEMU, and a login does for the stack user) and
//! answers through a pipe. Used where only a real attempt tells (polkit's rights, QEMU's
//! access to the images).

use std::io::Read;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::accounts::Account;

/// Why a probe run as another account gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum AsUserError {
    #[error("pipe: {0}")]
    Pipe(#[source] nix::Error),
    #[error("fork: {0}")]
    Fork(#[source] nix::Error),
    #[error("waitpid: {0}")]
    Waitpid(#[source] nix::Error),
    #[error("interrupted by {0}")]
    Interrupted(nix::sys::signal::Signal),
    #[error("no answer within {} s (libvirtd or polkitd hanging?)", .0.as_secs())]
    Timeout(Duration),
    /// The child's error, as it answered it (its text crossed a pipe).
    #[error("{0}")]
    Probe(String),
    #[error("the probe process died without an answer")]
    NoAnswer,
}

/// Why the child could not take the account's identity (answered as its error).
#[derive(Debug, thiserror::Error)]
enum BecomeError {
    #[error("setgroups: {0}")]
    SetGroups(nix::Error),
    #[error("setgid: {0}")]
    SetGid(nix::Error),
    #[error("setuid: {0}")]
    SetUid(nix::Error),
    #[error("still root after setuid")]
    StillRoot,
}

/// Runs `probe` in a child process with `account`'s identity (when validate is root; as
/// itself otherwise) and returns its answer or error (the error's text, `{:#}`: an
/// `anyhow` chain in full). A child that does not answer within `timeout` is killed.
pub fn run_as<E: std::fmt::Display>(
    account: &Account,
    timeout: Duration,
    probe: impl FnOnce() -> Result<String, E>,
) -> Result<String, AsUserError> {
    spawn_as(account, probe)?.go(timeout)
}

/// A child forked by [`spawn_as`] that waits for [`Waiting::go`] before it runs its probe.
/// Dropped without `go`, or killed by `go`'s timeout, it is killed and reaped.
pub struct Waiting {
    child: nix::unistd::Pid,
    go: Option<std::os::fd::OwnedFd>,
    answer: Option<std::os::fd::OwnedFd>,
    reaped: bool,
}

/// Forks the child of [`run_as`] now and lets it run `probe` only at [`Waiting::go`]. Fork
/// while the process has one thread (before the boot proof starts its lanes): a thread
/// holding a lock at the fork (libvirt's, the environment's) would leave it locked forever
/// in the child.
pub fn spawn_as<E: std::fmt::Display>(
    account: &Account,
    probe: impl FnOnce() -> Result<String, E>,
) -> Result<Waiting, AsUserError> {
    use nix::unistd::{fork, ForkResult, Gid, Uid};

    let (rd, wr) = nix::unistd::pipe().map_err(AsUserError::Pipe)?;
    let (go_rd, go_wr) = nix::unistd::pipe().map_err(AsUserError::Pipe)?;
    // SAFETY: the child only drops privileges, runs the probe and leaves with _exit, running
    // no destructor of the parent's state.
    match unsafe { fork() }.map_err(AsUserError::Fork)? {
        ForkResult::Child => {
            drop(rd);
            drop(go_wr);
            // The run's libvirt connection (root's) is open at the fork: the child, about
            // to be another user, keeps none of the parent's descriptors but its pipes and
            // stdio, so whatever it proves it proves on connections of its own.
            close_inherited([go_rd.as_raw_fd(), wr.as_raw_fd()]);
            // One byte: go. End of file (the parent died or dropped us): leave at once.
            let mut byte = [0u8; 1];
            if !matches!(nix::unistd::read(&go_rd, &mut byte), Ok(1)) {
                // SAFETY: ends the child without running the parent's destructors.
                unsafe { nix::libc::_exit(0) }
            }
            let become_user = || -> Result<(), BecomeError> {
                let groups: Vec<Gid> = account.groups.iter().map(|g| Gid::from_raw(*g)).collect();
                if nix::unistd::geteuid().is_root() {
                    nix::unistd::setgroups(&groups).map_err(BecomeError::SetGroups)?;
                    nix::unistd::setgid(Gid::from_raw(account.gid)).map_err(BecomeError::SetGid)?;
                    nix::unistd::setuid(Uid::from_raw(account.uid)).map_err(BecomeError::SetUid)?;
                }
                if account.uid != 0 && nix::unistd::geteuid().is_root() {
                    return Err(BecomeError::StillRoot);
                }
                // glibc's setenv/unsetenv, not std's: std's take its environment lock,
                // which another thread of the parent (a `Command::spawn`, `env::var`) may
                // have held at the fork, and would then wait for forever.
                set_env("HOME", &account.home);
                for v in ["XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"] {
                    unset_env(v);
                }
                Ok(())
            };
            let msg = match become_user().map(|()| probe()) {
                Ok(Ok(a)) => format!("OK {a}"),
                Ok(Err(e)) => format!("ERR {e:#}"),
                Err(e) => format!("ERR {e}"),
            };
            let _ = nix::unistd::write(&wr, msg.as_bytes());
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { nix::libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(wr);
            drop(go_rd);
            Ok(Waiting {
                child,
                go: Some(go_wr),
                answer: Some(rd),
                reaped: false,
            })
        }
    }
}

impl Waiting {
    /// Lets the child run its probe and waits for its answer, at most `timeout`; a SIGINT
    /// or SIGTERM during the boot proof (`boot`'s handler recorded it) kills it at once.
    pub fn go(mut self, timeout: Duration) -> Result<String, AsUserError> {
        use nix::sys::signal::{kill, Signal};
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

        if let Some(go) = self.go.take() {
            let _ = nix::unistd::write(&go, b"g");
        }
        let start = Instant::now();
        loop {
            match waitpid(self.child, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(_) => break,
                Err(e) => {
                    self.reaped = true;
                    return Err(AsUserError::Waitpid(e));
                }
            }
            if let Some(sig) = crate::boot::interrupted() {
                let _ = kill(self.child, Signal::SIGKILL);
                let _ = waitpid(self.child, None);
                self.reaped = true;
                return Err(AsUserError::Interrupted(sig));
            }
            if start.elapsed() > timeout {
                let _ = kill(self.child, Signal::SIGKILL);
                let _ = waitpid(self.child, None);
                self.reaped = true;
                return Err(AsUserError::Timeout(timeout));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.reaped = true;
        let mut msg = String::new();
        if let Some(rd) = self.answer.take() {
            // The child wrote all before it left; read what is there, not up to end of
            // file: a child another thread forked meanwhile may hold a copy of the write
            // end (a power proof's child waits its turn for seconds).
            let mut f = std::fs::File::from(rd);
            let _ = nix::fcntl::fcntl(
                &f,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                match f.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            msg = String::from_utf8_lossy(&buf).into_owned();
        }
        if let Some(a) = msg.strip_prefix("OK ") {
            Ok(a.to_string())
        } else if let Some(e) = msg.strip_prefix("ERR ") {
            Err(AsUserError::Probe(e.trim().to_string()))
        } else {
            Err(AsUserError::NoAnswer)
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if !self.reaped {
            // Closing the go pipe ends a child still waiting; one already running is killed.
            self.go.take();
            let _ = nix::sys::signal::kill(self.child, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(self.child, None);
        }
    }
}

/// `setenv(name, value, 1)` in a forked child (see [`spawn_as`]).
fn set_env(name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (std::ffi::CString::new(name), std::ffi::CString::new(value)) {
        // SAFETY: two NUL-terminated strings; the child has one thread.
        unsafe { nix::libc::setenv(n.as_ptr(), v.as_ptr(), 1) };
    }
}

/// `unsetenv(name)` in a forked child.
fn unset_env(name: &str) {
    if let Ok(n) = std::ffi::CString::new(name) {
        // SAFETY: a NUL-terminated string; the child has one thread.
        unsafe { nix::libc::unsetenv(n.as_ptr()) };
    }
}

/// Closes every descriptor from 3 up but the two in `keep`, in a forked child
/// (`close_range(2)` as a raw system call: nothing allocated, and no glibc >= 2.34 symbol
/// needed). On a kernel older than 5.9 (ENOSYS) they stay open; the child never uses them.
fn close_inherited(keep: [std::os::fd::RawFd; 2]) {
    let (a, b) = (keep[0].min(keep[1]), keep[0].max(keep[1]));
    let mut first: i64 = 3;
    for k in [i64::from(a), i64::from(b), i64::from(u32::MAX) + 1] {
        if k > first {
            // SAFETY: closes descriptors of this (forked, single-threaded) process only.
            unsafe {
                nix::libc::syscall(
                    nix::libc::SYS_close_range,
                    first as nix::libc::c_uint,
                    (k - 1) as nix::libc::c_uint,
                    0 as nix::libc::c_uint,
                )
            };
        }
        first = first.max(k + 1);
    }
}
