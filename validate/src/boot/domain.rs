//! The test domain: its XML (BIOS or UEFI, diskless, booting from its NIC), whether libvirt
//! can start a UEFI one at all, and the files libvirt made for it.

use std::path::Path;

use virt::connect::Connect;

use crate::checks::firmware::DomcapsError;
use crate::connection::LibvirtError;

use super::xmlscan::escape;
use super::Rom;
use crate::options::{BootMode, DomainType};

pub(super) struct DomainSpec<'a> {
    pub name: &'a str,
    pub dtype: DomainType,
    pub nic: &'a str,
    pub mac: &'a str,
    pub network: &'a str,
    pub serial: &'a Path,
    pub rom: &'a Rom,
    pub mode: BootMode,
}

/// The test domain's name: `<run>-<nic>` (BIOS, the name since the first release) or
/// `<run>-uefi-<nic>`.
pub(super) fn name(run: &str, mode: BootMode, nic: &str) -> String {
    match mode {
        BootMode::Bios => format!("{run}-{nic}"),
        BootMode::Uefi => format!("{run}-uefi-{nic}"),
    }
}

/// Why no UEFI test domain can start.
#[derive(Debug, thiserror::Error)]
pub(super) enum NoUefi {
    #[error("libvirt would not describe q35 domains: {0}")]
    Undescribed(LibvirtError),
    #[error(transparent)]
    Capabilities(#[from] DomcapsError),
    #[error("libvirt offers no efi firmware for q35 (no OVMF installed)")]
    NoFirmware,
}

/// Whether libvirt offers UEFI firmware for a `q35` domain of `dtype`: the error says why
/// not (checked before a UEFI test domain is created).
pub(super) fn uefi_offered(conn: &Connect, dtype: DomainType) -> Result<(), NoUefi> {
    let caps = conn
        .domain_capabilities(
            None,
            Some(std::env::consts::ARCH),
            Some("q35"),
            Some(dtype.as_str()),
            0,
        )
        .map_err(|e| NoUefi::Undescribed(e.into()))?;
    match crate::checks::firmware::efi_offered(&caps)? {
        (true, _) => Ok(()),
        (false, _) => Err(NoUefi::NoFirmware),
    }
}

/// The `<loader>` and `<nvram>` paths of a running UEFI domain's XML.
pub(super) fn uefi_files(xml: &str) -> (Option<String>, Option<String>) {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return (None, None);
    };
    let text = |tag: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name(tag))
            .and_then(|n| n.text())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    };
    (text("loader"), text("nvram"))
}

/// The host-side device (`<interface><target dev='vnet3'/>`) of a running domain's first NIC.
pub(super) fn nic_target(xml: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    doc.descendants()
        .filter(|n| n.has_tag_name("interface"))
        .flat_map(|i| i.children())
        .find(|n| n.has_tag_name("target"))
        .and_then(|t| t.attribute("dev"))
        .map(str::to_string)
}

/// Creates `path` empty, readable by us whoever ends up writing it.
pub(super) fn create_readable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map(drop)
}

/// A diskless domain that boots from its NIC, with SeaBIOS and iPXE on the serial console.
/// `<acpi/>` is required: without it libvirt 9 passes `-no-acpi`, which QEMU 10 rejects.
pub(super) fn domain_xml(d: &DomainSpec) -> String {
    // UEFI: libvirt picks OVMF through QEMU's firmware descriptors; Secure Boot off, as an
    // unsigned iPXE ROM must load (and as Ironic's default UEFI nodes boot).
    let os = match d.mode {
        BootMode::Bios => {
            "<os>\n    <type arch='x86_64'>hvm</type>\n    <boot dev='network'/>\n    \
             <bios useserial='yes'/>\n  </os>"
                .to_string()
        }
        BootMode::Uefi => {
            "<os firmware='efi'>\n    <type arch='x86_64' machine='q35'>hvm</type>\n    \
             <firmware>\n      <feature enabled='no' name='secure-boot'/>\n    </firmware>\n    \
             <boot dev='network'/>\n  </os>"
                .to_string()
        }
    };
    // UEFI: edk2 >= 2024.05 (Debian 13's OVMF 2025.02) starts its network stack only with
    // an EFI_RNG_PROTOCOL: RDRAND (absent from the default qemu64 CPU) or a virtio RNG.
    // Without one OVMF offers no PXE boot option and drops to its shell.
    let rng = match d.mode {
        BootMode::Uefi => {
            "\n    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n    </rng>"
        }
        BootMode::Bios => "",
    };
    let rom = match d.rom {
        Rom::Default => String::new(),
        Rom::File(r) => format!("\n      <rom file='{}'/>", escape(&r.display().to_string())),
        Rom::Disabled => "\n      <rom bar='off'/>".to_string(),
    };
    format!(
        "<domain type='{ty}'>\n  <name>{name}</name>\n  <memory unit='MiB'>{mem}</memory>\n  \
         <vcpu>1</vcpu>\n  {os}\n  <features><acpi/></features>\n  \
         <on_reboot>destroy</on_reboot>\n  <devices>\n    \
         <interface type='network'>\n      <source network='{net}'/>\n      <mac address='{mac}'/>\n      \
         <model type='{nic}'/>{rom}\n    </interface>\n    \
         <serial type='file'>\n      <source path='{serial}'/>\n      <target port='0'/>\n    </serial>\n    \
         <memballoon model='none'/>{rng}\n  </devices>\n</domain>\n",
        ty = d.dtype.as_str(),
        name = escape(d.name),
        mem = MEMORY_MIB,
        net = escape(d.network),
        mac = d.mac,
        nic = escape(d.nic),
        serial = escape(&d.serial.display().to_string()),
    )
}

/// The test domain's memory.
pub const MEMORY_MIB: u64 = 256;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn domain_xml_boots_from_network_with_acpi() {
        let x = domain_xml(&DomainSpec {
            name: "virthost-validate-1-ab-virtio",
            dtype: DomainType::Qemu,
            nic: "virtio",
            mac: "52:54:00:01:02:03",
            network: "virthost-validate-1-ab-0",
            serial: Path::new("/tmp/x.serial"),
            rom: &Rom::File(PathBuf::from("/nonexistent.rom")),
            mode: BootMode::Bios,
        });
        assert!(x.starts_with("<domain type='qemu'>"));
        for s in [
            "<acpi/>",
            "<boot dev='network'/>",
            "<bios useserial='yes'/>",
            "<model type='virtio'/>",
            "<rom file='/nonexistent.rom'/>",
            "<source path='/tmp/x.serial'/>",
            "<memory unit='MiB'>256</memory>",
        ] {
            assert!(x.contains(s), "{s}");
        }
        assert!(!x.contains("<disk"));
        let u = domain_xml(&DomainSpec {
            name: "virthost-validate-1-ab-uefi-e1000",
            dtype: DomainType::Qemu,
            nic: "e1000",
            mac: "52:54:00:01:02:03",
            network: "n",
            serial: Path::new("/tmp/u.serial"),
            rom: &Rom::Default,
            mode: BootMode::Uefi,
        });
        for s in [
            "<os firmware='efi'>",
            "machine='q35'",
            "<feature enabled='no' name='secure-boot'/>",
            "<boot dev='network'/>",
            "<acpi/>",
        ] {
            assert!(u.contains(s), "{s}: {u}");
        }
        assert!(!u.contains("<bios"), "{u}");
        assert!(
            u.contains("<rng model='virtio'>") && !x.contains("<rng"),
            "{u}"
        );
        assert!(roxmltree::Document::parse(&u).is_ok() && roxmltree::Document::parse(&x).is_ok());
    }

    #[test]
    fn nic_target_is_the_interfaces_host_device() {
        let live = "<domain><devices><disk><target dev='vda'/></disk>\
            <interface type='network'><mac address='52:54:00:01:02:03'/>\
            <target dev='vnet7'/></interface></devices></domain>";
        assert_eq!(nic_target(live).as_deref(), Some("vnet7"));
        assert_eq!(nic_target("<domain><devices/></domain>"), None);
        assert_eq!(nic_target("not xml"), None);
        let (loader, nvram) = uefi_files(
            "<domain><os><loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>\
             <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/libvirt/qemu/nvram/x_VARS.fd</nvram></os></domain>",
        );
        assert_eq!(loader.as_deref(), Some("/usr/share/OVMF/OVMF_CODE_4M.fd"));
        assert_eq!(
            nvram.as_deref(),
            Some("/var/lib/libvirt/qemu/nvram/x_VARS.fd")
        );
        assert_eq!(name("r", BootMode::Bios, "virtio"), "r-virtio");
        assert_eq!(name("r", BootMode::Uefi, "e1000"), "r-uefi-e1000");
    }
}
