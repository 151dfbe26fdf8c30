//! The words of the boot proof's results: a PASS detail, a FAIL's detail and hint for each
//! stage a boot can stop at, and the FAILs of a domain that did not start.

use std::time::{Duration, Instant};

use super::poll::Observed;
use super::verdict::{Ended, Stage, Verdict};
use super::{serial, stall};
use crate::check::CheckResult;
use crate::options::{BootMode, DomainType};

/// `BIOS` / `UEFI`, for messages.
pub(super) fn mode_word(mode: BootMode) -> &'static str {
    match mode {
        BootMode::Bios => "BIOS",
        BootMode::Uefi => "UEFI",
    }
}

/// What a result says about the boot besides what the wait saw.
pub(super) struct About<'a> {
    pub id: &'a str,
    pub dtype: DomainType,
    pub mode: BootMode,
    pub nic: &'a str,
    /// The MAC the domain was given.
    pub mac: &'a str,
    /// ` (<OVMF file>)` for UEFI, else empty.
    pub firmware: &'a str,
    /// Notes on the network (`; libvirt X < 5.6 ...`), else empty.
    pub note: &'a str,
    pub dom_name: &'a str,
    /// `GATEWAY:PORT` of the HTTP server.
    pub server: &'a str,
    pub timeout: Duration,
    /// Just before the domain was created.
    pub t0: Instant,
}

fn fmt(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "?".into())
}

/// The check's result for `verdict`.
pub(super) fn result(a: &About, o: &Observed, verdict: Verdict) -> CheckResult {
    let (dtype, nic, firmware, note) = (a.dtype.as_str(), a.nic, a.firmware, a.note);
    let timings = &o.timings;
    let (stage, ended) = match verdict {
        Verdict::Booted { mac, version } => {
            let version = if version.is_empty() {
                o.prog.version.clone().unwrap_or_else(|| "?".into())
            } else {
                version
            };
            let mac_note = if mac.eq_ignore_ascii_case(a.mac) || mac.is_empty() {
                String::new()
            } else {
                format!(" (callback from MAC {mac}, expected {})", a.mac)
            };
            return CheckResult::pass(
                a.id,
                format!(
                    "iPXE {version} booted a {dtype} {}{firmware} domain, NIC model {nic}: DHCP after {}, callback after {}{mac_note}{note}",
                    mode_word(a.mode),
                    fmt(timings.dhcp_s),
                    fmt(timings.callback_s),
                ),
            );
        }
        Verdict::Failed { stage, ended } => (stage, ended),
    };
    let tail = serial::tail(&o.text, 5);
    let console = if tail.is_empty() {
        "serial console empty".to_string()
    } else {
        format!("serial: {tail}")
    };
    let elapsed = a.t0.elapsed().as_secs_f64();
    let waited = match ended {
        Ended::Interrupted => format!("after {elapsed:.0} s"),
        Ended::GaveUp => format!("gave up after {elapsed:.0} s"),
        Ended::Hung(h) => format!(
            "no console output for {:.0} s while it used {:.0}% of a CPU, stopped after {elapsed:.0} s",
            h.silent_s,
            h.busy * 100.0,
        ),
        Ended::DomainStopped => format!("the domain stopped after {elapsed:.0} s"),
        Ended::Timeout => format!(
            "no callback within the {} s --boot-timeout",
            a.timeout.as_secs()
        ),
    };
    let (stage, hint) = stage_and_hint(a, o, stage);
    let hint = if ended == Ended::Timeout {
        format!(
            "{hint}. If the console was still moving, the host is only slow (TCG, a \
             loaded or nested host): raise --boot-timeout"
        )
    } else {
        hint
    };
    CheckResult::fail(
        a.id,
        format!(
            "{stage} ({waited}; {dtype} {}{firmware} domain, NIC model {nic}, DHCP {}, script {}){note}; {console}",
            mode_word(a.mode),
            fmt(timings.dhcp_s),
            fmt(timings.script_s),
        ),
        hint,
    )
}

/// The first words of a FAIL's detail, and its hint.
fn stage_and_hint(a: &About, o: &Observed, stage: Stage) -> (String, String) {
    let (dom_name, firmware) = (a.dom_name, a.firmware);
    match stage {
        Stage::Interrupted(sig) => (
            format!("interrupted by {sig}"),
            "run validate again".to_string(),
        ),
        Stage::Hung => (
            "the test domain hung".to_string(),
            stall::hint(
                a.dtype,
                virthost_model::facts::module_flag(
                    &virthost_model::hostroot::HostRoot::system(),
                    "kvm_amd",
                    "nrips",
                ),
            ),
        ),
        Stage::NoFirmwareOutput => (
            "no firmware output".to_string(),
            match a.mode {
                BootMode::Bios => format!(
                    "the VM printed nothing on its serial console: check QEMU and SeaBIOS \
                     (/var/log/libvirt/qemu/{dom_name}.log)"
                ),
                BootMode::Uefi => format!(
                    "OVMF printed nothing on the serial console{firmware}: see \
                     firmware.efi and /var/log/libvirt/qemu/{dom_name}.log"
                ),
            },
        ),
        Stage::NoIpxe => (
            "iPXE never started".to_string(),
            match a.mode {
                BootMode::Uefi => {
                    uefi_no_ipxe_hint(&o.text, a.nic, super::tftp::snponly().is_some())
                }
                BootMode::Bios => rom_hint(a.nic),
            },
        ),
        Stage::NoDhcp => no_dhcp(o.nic),
        Stage::NoScript => (
            "no script fetched".to_string(),
            format!(
                "DHCP worked but iPXE fetched no boot script: the network must offer the \
                 boot file (<bootp file=...>), and http://{}/ must be reachable from the \
                 bridge (a firewall on the host must let guests reach it)",
                a.server
            ),
        ),
        Stage::NoCallback => (
            "script fetched, no callback".to_string(),
            format!(
                "iPXE fetched boot.ipxe but never called back{}: check the iPXE build \
                 (HTTP and script support)",
                if o.bad_tokens > 0 {
                    " with the right token"
                } else {
                    ""
                }
            ),
        ),
    }
}

/// The FAIL of a test domain libvirt would not start (`msg`: libvirt's error).
pub(super) fn did_not_start(id: &str, nic: &str, dom_name: &str, msg: &str) -> CheckResult {
    let msg = qemu_error(msg);
    let hint = if msg.contains("romfile") || msg.contains("rom file") || msg.contains(".rom") {
        rom_hint(nic)
    } else if msg.contains("kvm") || msg.contains("KVM") {
        "KVM does not work here: see libvirt.domain_type and kvm.* checks".into()
    } else {
        format!("see /var/log/libvirt/qemu/{dom_name}.log and libvirtd's log")
    };
    CheckResult::fail(
        id,
        format!("the {nic} test domain did not start: {msg}"),
        hint,
    )
}

/// The FAIL of every UEFI boot when libvirt offers no UEFI firmware (`why`).
pub(super) fn no_uefi(id: &str, why: &str) -> CheckResult {
    CheckResult::fail(
        id,
        format!("no UEFI test domain can start: {why}"),
        "see firmware.efi: run bootstrap (its `packages` step installs the \
         family's OVMF package), or leave uefi out of --boot-mode",
    )
}

/// libvirt's message for a QEMU that failed to start, without the echoed `-device {json}`:
/// `qemu unexpectedly closed the monitor: ... -device {...}: failed to find romfile "x"`
/// becomes `QEMU: failed to find romfile "x"`.
fn qemu_error(msg: &str) -> String {
    match msg.rfind("}: ") {
        Some(i) if msg.contains("qemu") => format!("QEMU: {}", msg[i + 3..].trim()),
        _ => msg.trim().to_string(),
    }
}

/// The detail's first words and the hint of a boot that got no DHCP answer, by what the
/// NIC's counters say: a NIC that sent nothing is not the network's fault.
fn no_dhcp(nic: Option<super::poll::NicCounters>) -> (String, String) {
    let network = "iPXE got no DHCP lease on the test network: check that dnsmasq runs for \
                   libvirt networks and that no firewall drops DHCP on the bridge";
    match nic {
        Some(c) if c.sent == 0 => (
            "no DHCP answer: the NIC sent no packet".to_string(),
            "the guest's NIC transmitted nothing (iPXE's TX:0), so no request reached the \
             network: its emulation stalled, not dnsmasq. Seen only in nested TCG domains \
             (docs/e2e.md): run validate again"
                .to_string(),
        ),
        Some(c) => (
            format!(
                "no DHCP answer (the NIC sent {} packet(s), received {})",
                c.sent, c.received
            ),
            network.to_string(),
        ),
        None => ("no DHCP answer".to_string(), network.to_string()),
    }
}

/// Which package brings iPXE's `snponly.efi`, the image OVMF's own PXE client chains when
/// the NIC ROM carries only a network driver (Debian 13's `efi-*.rom`).
/// The RPM names and path are those of the ipxe spec files (fixtures/packages/README.md):
/// `ipxe-bootimgs-x86` provides `ipxe-bootimgs`, the older EL8 name; EL7 ships no snponly
/// image (its NIC ROMs carry a whole iPXE for EFI, so it needs none).
pub(super) const SNPONLY_PACKAGE: &str =
    "ipxe on Debian/Ubuntu (/usr/lib/ipxe/snponly.efi), ipxe-bootimgs on EL8, EL9 and \
     Fedora (/usr/share/ipxe/ipxe-snponly-x86_64.efi)";

/// The hint of a UEFI boot that never reached iPXE. A console that ends in the EFI shell
/// (`Shell>`, `map: No mapping found`) without `Start PXE` had no network boot option at
/// all: edk2 >= 2024.05 starts its network stack only with an RNG (docs/uefi-debian13.md).
fn uefi_no_ipxe_hint(console: &str, nic: &str, has_snponly: bool) -> String {
    let shell = console.contains("Shell>") || console.contains("map: No mapping found");
    let pxe = console.contains("Start PXE");
    if shell && !pxe {
        return "OVMF ended in its EFI shell without trying PXE: OVMF >= 2024.05 (edk2's fix \
                of CVE-2023-45237) offers no network boot without a random number generator. \
                The test domain has one (<rng model='virtio'>); node domains need \
                <rng model='virtio'> or a CPU model with RDRAND (<cpu mode='host-passthrough'/>)"
            .to_string();
    }
    if pxe && !has_snponly {
        return format!(
            "OVMF's own PXE client ran but no iPXE followed: the NIC ROM carries only a \
             network driver (Debian 13's efi-*.rom), and this host has no snponly.efi for \
             the proof to chain: install {SNPONLY_PACKAGE}"
        );
    }
    rom_hint(nic)
}

fn rom_hint(nic: &str) -> String {
    let roms = virthost_model::desired::NIC_ROMS
        .iter()
        .find(|(m, _)| *m == nic)
        .map(|(_, files)| files.join(", "))
        .unwrap_or_else(|| "its iPXE ROM".into());
    format!(
        "the {nic} NIC's iPXE option ROM is missing or broken ({roms}): install the iPXE ROM \
         package (ipxe-qemu on Debian/Ubuntu, ipxe-roms-qemu on RHEL/CentOS), at least a 2016 build"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_errors_are_shortened() {
        let m = "internal error: qemu unexpectedly closed the monitor: 2026-11-25T08:55:52Z \
            qemu-system-x86_64: -device {\"driver\":\"e1000\",\"romfile\":\"/x.rom\"}: \
            failed to find romfile \"/x.rom\"";
        assert_eq!(qemu_error(m), "QEMU: failed to find romfile \"/x.rom\"");
        assert_eq!(qemu_error("no such network"), "no such network");
    }

    #[test]
    fn no_dhcp_says_whether_the_nic_sent_anything() {
        use super::super::poll::NicCounters;
        let (d, h) = no_dhcp(Some(NicCounters {
            sent: 0,
            received: 0,
        }));
        assert_eq!(d, "no DHCP answer: the NIC sent no packet");
        assert!(h.contains("TX:0") && !h.contains("firewall"), "{h}");
        let (d, h) = no_dhcp(Some(NicCounters {
            sent: 9,
            received: 0,
        }));
        assert_eq!(d, "no DHCP answer (the NIC sent 9 packet(s), received 0)");
        assert!(h.contains("dnsmasq") && h.contains("firewall"), "{h}");
        let (d, h) = no_dhcp(None);
        assert_eq!(d, "no DHCP answer");
        assert!(h.contains("dnsmasq"), "{h}");
    }

    #[test]
    fn uefi_shell_without_pxe_names_the_rng() {
        // The tail of the Debian 13 console before the fix (docs/uefi-debian13.md).
        let shell = "BdsDxe: loading Boot0001 \"EFI Internal Shell\"\nUEFI v2.70 (Debian \
            distribution of EDK II, 0x00010000)\nMapping table\nmap: No mapping found.\nShell> ";
        let h = uefi_no_ipxe_hint(shell, "virtio", true);
        assert!(
            h.contains("2024.05") && h.contains("<rng model='virtio'>"),
            "{h}"
        );
        assert!(h.contains("RDRAND"), "{h}");
        // Firmware PXE ran, no snponly.efi to chain: the package that brings it.
        let pxe = ">>Start PXE over IPv4.\nPXE-E16: No valid offer received.\nShell> ";
        let h = uefi_no_ipxe_hint(pxe, "virtio", false);
        assert!(
            h.contains("snponly.efi")
                && h.contains("ipxe on Debian/Ubuntu")
                && h.contains("ipxe-bootimgs on EL8"),
            "{h}"
        );
        // Otherwise the ROM.
        assert!(uefi_no_ipxe_hint(pxe, "virtio", true).contains("option ROM"));
        assert!(uefi_no_ipxe_hint("", "e1000", false).contains("option ROM"));
    }
}
