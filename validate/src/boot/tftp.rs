//! The TFTP root of a UEFI boot: the host's `snponly.efi` (iPXE for a firmware's own PXE
//! client), because Debian 13's `efi-*.rom` carry only a network driver, no iPXE
//! (docs/uefi-debian13.md). OVMF's PXE fetches it over TFTP; iPXE then asks DHCP again
//! (option 175) and gets the boot script's URL, as Ironic chains UEFI nodes.

use std::path::{Path, PathBuf};

/// Where distributions put iPXE's `snponly.efi`: Debian and Ubuntu `ipxe`; EL8, EL9 and
/// Fedora `ipxe-bootimgs-x86` (which provides `ipxe-bootimgs`; from their spec files).
pub const SNPONLY: &[&str] = &[
    "/usr/lib/ipxe/snponly.efi",
    "/usr/share/ipxe/ipxe-snponly-x86_64.efi",
];

/// The first `snponly.efi` the host has.
pub fn snponly() -> Option<&'static Path> {
    SNPONLY.iter().map(Path::new).find(|p| p.is_file())
}

/// libvirt's own dnsmasq files, which dnsmasq may read (a directory under /tmp or /root it
/// may not): the TFTP roots go beside them, and the sweep looks for stale ones there.
pub use virthost_model::desired::LIBVIRT_DNSMASQ_DIR as DNSMASQ_DIR;

/// Where the network `net`'s TFTP root goes: `DNSMASQ_DIR/<net>.tftp`.
pub fn root_of(net: &str) -> PathBuf {
    Path::new(DNSMASQ_DIR).join(format!("{net}.tftp"))
}

/// Makes `root_of(net)` with a copy of `src` as `snponly.efi`, world-readable.
pub fn prepare(net: &str, src: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let root = root_of(net);
    std::fs::create_dir_all(&root)?;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))?;
    let dst = root.join("snponly.efi");
    std::fs::copy(src, &dst)?;
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o644))?;
    Ok(root)
}

/// Removes what [`prepare`] made.
pub fn remove(net: &str) {
    let _ = std::fs::remove_dir_all(root_of(net));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_beside_libvirts_dnsmasq_files() {
        assert_eq!(
            root_of("virthost-validate-1-ab-uefi-0"),
            PathBuf::from("/var/lib/libvirt/dnsmasq/virthost-validate-1-ab-uefi-0.tftp")
        );
    }
}
