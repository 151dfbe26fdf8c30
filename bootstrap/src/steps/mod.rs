//! The steps `bootstrap` runs, one module each (see [`crate::step::Step`]); `crate::plan`
//! orders them.

pub mod exec;
pub mod files;
pub mod ipxe;
pub mod keys;
pub mod libvirt;
pub mod packages;
pub mod polkit;
pub mod sudo;
pub mod user;
pub mod virt;

#[cfg(test)]
mod testroot;

use crate::atomic::{self, Owner, Wanted};
use crate::hostroot::HostRoot;

/// A file bootstrap owns outright: `content`, `root:root 0644`.
fn owned(content: &str) -> Wanted<'_> {
    Wanted {
        content: content.as_bytes(),
        mode: 0o644,
        owner: Owner::ROOT,
    }
}

/// Whether the file at `host_path` is exactly `content`, `root:root 0644`.
pub(crate) fn file_is(root: &HostRoot, host_path: &str, content: &str) -> anyhow::Result<bool> {
    Ok(atomic::diff(&root.path(host_path), &owned(content))?.is_empty())
}

/// Makes the file at `host_path` exactly `content`, `root:root 0644`, atomically
/// ([`crate::atomic`]: temp file, fsync, rename).
pub(crate) fn write_owned(root: &HostRoot, host_path: &str, content: &str) -> anyhow::Result<()> {
    let path = root.path(host_path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    atomic::ensure(&path, &owned(content)).map(drop)
}
