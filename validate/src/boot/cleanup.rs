//! Cleanup: what dead processes left ([`sweep`]), and the SIGINT/SIGTERM handling that
//! lets a live run tear down what it created before it dies of the signal.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};

use virt::connect::Connect;

use super::names::owner_dead;

/// Where libvirt keeps the NVRAM (UEFI variable store) of each domain: `<name>_VARS.fd`.
pub const NVRAM_DIR: &str = "/var/lib/libvirt/qemu/nvram";

/// Where the serial console files go (`$TMPDIR`).
pub(super) fn serial_dir() -> PathBuf {
    std::env::temp_dir()
}

/// Removes domains, networks, NVRAM files, serial files and UEFI TFTP roots
/// (`<network>.tftp` in [`super::tftp::DNSMASQ_DIR`]) with [`super::PREFIX`] whose creating
/// process is gone. Returns how many things it removed.
pub fn sweep(conn: &Connect) -> usize {
    let mut n = 0;
    if let Ok(doms) = conn.list_all_domains(0) {
        for d in doms {
            let Ok(name) = d.name() else { continue };
            if owner_dead(&name) {
                let _ = d.destroy();
                // A persistent UEFI domain (the power proof's) undefines only with its NVRAM.
                if d.undefine_flags(virt::sys::VIR_DOMAIN_UNDEFINE_NVRAM)
                    .is_err()
                {
                    let _ = d.undefine();
                }
                n += 1;
            }
        }
    }
    if let Ok(nets) = conn.list_all_networks(0) {
        for net in nets {
            let Ok(name) = net.name() else { continue };
            if owner_dead(&name) {
                let _ = net.destroy();
                let _ = net.undefine();
                n += 1;
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(NVRAM_DIR) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with("_VARS.fd")
                && owner_dead(&name)
                && std::fs::remove_file(e.path()).is_ok()
            {
                n += 1;
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(super::tftp::DNSMASQ_DIR) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tftp")
                && owner_dead(&name)
                && e.file_type().is_ok_and(|t| t.is_dir() && !t.is_symlink())
                && std::fs::remove_dir_all(e.path()).is_ok()
            {
                n += 1;
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(serial_dir()) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".serial")
                && owner_dead(&name)
                && std::fs::remove_file(e.path()).is_ok()
            {
                n += 1;
            }
        }
    }
    n
}

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: i32) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// The SIGINT or SIGTERM that arrived during the proof.
pub(crate) fn interrupted() -> Option<nix::sys::signal::Signal> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => nix::sys::signal::Signal::try_from(s).ok(),
    }
}

/// SIGINT/SIGTERM handlers for the duration of the proof: they only record the signal; the
/// boot loop sees it, tears down, and [`super::prove`] re-raises it with the old handlers
/// back. A signal ignored when validate started (as a script's background job, whose
/// SIGINT a non-interactive shell ignores, or under `trap '' INT`) stays ignored, as it
/// would without the guard: such a signal neither cuts the proof short nor ends the run.
pub(crate) struct SignalGuard {
    old: Vec<(nix::sys::signal::Signal, nix::sys::signal::SigAction)>,
}

impl SignalGuard {
    pub(crate) fn install() -> SignalGuard {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
        SIGNAL.store(0, Ordering::SeqCst);
        let act = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::empty(),
            SigSet::empty(),
        );
        let mut old = Vec::new();
        for s in [Signal::SIGINT, Signal::SIGTERM] {
            // SAFETY: the handler only stores to an atomic.
            match unsafe { sigaction(s, &act) } {
                Ok(prev) if matches!(prev.handler(), SigHandler::SigIgn) => {
                    // SAFETY: puts back the disposition that was there (ignore).
                    let _ = unsafe { sigaction(s, &prev) };
                }
                Ok(prev) => old.push((s, prev)),
                Err(_) => {}
            }
        }
        SignalGuard { old }
    }

    /// Restores the old handlers and, when a signal arrived, raises it again: the process
    /// dies of it as it would have without the guard.
    pub(crate) fn finish(self) {
        let sig = interrupted();
        drop(self);
        if let Some(sig) = sig {
            let _ = nix::sys::signal::raise(sig);
        }
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for (s, prev) in self.old.drain(..) {
            // SAFETY: restores the handler that was there before.
            let _ = unsafe { nix::sys::signal::sigaction(s, &prev) };
        }
    }
}
