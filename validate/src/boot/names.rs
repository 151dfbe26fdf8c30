//! The names of everything the proofs create, `virthost-validate-<pid>-<random>...`, and the
//! kernel's random bytes behind them and behind the callback token.
//!
//! The creating process's pid in every name lets [`super::cleanup::sweep`] remove only
//! what dead processes left, never the objects of a run that is still going.

use std::path::Path;

/// Name prefix of every domain, network and serial file the boot proof creates.
pub const PREFIX: &str = "virthost-validate-";

/// `virthost-validate-<pid>-...` of a process that no longer runs.
pub(crate) fn owner_dead(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return false;
    };
    let pid: Option<i32> = rest.split('-').next().and_then(|p| p.parse().ok());
    match pid {
        Some(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
        None => true,
    }
}

/// Every name this module creates: `virthost-validate-<pid>-<random>`.
/// A fresh `virthost-validate-<pid>-<random>` name (the power proof's domains use one too).
pub fn new_run_name() -> Result<String, NoRandomness> {
    run_name(kernel_random)
}

pub(super) fn run_name(random: RandomSource) -> Result<String, NoRandomness> {
    Ok(format!(
        "{PREFIX}{}-{}",
        std::process::id(),
        random_hex_from(4, random)?
    ))
}

/// Fills a buffer with random bytes, entirely or with an error.
pub type RandomSource = fn(&mut [u8]) -> std::io::Result<()>;

/// What to do when the kernel gives no random bytes.
pub(super) const RANDOM_HINT: &str = "the boot proof needs unpredictable names and an unguessable \
     callback token: check that the kernel's getrandom(2) works or that /dev/urandom exists and \
     is readable (in a container or chroot, bind-mount /dev)";

/// Random bytes from the kernel: getrandom(2), or `/dev/urandom` on kernels without it
/// (before 3.17). An error, never a buffer left as it was (all zeros: a predictable token).
pub fn kernel_random(buf: &mut [u8]) -> std::io::Result<()> {
    use nix::libc;
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // The raw system call, not glibc's wrapper: that needs glibc 2.25 (RHEL 7 has 2.17).
        // SAFETY: the kernel writes at most `rest.len()` bytes into `rest`.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getrandom,
                rest.as_mut_ptr(),
                rest.len(),
                0 as libc::c_uint,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ENOSYS) => return read_random_file(Path::new("/dev/urandom"), rest),
                _ => return Err(e),
            }
        }
        filled += n as usize;
    }
    Ok(())
}

/// Fills `buf` from `path` (`/dev/urandom`): unopenable or short is an error.
fn read_random_file(path: &Path, buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(buf))
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// `n` random bytes from the kernel, as hex.
pub fn random_hex(n: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; n];
    kernel_random(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The kernel gave no random bytes: the FAIL detail of what needed them.
#[derive(Debug, thiserror::Error)]
#[error("cannot read random bytes from the kernel (getrandom, /dev/urandom): {0}")]
pub struct NoRandomness(#[source] pub std::io::Error);

/// `n` bytes of `random` as hex, or why there are none.
pub(super) fn random_hex_from(n: usize, random: RandomSource) -> Result<String, NoRandomness> {
    let mut buf = vec![0u8; n];
    random(&mut buf).map_err(NoRandomness)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_prefix_and_pid() {
        let n = run_name(kernel_random).unwrap();
        assert!(n.starts_with(PREFIX));
        assert!(!owner_dead(&n));
        assert!(owner_dead(&format!("{PREFIX}999999999-ab")));
        assert!(!owner_dead("default"));
    }

    #[test]
    fn random_hex_is_sized_and_differs() {
        let a = random_hex(16).unwrap();
        let b = random_hex(16).unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
        assert_ne!(a, "0".repeat(32));
        assert_eq!(random_hex(0).unwrap(), "");
    }

    #[test]
    fn an_unreadable_or_short_random_file_is_an_error_not_zeros() {
        let mut buf = [0u8; 4];
        let e = read_random_file(Path::new("/nonexistent/urandom"), &mut buf).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/urandom"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, [1u8, 2]).unwrap();
        assert!(read_random_file(&short, &mut buf).is_err());
        std::fs::write(&short, [1u8, 2, 3, 4]).unwrap();
        read_random_file(&short, &mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3, 4]);
    }
}
