//! Who holds a lock file: read only, for the host lock (`bootstrap::hostlock`) and dpkg's
//! (`dpkglock`).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

use crate::facts::process_name;
use crate::hostroot::HostRoot;

/// The pid of a process that holds a POSIX lock on `file` that conflicts with `l_type`
/// (`F_WRLCK` conflicts with any), `Some(0)` when the kernel cannot say which (an open file
/// description lock, another pid namespace); `None` when nothing conflicts.
pub fn holder_of(file: &File, l_type: i32) -> io::Result<Option<i32>> {
    use nix::fcntl::{fcntl, FcntlArg};
    // SAFETY: a plain C struct; all-zero is a valid value, the fields that matter are set.
    let mut fl: nix::libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = l_type as _;
    fl.l_whence = nix::libc::SEEK_SET as _;
    fcntl(file.as_fd(), FcntlArg::F_GETLK(&mut fl)).map_err(io::Error::from)?;
    Ok((fl.l_type != nix::libc::F_UNLCK as nix::libc::c_short).then_some(fl.l_pid))
}

/// `pid 1120 (bootstrap)`, with the name from `/proc` where it can be read.
pub fn describe_pid(root: &HostRoot, pid: i32) -> String {
    match (
        pid,
        u32::try_from(pid).ok().and_then(|p| process_name(root, p)),
    ) {
        (p, Some(name)) if p > 0 => format!("pid {p} ({name})"),
        (p, None) if p > 0 => format!("pid {p}"),
        _ => "another process".to_string(),
    }
}
