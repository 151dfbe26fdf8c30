//! Running a probe as another account: a forked child takes the account's uid, gid and
//! supplementary groups (as libvirt does for QEMU, and a login does for the stack user) and
//! answers through a pipe. Used where only a real attempt tells (polkit's rights, QEMU's
//! access to the images).

use std::io::Read;
use std::time::{Duration, Instant};

use crate::checks::libvirt::Account;

/// Runs `probe` in a child process with `account`'s identity (when validate is root; as
/// itself otherwise) and returns its answer or error. A child that does not answer within
/// `timeout` is killed.
pub fn run_as(
    account: &Account,
    timeout: Duration,
    probe: impl FnOnce() -> Result<String, String>,
) -> Result<String, String> {
    use nix::sys::signal::{kill, Signal};
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    use nix::unistd::{fork, ForkResult, Gid, Uid};

    let (rd, wr) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the child only drops privileges, runs the probe and leaves with _exit, running
    // no destructor of the parent's state.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop(rd);
            let result = (|| -> Result<String, String> {
                let groups: Vec<Gid> = account.groups.iter().map(|g| Gid::from_raw(*g)).collect();
                if nix::unistd::geteuid().is_root() {
                    nix::unistd::setgroups(&groups).map_err(|e| format!("setgroups: {e}"))?;
                    nix::unistd::setgid(Gid::from_raw(account.gid))
                        .map_err(|e| format!("setgid: {e}"))?;
                    nix::unistd::setuid(Uid::from_raw(account.uid))
                        .map_err(|e| format!("setuid: {e}"))?;
                }
                if account.uid != 0 && nix::unistd::geteuid().is_root() {
                    return Err("still root after setuid".into());
                }
                std::env::set_var("HOME", &account.home);
                std::env::remove_var("XDG_RUNTIME_DIR");
                std::env::remove_var("XDG_CONFIG_HOME");
                std::env::remove_var("XDG_CACHE_HOME");
                probe()
            })();
            let msg = match result {
                Ok(a) => format!("OK {a}"),
                Err(e) => format!("ERR {e}"),
            };
            let _ = nix::unistd::write(&wr, msg.as_bytes());
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { nix::libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(wr);
            let start = Instant::now();
            loop {
                match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) => {}
                    Ok(_) => break,
                    Err(e) => return Err(format!("waitpid: {e}")),
                }
                if start.elapsed() > timeout {
                    let _ = kill(child, Signal::SIGKILL);
                    let _ = waitpid(child, None);
                    return Err(format!(
                        "no answer within {} s (libvirtd or polkitd hanging?)",
                        timeout.as_secs()
                    ));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let mut msg = String::new();
            let mut f = std::fs::File::from(rd);
            let _ = f.read_to_string(&mut msg);
            if let Some(a) = msg.strip_prefix("OK ") {
                Ok(a.to_string())
            } else if let Some(e) = msg.strip_prefix("ERR ") {
                Err(e.trim().to_string())
            } else {
                Err("the probe process died without an answer".into())
            }
        }
    }
}
