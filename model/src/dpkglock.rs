//! Waiting for dpkg's locks before `dpkg --configure -a`.
//!
//! `apt-get` waits for them on its own (`DPkg::Lock::Timeout`, [`crate::pkg`]), `dpkg` does
//! not: it fails at once with "dpkg database lock was locked by another process". Another
//! dpkg may well be running: unattended-upgrades on a freshly booted Ubuntu, or a dpkg that
//! was just killed and is still finishing a disk write (seen in e2e on a loaded host, right
//! after the interrupted run was SIGKILLed). dpkg takes POSIX record locks (`fcntl`
//! `F_SETLK`) on both files below; `F_GETLK` names the process that holds one without
//! taking it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::hostroot::HostRoot;
use crate::progress::Progress;

/// dpkg's locks, relative to the host root: the frontend lock (dpkg >= 1.19, taken by apt
/// and by a dpkg run on its own) and the database lock.
pub const LOCKS: [&str; 2] = ["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"];
/// As long as apt waits (`DPkg::Lock::Timeout=300`).
pub const TIMEOUT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(250);
const TELL_EVERY: Duration = Duration::from_secs(10);

/// Who holds a dpkg lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub lock: PathBuf,
    /// The holder's pid as the kernel reports it (0 when it cannot say: an open file
    /// description lock, or a holder in another pid namespace).
    pub pid: i32,
}

impl Holder {
    /// `pid 1120 (dpkg)` with the process name from `/proc` where it can be read.
    fn describe(&self, root: &HostRoot) -> String {
        crate::locks::describe_pid(root, self.pid)
    }
}

/// The first of [`LOCKS`] another process holds; `None` when both are free or absent (no
/// dpkg database: nothing to wait for).
pub fn holder(root: &HostRoot) -> std::io::Result<Option<Holder>> {
    for lock in LOCKS {
        let path = root.path(lock);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if let Some(pid) = crate::locks::holder_of(&file, nix::libc::F_WRLCK)? {
            return Ok(Some(Holder { lock: path, pid }));
        }
    }
    Ok(None)
}

/// Returns once no other process holds a dpkg lock, telling `progress` who it waits for
/// (at once, then every 10 s). After `timeout` it fails naming the holder and what to do.
pub fn wait(root: &HostRoot, timeout: Duration, progress: &dyn Progress) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut told: Option<Instant> = None;
    loop {
        let Some(h) = holder(root)? else {
            return Ok(());
        };
        let who = h.describe(root);
        if start.elapsed() >= timeout {
            anyhow::bail!(
                "{} is held by {who}, still after {} s: let it finish (unattended-upgrades? \
                 another apt or dpkg?) and run bootstrap again; never remove the lock file",
                h.lock.display(),
                timeout.as_secs()
            );
        }
        if told.is_none_or(|t| t.elapsed() >= TELL_EVERY) {
            progress.tick(&format!(
                "waiting for {} held by {who} ({:.0} s of {} s)",
                h.lock.display(),
                start.elapsed().as_secs_f64(),
                timeout.as_secs()
            ));
            told = Some(Instant::now());
        }
        std::thread::sleep(POLL.min(timeout.saturating_sub(start.elapsed())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::{kill, Signal};
    use nix::sys::wait::waitpid;
    use nix::unistd::{fork, ForkResult, Pid};
    use std::cell::RefCell;
    use std::io::Read;
    use std::os::fd::AsFd;

    struct Said(RefCell<Vec<String>>);
    impl Progress for Said {
        fn tick(&self, m: &str) {
            self.0.borrow_mut().push(m.to_string());
        }
    }

    /// A child process holding a write lock on `path`, as dpkg does; killed on drop.
    struct LockHolder(Pid);
    impl LockHolder {
        fn new(path: &std::path::Path) -> LockHolder {
            let (rd, wr) = nix::unistd::pipe().unwrap();
            let mut rd = std::fs::File::from(rd);
            let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            // SAFETY: the child only calls fcntl, write and pause (async-signal-safe) and
            // never returns into the test harness.
            match unsafe { fork() }.unwrap() {
                ForkResult::Child => {
                    let mut fl: nix::libc::flock = unsafe { std::mem::zeroed() };
                    fl.l_type = nix::libc::F_WRLCK as _;
                    fl.l_whence = nix::libc::SEEK_SET as _;
                    let ok =
                        nix::fcntl::fcntl(file.as_fd(), nix::fcntl::FcntlArg::F_SETLK(&fl)).is_ok();
                    let _ = nix::unistd::write(&wr, if ok { b"y" } else { b"n" });
                    loop {
                        nix::unistd::pause();
                    }
                }
                ForkResult::Parent { child } => {
                    drop(wr);
                    let mut b = [0u8; 1];
                    rd.read_exact(&mut b).unwrap();
                    assert_eq!(&b, b"y", "the child could not take the lock");
                    LockHolder(child)
                }
            }
        }
    }
    impl Drop for LockHolder {
        fn drop(&mut self) {
            let _ = kill(self.0, Signal::SIGKILL);
            let _ = waitpid(self.0, None);
        }
    }

    #[test]
    fn waits_for_a_held_lock_names_its_holder_and_gives_up_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::at(dir.path());
        // No dpkg database at all: nothing to wait for.
        assert_eq!(holder(&root).unwrap(), None);
        std::fs::create_dir_all(dir.path().join("var/lib/dpkg")).unwrap();
        for l in LOCKS {
            std::fs::write(root.path(l), "").unwrap();
        }
        // Free lock files: no wait.
        assert_eq!(holder(&root).unwrap(), None);
        wait(&root, Duration::ZERO, &Said(RefCell::new(vec![]))).unwrap();

        let held = LockHolder::new(&root.path("/var/lib/dpkg/lock"));
        let h = holder(&root).unwrap().expect("the child's lock is seen");
        assert_eq!(h.pid, held.0.as_raw());
        assert!(h.lock.ends_with("var/lib/dpkg/lock"));
        let said = Said(RefCell::new(vec![]));
        let err = wait(&root, Duration::from_millis(600), &said)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("pid {}", held.0)), "{err}");
        assert!(err.contains("never remove the lock file"), "{err}");
        let said = said.0.into_inner();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].starts_with("waiting for "), "{said:?}");

        // The holder goes away while bootstrap waits: the wait ends.
        let pid = held.0;
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        let t = Instant::now();
        wait(&root, Duration::from_secs(30), &Said(RefCell::new(vec![]))).unwrap();
        killer.join().unwrap();
        assert!(t.elapsed() < Duration::from_secs(30), "{pid} waited out");
        assert_eq!(holder(&root).unwrap(), None);
    }
}
