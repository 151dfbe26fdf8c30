//! Files named on a command line (`--root-key FILE`, `--stack-key FILE`, in both binaries):
//! a regular file of bounded size, or an error that says what it is instead. A FIFO, a
//! device, a socket or a directory is refused from its `stat` without being opened, so
//! nothing blocks (a FIFO with no writer) or never ends (`/dev/zero`); the open itself is
//! non-blocking and the opened file is checked again (the name may have changed between the
//! two), and no more than the cap is ever read.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The most a key file may hold: a few hundred keys (an RSA-4096 line is ~750 bytes).
pub const KEY_FILE_MAX: u64 = 256 * 1024;

/// What a file that is not a regular file is, for messages.
fn kind(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

fn human(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    } else {
        format!("{} KiB", n.div_ceil(1024))
    }
}

/// The bytes of the regular file `path` (symlinks followed), at most `max` of them.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>> {
    let shown = path.display();
    let before = std::fs::metadata(path).with_context(|| format!("{shown}: cannot read"))?;
    if !before.file_type().is_file() {
        bail!("{shown}: is {}, not a regular file", kind(&before));
    }
    if before.len() > max {
        bail!(
            "{shown}: is {}, more than the {} a key file may be",
            human(before.len()),
            human(max)
        );
    }
    let file = File::options()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
        .with_context(|| format!("{shown}: cannot read"))?;
    let now = file
        .metadata()
        .with_context(|| format!("{shown}: cannot read"))?;
    if !now.file_type().is_file() || (now.dev(), now.ino()) != (before.dev(), before.ino()) {
        bail!("{shown}: changed while it was opened; try again");
    }
    let mut bytes = Vec::with_capacity(now.len().min(max) as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{shown}: cannot read"))?;
    if bytes.len() as u64 > max {
        bail!(
            "{shown}: grew past the {} a key file may be while it was read",
            human(max)
        );
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn err(path: &Path, max: u64) -> String {
        format!("{:#}", read_regular(path, max).unwrap_err())
    }

    #[test]
    fn refuses_what_is_not_a_small_regular_file_at_once() {
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let sock = t.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let big = t.path().join("big.pub");
        std::fs::write(&big, vec![b'a'; 2048]).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let start = Instant::now();
        let cases: &[(&Path, &str)] = &[
            (&fifo, "is a FIFO (named pipe), not a regular file"),
            (Path::new("/dev/zero"), "is a character device"),
            (&link, "is a character device"),
            (t.path(), "is a directory"),
            (&sock, "is a socket"),
            (&big, "is 2 KiB, more than the 1 KiB a key file may be"),
            (&t.path().join("nope"), "nope: cannot read"),
        ];
        for (path, want) in cases {
            let e = err(path, 1024);
            assert!(e.contains(want), "{}: {e}", path.display());
        }
        // Nothing waited for a writer or read a device.
        assert!(start.elapsed() < Duration::from_secs(5));
        std::fs::write(&big, b"ok\n").unwrap();
        assert_eq!(read_regular(&big, 1024).unwrap(), b"ok\n");
        assert_eq!(human(3 << 20), "3.0 MiB");
    }
}
