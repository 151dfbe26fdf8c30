//! One bootstrap at a time on a host. A run that changes the host takes an exclusive POSIX
//! record lock (`fcntl` `F_SETLK`, as dpkg does) on [`LOCK_PATH`] before it reads anything;
//! `--check` takes a shared one, so it never reads a host halfway through a change. A run
//! that finds the lock held waits, saying which process holds it, for at most its
//! `--lock-wait`; then it exits [`crate::cli::exit::LOCKED`] and has changed nothing. The
//! kernel drops the lock when the holder exits, however it exits (a SIGKILL included), so a
//! stale lock cannot exist; the file itself stays and is never removed (removing it would
//! let two runs hold locks on two different files).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use crate::hostroot::HostRoot;

pub const LOCK_PATH: &str = "/run/virthost-bootstrap.lock";
/// `--lock-wait`'s default: longer than a first converge's package install on a slow host
/// (bootstrap run 1 in the TCG e2e VM: 408-505 s, docs/e2e.md).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(900);
const POLL: Duration = Duration::from_millis(100);
const TELL_EVERY: Duration = Duration::from_secs(10);

/// Held until dropped (the kernel releases it when the file is closed).
#[derive(Debug)]
pub struct HostLock {
    _file: File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A run that changes the host.
    Exclusive,
    /// A run that only reads it (`--check`).
    Shared,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path} is held by {holder}, still after {waited} s: another bootstrap is converging this host; let it finish, or raise --lock-wait")]
    Timeout {
        path: String,
        holder: String,
        waited: u64,
    },
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
}

pub use virthost_model::locks::{describe_pid, holder_of};

fn try_lock(file: &File, l_type: i32) -> io::Result<bool> {
    use nix::fcntl::{fcntl, FcntlArg};
    // SAFETY: as in `holder_of`.
    let mut fl: nix::libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = l_type as _;
    fl.l_whence = nix::libc::SEEK_SET as _;
    match fcntl(file.as_fd(), FcntlArg::F_SETLK(&fl)) {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Takes the host lock of `root`, waiting at most `wait`; `tell` hears whom it waits for
/// (at once, then every 10 s). A shared lock where no lock file exists yet is `None`: no
/// bootstrap has ever changed this host, so none is changing it now.
pub fn acquire(
    root: &HostRoot,
    access: Access,
    wait: Duration,
    tell: &dyn Fn(&str),
) -> Result<Option<HostLock>, LockError> {
    let path = root.path(LOCK_PATH);
    let io_err = |source| LockError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut opts = File::options();
    opts.custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC);
    let l_type = match access {
        Access::Exclusive => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io_err)?;
            }
            opts.read(true).write(true).create(true).mode(0o600);
            nix::libc::F_WRLCK
        }
        Access::Shared => {
            opts.read(true);
            nix::libc::F_RDLCK
        }
    };
    let file = match opts.open(&path) {
        Ok(f) => f,
        Err(e) if access == Access::Shared && e.kind() == io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(io_err(e)),
    };
    let start = Instant::now();
    let mut told: Option<Instant> = None;
    loop {
        if try_lock(&file, l_type).map_err(io_err)? {
            return Ok(Some(HostLock { _file: file }));
        }
        let holder = match holder_of(&file, l_type).map_err(io_err)? {
            Some(pid) => describe_pid(root, pid),
            None => continue, // released between the two calls
        };
        if start.elapsed() >= wait {
            return Err(LockError::Timeout {
                path: LOCK_PATH.to_string(),
                holder,
                waited: wait.as_secs(),
            });
        }
        if told.is_none_or(|t| t.elapsed() >= TELL_EVERY) {
            tell(&format!(
                "waiting for {LOCK_PATH} held by {holder} ({:.0} s of {} s)",
                start.elapsed().as_secs_f64(),
                wait.as_secs()
            ));
            told = Some(Instant::now());
        }
        std::thread::sleep(POLL.min(wait.saturating_sub(start.elapsed())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::{kill, Signal};
    use nix::sys::wait::waitpid;
    use nix::unistd::{fork, ForkResult};
    use std::cell::RefCell;
    use std::io::Read;

    /// A child that takes the lock as another bootstrap would, says so on a pipe, and
    /// holds it until killed. The file is opened before the fork; the child only calls
    /// fcntl, write and pause (async-signal-safe in a threaded test process).
    fn child_holding(root: &HostRoot) -> nix::unistd::Pid {
        let path = root.path(LOCK_PATH);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .unwrap();
        let (mut r, w) = std::io::pipe().unwrap();
        // SAFETY: see above.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let ok = try_lock(&file, nix::libc::F_WRLCK).unwrap_or(false);
                let _ = nix::unistd::write(&w, &[ok as u8]);
                loop {
                    nix::unistd::pause();
                }
            }
            ForkResult::Parent { child } => {
                drop(w);
                let mut b = [0u8];
                r.read_exact(&mut b).unwrap();
                assert_eq!(b[0], 1, "the child took the lock");
                child
            }
        }
    }

    #[test]
    fn a_second_run_waits_names_the_holder_and_gets_it_once_released() {
        let t = tempfile::tempdir().unwrap();
        let root = HostRoot::at(t.path());
        // No lock file yet: a reader has nothing to wait for.
        assert!(acquire(&root, Access::Shared, Duration::ZERO, &|_| {})
            .unwrap()
            .is_none());
        let child = child_holding(&root);
        let said = RefCell::new(Vec::<String>::new());
        let tell = |m: &str| said.borrow_mut().push(m.to_string());
        let err = acquire(&root, Access::Exclusive, Duration::from_millis(300), &tell)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("held by pid {child}")), "{err}");
        assert!(err.contains("still after 0 s"), "{err}");
        assert!(
            said.borrow()[0].contains(&format!("pid {child}")),
            "{said:?}"
        );
        // A reader waits for the writer too.
        assert!(acquire(&root, Access::Shared, Duration::from_millis(200), &|_| {}).is_err());
        kill(child, Signal::SIGKILL).unwrap();
        waitpid(child, None).unwrap();
        // The kernel dropped the killed holder's lock: no stale lock.
        let l = acquire(&root, Access::Exclusive, Duration::from_secs(5), &|_| {}).unwrap();
        assert!(l.is_some());
        let m = std::fs::metadata(root.path(LOCK_PATH)).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777,
            0o600
        );
    }
}
