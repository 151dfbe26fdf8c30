//! The QEMU VM that plays the hypervisor: accelerator choice, a free SSH port, the process
//! guard that kills QEMU on every exit path, and waiting for SSH.
//!
//! Exit paths covered: errors and panics (the `Vm` guard's Drop kills QEMU), Ctrl-C / SIGTERM /
//! SIGHUP (a signal handler kills the recorded QEMU pid, then exits 130), and xtask being
//! SIGKILLed (QEMU gets PR_SET_PDEATHSIG=SIGKILL, unless --keep). QEMU runs in its own process
//! group, so a terminal's Ctrl-C reaches only xtask, which then reports and cleans up.

use crate::cmd::{display, CommandExt};
use anyhow::{bail, Context, Result};
use nix::sys::signal::{self, SigHandler, Signal};
use nix::unistd::Pid;
use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The running QEMU's pid, for the signal handler; 0 when none.
static QEMU_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(_: nix::libc::c_int) {
    let pid = QEMU_PID.load(Ordering::SeqCst);
    // Only async-signal-safe calls here: kill(2), write(2), _exit(2).
    unsafe {
        if pid > 0 {
            nix::libc::kill(pid, nix::libc::SIGKILL);
        }
        let msg = b"\ne2e: interrupted: QEMU killed\n";
        nix::libc::write(2, msg.as_ptr().cast(), msg.len());
        nix::libc::_exit(130);
    }
}

/// Installs the handler for SIGINT, SIGTERM and SIGHUP.
pub fn install_signal_handlers() -> Result<()> {
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only calls async-signal-safe functions.
        unsafe { signal::signal(sig, SigHandler::Handler(on_signal)) }
            .with_context(|| format!("installing a {sig} handler"))?;
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

/// KVM only when it really works: /dev/kvm opens read-write *and* the CPU advertises VT-x or
/// AMD-V. On the CI machines /dev/kvm is a paravirtual PVM device without vmx/svm, and a
/// normal guest never boots under it (ENVIRONMENT.md).
pub fn detect_accel() -> (Accel, String) {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hw = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    let dev = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm");
    match (dev, hw) {
        (Ok(_), true) => (Accel::Kvm, "KVM (/dev/kvm usable, CPU has vmx/svm)".into()),
        (Ok(_), false) => (
            Accel::Tcg,
            "TCG: /dev/kvm exists but the CPU has no vmx/svm (not real hardware virtualization)"
                .into(),
        ),
        (Err(e), _) => (Accel::Tcg, format!("TCG: /dev/kvm not usable ({e})")),
    }
}

/// A free TCP port on 127.0.0.1 (bind to port 0, read it back, release it).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// How to boot.
pub struct Boot {
    /// The per-run overlay.
    pub disk: PathBuf,
    /// Direct kernel boot: kernel, initrd, command line. None boots the disk (--image).
    pub kernel: Option<(PathBuf, PathBuf, String)>,
    pub accel: Accel,
    pub run_dir: PathBuf,
    pub port: u16,
    /// Leave QEMU alive when xtask exits (--keep).
    pub keep: bool,
    /// A NoCloud seed (`cidata` ISO) attached read-only as a second disk (--image).
    pub seed: Option<PathBuf>,
    pub net: GuestNet,
}

/// The guest's network (`--guest-net`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub enum GuestNet {
    /// QEMU user networking with `restrict=on`: the guest reaches nothing but its forwarded SSH
    /// port (the packages come from the image's staged repository)
    #[default]
    Restricted,
    /// QEMU user networking without `restrict=on`: the guest reaches what this machine reaches,
    /// for user images whose package repositories are online
    User,
}

impl GuestNet {
    /// The `-netdev` value forwarding SSH from 127.0.0.1:`port`.
    pub fn netdev(self, port: u16) -> String {
        let restrict = match self {
            GuestNet::Restricted => "restrict=on,",
            GuestNet::User => "",
        };
        format!("user,id=n0,{restrict}hostfwd=tcp:127.0.0.1:{port}-:22")
    }
}

/// A running QEMU; dropping it kills the process unless it was released with `keep`.
pub struct Vm {
    child: Option<Child>,
    pub serial: PathBuf,
    pub qemu_log: PathBuf,
}

/// Creates a qcow2 overlay on `base` (absolute path, format probed) whose virtual size is at
/// least `min_bytes` (never smaller than the base: that would cut its file system off).
pub fn overlay(base: &Path, overlay: &Path, min_bytes: Option<u64>) -> Result<()> {
    let base = fs::canonicalize(base).with_context(|| format!("{}", base.display()))?;
    let info = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&base)
        .run_output()?;
    let info: serde_json::Value = serde_json::from_slice(&info.stdout)?;
    let fmt = info["format"].as_str().unwrap_or("qcow2").to_string();
    let base_size = info["virtual-size"].as_u64().unwrap_or(0);
    let size = min_bytes.filter(|&m| m > base_size).map(|m| m.to_string());
    Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", &fmt, "-b"])
        .arg(&base)
        .arg(overlay)
        .args(size)
        .run_output()?;
    Ok(())
}

pub fn start(b: &Boot) -> Result<Vm> {
    let serial = b.run_dir.join("serial.log");
    let qemu_log = b.run_dir.join("qemu.log");
    let mut c = Command::new("qemu-system-x86_64");
    c.args(["-name", "virthost-e2e", "-machine", "q35"]);
    match b.accel {
        Accel::Kvm => c.args(["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => c.args(["-accel", "tcg,thread=multi", "-cpu", "max"]),
    };
    // 10 GiB: validate's capacity check wants 8 GiB free for one spec-minimum VM; QEMU only
    // allocates what the guest touches.
    c.args([
        "-smp", "2", "-m", "10G", "-display", "none", "-vga", "none", "-monitor", "none",
    ])
    .arg("-serial")
    .arg(format!("file:{}", serial.display()))
    .arg("-drive")
    .arg(format!(
        "file={},if=virtio,format=qcow2,cache=unsafe,discard=unmap",
        b.disk.display()
    ))
    .arg("-netdev")
    .arg(b.net.netdev(b.port))
    .args([
        "-device",
        "virtio-net-pci,netdev=n0",
        "-device",
        "virtio-rng-pci",
    ])
    .arg("-pidfile")
    .arg(b.run_dir.join("qemu.pid"));
    if let Some(seed) = &b.seed {
        c.arg("-drive").arg(format!(
            "file={},if=virtio,format=raw,readonly=on",
            seed.display()
        ));
    }
    if let Some((kernel, initrd, append)) = &b.kernel {
        c.arg("-kernel")
            .arg(kernel)
            .arg("-initrd")
            .arg(initrd)
            .arg("-append")
            .arg(append);
    }
    fs::write(b.run_dir.join("qemu.cmdline"), display(&c) + "\n")?;
    let log = fs::File::create(&qemu_log)?;
    c.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    if !b.keep {
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            c.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
    }
    let child = c
        .spawn()
        .with_context(|| format!("starting `{}`", display(&c)))?;
    QEMU_PID.store(child.id() as i32, Ordering::SeqCst);
    Ok(Vm {
        child: Some(child),
        serial,
        qemu_log,
    })
}

impl Vm {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The last `n` lines of the serial console.
    pub fn serial_tail(&self, n: usize) -> String {
        tail(&self.serial, n)
    }

    /// Fails when QEMU has exited, with its log and the serial tail.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                QEMU_PID.store(0, Ordering::SeqCst);
                bail!(
                    "QEMU exited ({status})\n--- {}:\n{}\n--- serial tail:\n{}",
                    self.qemu_log.display(),
                    tail(&self.qemu_log, 20),
                    self.serial_tail(30)
                );
            }
        }
        Ok(())
    }

    /// Waits up to `timeout` for QEMU to exit; true if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        while let Some(child) = self.child.as_mut() {
            if child.try_wait()?.is_some() {
                self.child = None;
                QEMU_PID.store(0, Ordering::SeqCst);
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(true)
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = signal::kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
        QEMU_PID.store(0, Ordering::SeqCst);
    }

    /// Lets QEMU outlive xtask (--keep); returns its pid.
    pub fn release(mut self) -> Option<u32> {
        QEMU_PID.store(0, Ordering::SeqCst);
        self.child.take().map(|c| c.id())
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if self.child.is_some() {
            super::say("stopping QEMU");
            self.kill();
        }
    }
}

pub fn tail(p: &Path, n: usize) -> String {
    let bytes = fs::read(p).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Lines of the guest's serial console that say its kernel is in trouble (a panic, an oops,
/// a lockup), each with its line number. Nested KVM in the TCG-emulated guest once
/// panicked the guest kernel (docs/e2e.md); a run that dies that way should say so.
pub fn kernel_trouble(console: &str) -> Vec<String> {
    const SIGNS: [&str; 7] = [
        "Kernel panic",
        "BUG: ",
        "Oops: ",
        "general protection fault",
        "soft lockup",
        "hard LOCKUP",
        "blocked for more than",
    ];
    console
        .lines()
        .enumerate()
        .filter(|(_, l)| SIGNS.iter().any(|s| l.contains(s)))
        .map(|(i, l)| format!("serial.log:{}: {}", i + 1, l.trim()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{kernel_trouble, GuestNet};

    #[test]
    fn the_guest_network_is_restricted_unless_asked() {
        assert_eq!(
            GuestNet::default().netdev(2222),
            "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22"
        );
        assert!(!GuestNet::User.netdev(2222).contains("restrict"));
        assert!(GuestNet::User
            .netdev(2222)
            .contains("hostfwd=tcp:127.0.0.1:2222-:22"));
    }

    #[test]
    fn finds_the_panic_seen_here_and_nothing_in_a_healthy_boot() {
        // From target/e2e/20261125-113848/serial.log (2026-11-25).
        let panic = "[ 2559.674000] IPv6: ADDRCONF(NETDEV_CHANGE): virbr1: link becomes ready\n\
            [ 2566.768697] Kernel panic - not syncing: corrupted stack end detected inside scheduler\n\
            [ 2566.769068] CPU: 0 PID: 16922 Comm: CPU 0/KVM Not tainted 6.1.0-50-amd64 #1  Debian 6.1.176-1\n";
        assert_eq!(
            kernel_trouble(panic),
            ["serial.log:2: [ 2566.768697] Kernel panic - not syncing: corrupted stack end detected inside scheduler"]
        );
        let healthy = "[    1.362315] NMI watchdog: Perf NMI watchdog permanently disabled\n\
            [    2.412971] PCI: Using host bridge windows from ACPI; if necessary, use \"pci=nocrs\" and report a bug\n\
            [   11.490658] AMD-Vi: AMD IOMMUv2 functionality not available on this system - This is not a bug.\n";
        assert!(kernel_trouble(healthy).is_empty());
    }
}
