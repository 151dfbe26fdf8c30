//! The steps that converge a host, one module each. `crate::plan` orders them.
//!
//! The user, polkit, sudo, keys and generic managed-file steps live in their own modules
//! (`user`, `polkit`, `sudo`, `keys`, `files`), written on the `files` branch.

pub mod ipxe;
pub mod libvirt;
pub mod packages;
pub mod virt;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use anyhow::Context;

use crate::hostroot::HostRoot;

/// Whether the file at `host_path` holds exactly `content`.
pub(crate) fn file_is(root: &HostRoot, host_path: &str, content: &str) -> anyhow::Result<bool> {
    Ok(root.read_optional(host_path)?.as_deref() == Some(content))
}

/// Writes a file whole or not at all: temp file in the same directory, fsync, rename, fsync
/// of the directory. Mode `mode`, owned by whoever runs bootstrap (root).
// TODO(files): use `crate::atomic` from the files branch once it is merged.
pub(crate) fn write_atomic(
    root: &HostRoot,
    host_path: &str,
    content: &str,
    mode: u32,
) -> anyhow::Result<()> {
    let path = root.path(host_path);
    let dir = path
        .parent()
        .with_context(|| format!("{host_path} has no directory"))?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.virthost-tmp"));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.write_all(content.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming into {}", path.display()))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}
