//! The iPXE boot proof: a transient isolated network, an HTTP server on its gateway, and
//! a transient domain per NIC model that network-boots with iPXE and calls back with a
//! random token. PASS when the callback arrives.
//!
//! Everything created carries the name prefix [`PREFIX`] and the creating process's pid;
//! leftovers of dead processes are swept at the start of each run. Domains are created with
//! `VIR_DOMAIN_START_AUTODESTROY` (libvirt destroys them when our connection closes), the
//! network and the serial files are removed on success, error and SIGINT/SIGTERM.

pub mod http;
pub mod net;
pub mod serial;
pub mod stall;
pub mod xmlscan;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use virt::connect::Connect;
use virt::domain::Domain;
use virt::network::Network;

use crate::check::CheckResult;
use crate::checks::libvirt::{domain_types, version_string};
use crate::options::Options;
use crate::options::{BootMode, DomainType};
use xmlscan::escape;

/// Name prefix of every domain, network and serial file the boot proof creates.
pub const PREFIX: &str = "virthost-validate-";

/// What to boot. [`run`] builds it from the options; tests set the negative cases.
#[derive(Debug, Clone)]
pub struct Proof {
    pub uri: String,
    /// NIC models, one domain each (`virtio`, `e1000`, ...).
    pub nics: Vec<String>,
    /// `false`: the network offers no boot file (negative test).
    pub offer_boot_file: bool,
    /// `--boot-mode`: each mode boots every NIC model.
    pub modes: Vec<BootMode>,
    /// The NIC's option ROM: QEMU's default unless a negative test says otherwise.
    pub rom: Rom,
    /// The network tweaks; [`net::Tuning::FAST`] unless a benchmark compares.
    pub tuning: net::Tuning,
    pub timeout: Duration,
    /// `--domain-type`: boot this type or FAIL; `None`: kvm where it really works, else qemu.
    pub domain_type: Option<DomainType>,
}

impl Proof {
    pub fn from_options(opts: &Options) -> Proof {
        let nics = if opts.nics.is_empty() {
            vec!["virtio".to_string()]
        } else {
            opts.nics.clone()
        };
        Proof {
            uri: if opts.connect.is_empty() {
                crate::checks::libvirt::SYSTEM_URI.to_string()
            } else {
                opts.connect.clone()
            },
            nics,
            offer_boot_file: true,
            modes: if opts.boot_modes.is_empty() {
                vec![BootMode::Bios]
            } else {
                opts.boot_modes.clone()
            },
            rom: Rom::Default,
            tuning: net::Tuning::FAST,
            timeout: opts.boot_timeout,
            domain_type: opts.domain_type,
        }
    }
}

/// The option ROM of the test domain's NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rom {
    /// What QEMU loads for the model (the iPXE ROM package's file).
    Default,
    /// `<rom file=.../>`: this file instead (a missing one: QEMU refuses to start).
    File(PathBuf),
    /// `<rom bar='off'/>`: none (the BIOS finds nothing to boot).
    Disabled,
}

/// Seconds measured for one boot, from just before the domain is created.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    pub dhcp_s: Option<f64>,
    pub script_s: Option<f64>,
    pub callback_s: Option<f64>,
    /// The longest time the console stayed unchanged after its first output (to the end of
    /// the wait): what [`stall`] compares with its silence (15 s kvm, 45 s qemu).
    pub longest_quiet_s: Option<f64>,
}

impl Proof {
    /// Every (mode, NIC model) the proof boots, in order.
    pub fn targets(&self) -> Vec<(BootMode, String)> {
        self.modes
            .iter()
            .flat_map(|m| self.nics.iter().map(move |n| (*m, n.clone())))
            .collect()
    }
}

/// One NIC model's result and timings, in one boot mode.
#[derive(Debug, Clone)]
pub struct NicBoot {
    pub mode: BootMode,
    pub nic: String,
    pub result: CheckResult,
    pub timings: Timings,
}

/// `boot.ipxe.<nic>` for every `--nic` model; nothing when `--skip-boot`.
pub fn run(opts: &Options, progress: &mut dyn FnMut(&str)) -> Vec<CheckResult> {
    if opts.skip_boot {
        return Vec::new();
    }
    prove(&Proof::from_options(opts), progress)
        .into_iter()
        .map(|b| b.result)
        .collect()
}

/// `boot.ipxe.<nic>` (BIOS, the id since the first release) or `boot.uefi.<nic>`.
pub fn check_id(mode: BootMode, nic: &str) -> String {
    match mode {
        BootMode::Bios => format!("boot.ipxe.{nic}"),
        BootMode::Uefi => format!("boot.uefi.{nic}"),
    }
}

/// Where libvirt keeps the NVRAM (UEFI variable store) of each domain: `<name>_VARS.fd`.
pub const NVRAM_DIR: &str = "/var/lib/libvirt/qemu/nvram";

/// Runs the boot proof.
pub fn prove(p: &Proof, progress: &mut dyn FnMut(&str)) -> Vec<NicBoot> {
    prove_with(p, progress, kernel_random)
}

/// [`prove`] with its source of random bytes (tests: one that fails).
fn prove_with(p: &Proof, progress: &mut dyn FnMut(&str), random: RandomSource) -> Vec<NicBoot> {
    let start = Instant::now();
    let fail_all = |detail: String, hint: &str| -> Vec<NicBoot> {
        p.targets()
            .into_iter()
            .map(|(mode, nic)| NicBoot {
                result: CheckResult::fail(check_id(mode, &nic), detail.clone(), hint)
                    .took(start.elapsed()),
                mode,
                nic,
                timings: Timings::default(),
            })
            .collect()
    };
    // Names and the callback token come first: without randomness nothing is created.
    let name = match run_name(random) {
        Ok(n) => n,
        Err(e) => return fail_all(e, RANDOM_HINT),
    };
    virt::error::clear_error_callback();
    progress("boot: connecting to libvirt");
    let conn = match Connect::open(Some(&p.uri)) {
        Ok(c) => c,
        Err(e) => {
            return fail_all(
                format!("cannot connect to {}: {}", p.uri, e.message()),
                "start libvirtd (see libvirt.connect)",
            )
        }
    };
    let swept = sweep(&conn);
    if swept > 0 {
        progress(&format!(
            "boot: removed {swept} leftover(s) of earlier runs"
        ));
    }
    let dtype = match domain_types(&conn) {
        Ok(types) => match types.choose(p.domain_type) {
            Ok(t) => t,
            Err((detail, hint)) => return fail_all(detail, hint),
        },
        Err(e) => {
            return fail_all(
                format!("cannot read libvirt capabilities: {}", e.message()),
                "see libvirt.domain_type",
            )
        }
    };
    // UEFI without firmware: those boots FAIL here, before anything is created.
    let mut unbootable = Vec::new();
    let mut p = p.clone();
    if p.modes.contains(&BootMode::Uefi) {
        if let Err(why) = uefi_offered(&conn, dtype) {
            unbootable = p
                .nics
                .iter()
                .map(|nic| NicBoot {
                    mode: BootMode::Uefi,
                    nic: nic.clone(),
                    result: CheckResult::fail(
                        check_id(BootMode::Uefi, nic),
                        format!("no UEFI test domain can start: {why}"),
                        "see firmware.efi: run bootstrap (its `packages` step installs the \
                         family's OVMF package), or leave uefi out of --boot-mode",
                    )
                    .took(start.elapsed()),
                    timings: Timings::default(),
                })
                .collect();
            p.modes.retain(|m| *m != BootMode::Uefi);
        }
    }
    if p.modes.is_empty() {
        return unbootable;
    }
    let p = &p;
    let _signals = SignalGuard::install();
    let mut run = Run::new(conn, name, random);
    let mut out = run.boot_all(p, dtype, progress, start);
    out.extend(unbootable);
    progress("boot: removing the test network");
    run.teardown();
    drop(run);
    progress("boot: done");
    if let Some(sig) = interrupted() {
        drop(_signals);
        let _ = nix::sys::signal::raise(sig);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Cleanup: what this process created, and what dead processes left.

/// Removes domains, networks and serial files with [`PREFIX`] whose creating process is
/// gone. Returns how many things it removed.
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
pub fn new_run_name() -> Result<String, String> {
    run_name(kernel_random)
}

fn run_name(random: RandomSource) -> Result<String, String> {
    Ok(format!(
        "{PREFIX}{}-{}",
        std::process::id(),
        random_hex_from(4, random)?
    ))
}

fn serial_dir() -> PathBuf {
    std::env::temp_dir()
}

/// Fills a buffer with random bytes, entirely or with an error.
pub type RandomSource = fn(&mut [u8]) -> std::io::Result<()>;

/// What to do when the kernel gives no random bytes.
const RANDOM_HINT: &str = "the boot proof needs unpredictable names and an unguessable \
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

/// `n` bytes of `random` as hex, or the FAIL detail saying why there are none.
fn random_hex_from(n: usize, random: RandomSource) -> Result<String, String> {
    let mut buf = vec![0u8; n];
    random(&mut buf).map_err(|e| {
        format!("cannot read random bytes from the kernel (getrandom, /dev/urandom): {e}")
    })?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: i32) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// The SIGINT or SIGTERM that arrived during the proof.
fn interrupted() -> Option<nix::sys::signal::Signal> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => nix::sys::signal::Signal::try_from(s).ok(),
    }
}

/// SIGINT/SIGTERM handlers for the duration of the proof: they only record the signal; the
/// boot loop sees it, tears down, and [`prove`] re-raises it with the old handlers back.
struct SignalGuard {
    old: Vec<(nix::sys::signal::Signal, nix::sys::signal::SigAction)>,
}

impl SignalGuard {
    fn install() -> SignalGuard {
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
            if let Ok(prev) = unsafe { sigaction(s, &act) } {
                old.push((s, prev));
            }
        }
        SignalGuard { old }
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

/// What one proof created, torn down on every path (also on panic, through Drop).
struct Run {
    conn: Connect,
    name: String,
    random: RandomSource,
    network: Option<Network>,
    domain: Option<Domain>,
    files: Vec<PathBuf>,
}

impl Run {
    fn new(conn: Connect, name: String, random: RandomSource) -> Run {
        Run {
            conn,
            name,
            random,
            network: None,
            domain: None,
            files: Vec::new(),
        }
    }

    /// `n` random bytes as hex, or the FAIL detail.
    fn hex(&self, n: usize) -> Result<String, String> {
        random_hex_from(n, self.random)
    }

    fn destroy_domain(&mut self) {
        if let Some(d) = self.domain.take() {
            let _ = d.destroy();
        }
    }

    fn teardown(&mut self) {
        self.destroy_domain();
        if let Some(n) = self.network.take() {
            let _ = n.destroy();
        }
        for f in self.files.drain(..) {
            let _ = std::fs::remove_file(f);
        }
    }

    /// Creates the network (retrying on a subnet collision) and boots each NIC model.
    fn boot_all(
        &mut self,
        p: &Proof,
        dtype: DomainType,
        progress: &mut dyn FnMut(&str),
        start: Instant,
    ) -> Vec<NicBoot> {
        let fail_all = |detail: String, hint: String| -> Vec<NicBoot> {
            p.targets()
                .into_iter()
                .map(|(mode, nic)| NicBoot {
                    result: CheckResult::fail(check_id(mode, &nic), detail.clone(), hint.clone())
                        .took(start.elapsed()),
                    mode,
                    nic,
                    timings: Timings::default(),
                })
                .collect()
        };
        let lib_version = self.conn.lib_version().unwrap_or(0);
        let mut tuning = p.tuning;
        let mut notes = String::new();
        if tuning.needs_dnsmasq_options() && lib_version < net::DNSMASQ_OPTIONS_SINCE {
            tuning.no_ping = false;
            tuning.no_pxedhcp = false;
            notes.push_str(&format!(
                "; libvirt {} < 5.6 takes no dnsmasq options: no-ping and no-pxedhcp not set, \
                 DHCP takes a few seconds longer",
                version_string(lib_version)
            ));
        }
        let netns_pid = libvirt_daemon_pid();
        let netns = netns_pid.and_then(foreign_netns);
        let (token, start_at) = match (self.hex(16), self.hex(2)) {
            (Ok(t), Ok(s)) => (t, u16::from_str_radix(&s, 16).unwrap_or(0) as usize),
            (Err(e), _) | (_, Err(e)) => return fail_all(e, RANDOM_HINT.into()),
        };
        let firewalld_zone = net::firewalld_running().then(|| "trusted".to_string());

        progress("boot: creating the isolated test network");
        let mut server = None;
        let mut last_err = String::new();
        for attempt in 0..4 {
            let mut used = net::host_routes(netns_pid);
            if let Ok(nets) = self.conn.list_all_networks(0) {
                for n in nets {
                    if let Ok(x) = n.xml_desc(0) {
                        used.extend(net::parse_network_ips(&x));
                    }
                }
            }
            let Some(subnet) = net::pick(&used, start_at + attempt) else {
                return fail_all(
                    "no free candidate subnet (10.213.x, 172.31.2xx, 192.168.2xx are all routed)"
                        .into(),
                    "free one of these /24s for the test network".into(),
                );
            };
            let gateway = subnet.gateway();
            let srv = match http::Server::start(gateway, netns.clone(), token.clone()) {
                Ok(s) => s,
                Err(e) => {
                    return fail_all(
                        format!("cannot start the HTTP server on {gateway}: {e}"),
                        "run validate as root (it binds inside libvirt's network namespace)".into(),
                    )
                }
            };
            let name = format!("{}-{attempt}", self.name);
            let ula = match self.hex(5) {
                Ok(h) => format!("fd{}:{}:{}:{:x}::", &h[..2], &h[2..6], &h[6..], attempt + 1),
                Err(e) => return fail_all(e, RANDOM_HINT.into()),
            };
            let spec = net::NetworkSpec {
                name: name.clone(),
                subnet,
                ula,
                boot_url: p
                    .offer_boot_file
                    .then(|| format!("http://{gateway}:{}/boot.ipxe", srv.port)),
                tuning,
                firewalld_zone: firewalld_zone.clone(),
            };
            match self.conn.create_network_xml(&spec.xml()) {
                Ok(n) => {
                    self.network = Some(n);
                    server = Some(srv);
                    break;
                }
                Err(e) => last_err = e.message().to_string(),
            }
            if tuning.ipv6_ra && last_err.to_ascii_lowercase().contains("ipv6") {
                // A host with IPv6 off: boot without router advertisements, and say so.
                tuning.ipv6_ra = false;
                notes.push_str(
                    "; IPv6 unavailable for the test network: without router advertisements \
                     iPXE waits ~12 s for IPv6 before DHCP completes",
                );
            }
            if interrupted().is_some() {
                break;
            }
        }
        let Some(server) = server else {
            return fail_all(
                format!("cannot create the test network: {last_err}"),
                "check that dnsmasq is installed (dnsmasq-base) and libvirtd can create bridges"
                    .into(),
            );
        };
        let net_name = self
            .network
            .as_ref()
            .and_then(|n| n.name().ok())
            .unwrap_or_default();
        progress(&format!(
            "boot: network {net_name} up, boot script at http://{}:{}/boot.ipxe",
            self.gateway_of(),
            server.port
        ));

        let mut out = Vec::new();
        let targets = p.targets();
        for (mode, nic) in &targets {
            if interrupted().is_some() {
                break;
            }
            progress(&format!(
                "boot: booting a {} {} domain, NIC model {nic}",
                dtype.as_str(),
                mode_word(*mode)
            ));
            let b = self.boot_one(p, *mode, nic, dtype, &net_name, &server, &notes);
            progress(&format!(
                "boot: {} {nic}: {} {}",
                mode.as_str(),
                b.result.status,
                b.result.detail
            ));
            out.push(b);
        }
        drop(server);
        if let Some(sig) = interrupted() {
            for (mode, nic) in &targets[out.len()..] {
                out.push(NicBoot {
                    mode: *mode,
                    nic: nic.clone(),
                    result: CheckResult::fail(
                        check_id(*mode, nic),
                        format!("interrupted by {sig}"),
                        "run validate again",
                    ),
                    timings: Timings::default(),
                });
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn boot_one(
        &mut self,
        p: &Proof,
        mode: BootMode,
        nic: &str,
        dtype: DomainType,
        net_name: &str,
        server: &http::Server,
        note: &str,
    ) -> NicBoot {
        let id = check_id(mode, nic);
        let began = Instant::now();
        let dom_name = match mode {
            BootMode::Bios => format!("{}-{nic}", self.name),
            BootMode::Uefi => format!("{}-uefi-{nic}", self.name),
        };
        let serial_path = serial_dir().join(format!("{dom_name}.serial"));
        let mac = match self.hex(3) {
            Ok(h) => format!("52:54:00:{}:{}:{}", &h[..2], &h[2..4], &h[4..]),
            Err(e) => {
                return NicBoot {
                    mode,
                    nic: nic.into(),
                    result: CheckResult::fail(id, e, RANDOM_HINT),
                    timings: Timings::default(),
                }
            }
        };
        let _ = std::fs::remove_file(&serial_path);
        if let Err(e) = create_readable(&serial_path) {
            return NicBoot {
                mode,
                nic: nic.into(),
                result: CheckResult::fail(
                    id,
                    format!("cannot create {}: {e}", serial_path.display()),
                    "run validate as root",
                ),
                timings: Timings::default(),
            };
        }
        self.files.push(serial_path.clone());
        let xml = domain_xml(&DomainSpec {
            name: &dom_name,
            dtype,
            nic,
            mac: &mac,
            network: net_name,
            serial: &serial_path,
            rom: &p.rom,
            mode,
        });
        server.drain();
        let t0 = Instant::now();
        let secs = |t: Instant| t.saturating_duration_since(t0).as_secs_f64();
        let dom = match self
            .conn
            .create_domain_xml(&xml, virt::sys::VIR_DOMAIN_START_AUTODESTROY)
        {
            Ok(d) => d,
            Err(e) => {
                let msg = qemu_error(e.message());
                let hint = if msg.contains("romfile")
                    || msg.contains("rom file")
                    || msg.contains(".rom")
                {
                    rom_hint(nic)
                } else if msg.contains("kvm") || msg.contains("KVM") {
                    "KVM does not work here: see libvirt.domain_type and kvm.* checks".into()
                } else {
                    format!("see /var/log/libvirt/qemu/{dom_name}.log and libvirtd's log")
                };
                return NicBoot {
                    mode,
                    nic: nic.into(),
                    result: CheckResult::fail(
                        id,
                        format!("the {nic} test domain did not start: {msg}"),
                        hint,
                    )
                    .took(began.elapsed()),
                    timings: Timings::default(),
                };
            }
        };
        // UEFI: the firmware libvirt chose, and the NVRAM file it made for the domain,
        // removed with the rest (also after a SIGKILL: `sweep`).
        let mut firmware = String::new();
        if mode == BootMode::Uefi {
            let (loader, nvram) = dom.xml_desc(0).map(|x| uefi_files(&x)).unwrap_or_default();
            if let Some(n) = nvram {
                self.files.push(PathBuf::from(n));
            }
            firmware = loader.map(|l| format!(" ({l})")).unwrap_or_default();
        }
        self.domain = Some(dom);

        let mut prog = serial::Progress::default();
        let mut timings = Timings::default();
        let mut callback: Option<(String, String)> = None;
        let mut bad_tokens = 0;
        let mut text = String::new();
        let deadline = t0 + p.timeout;
        let mut gave_up_at = None;
        let mut cpu = stall::CpuSamples::default();
        let mut hung = None;
        loop {
            let now = Instant::now();
            for ev in server.drain() {
                match ev {
                    http::Event::Script { at } => {
                        timings.script_s.get_or_insert(secs(at));
                    }
                    http::Event::Callback {
                        at,
                        token_ok: true,
                        mac,
                        version,
                    } => {
                        timings.callback_s = Some(secs(at));
                        callback = Some((mac, version));
                    }
                    http::Event::Callback { .. } => bad_tokens += 1,
                }
            }
            if let Ok(raw) = std::fs::read(&serial_path) {
                text = serial::clean(&raw);
                prog.update(&text, now);
            }
            if let Some(last) = prog.last_output {
                let quiet = now.saturating_duration_since(last).as_secs_f64();
                let longest = timings.longest_quiet_s.get_or_insert(0.0);
                *longest = longest.max(quiet);
            }
            if callback.is_some() || now >= deadline || interrupted().is_some() {
                break;
            }
            if let Some(g) = prog.gave_up {
                // Let a late request still arrive, then stop.
                let g = *gave_up_at.get_or_insert(g);
                if now.duration_since(g) > Duration::from_secs(2) {
                    break;
                }
            }
            if let Some(d) = &self.domain {
                if !d.is_active().unwrap_or(true) {
                    break;
                }
                if cpu.due(now) {
                    if let Ok(info) = d.info() {
                        cpu.push(now, info.cpu_time);
                    }
                }
            }
            // Only once the firmware printed: a domain silent from the start is "no firmware
            // output" (TCG on a loaded host can take a while to print anything).
            if let Some(last) = prog.last_output {
                hung = stall::stalled(last, now, &cpu, stall::silence(dtype));
                if hung.is_some() {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let domain_alive = self.domain.as_ref().map(|d| d.is_active().unwrap_or(false));
        self.destroy_domain();
        timings.dhcp_s = match (prog.dhcp.map(secs), timings.script_s) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let fmt = |v: Option<f64>| v.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "?".into());
        let result = if let Some((cb_mac, cb_ver)) = callback {
            let version = if cb_ver.is_empty() {
                prog.version.clone().unwrap_or_else(|| "?".into())
            } else {
                cb_ver
            };
            let mac_note = if cb_mac.eq_ignore_ascii_case(&mac) || cb_mac.is_empty() {
                String::new()
            } else {
                format!(" (callback from MAC {cb_mac}, expected {mac})")
            };
            CheckResult::pass(
                id,
                format!(
                    "iPXE {version} booted a {} {}{firmware} domain, NIC model {nic}: DHCP after {}, callback after {}{mac_note}{note}",
                    dtype.as_str(),
                    mode_word(mode),
                    fmt(timings.dhcp_s),
                    fmt(timings.callback_s),
                ),
            )
        } else {
            let tail = serial::tail(&text, 5);
            let console = if tail.is_empty() {
                "serial console empty".to_string()
            } else {
                format!("serial: {tail}")
            };
            let waited = if interrupted().is_some() {
                format!("after {:.0} s", t0.elapsed().as_secs_f64())
            } else if prog.gave_up.is_some() {
                format!("gave up after {:.0} s", t0.elapsed().as_secs_f64())
            } else if let Some(h) = hung {
                format!(
                    "no console output for {:.0} s while it used {:.0}% of a CPU, stopped after {:.0} s",
                    h.silent_s,
                    h.busy * 100.0,
                    t0.elapsed().as_secs_f64()
                )
            } else if domain_alive == Some(false) {
                format!(
                    "the domain stopped after {:.0} s",
                    t0.elapsed().as_secs_f64()
                )
            } else {
                format!(
                    "no callback within the {} s --boot-timeout",
                    p.timeout.as_secs()
                )
            };
            // The wait ran to the deadline: the boot may only have been slow.
            let timed_out = interrupted().is_none()
                && prog.gave_up.is_none()
                && hung.is_none()
                && domain_alive != Some(false);
            let (stage, hint) = if let Some(sig) = interrupted() {
                (
                    format!("interrupted by {sig}"),
                    "run validate again".to_string(),
                )
            } else if hung.is_some() {
                (
                    "the test domain hung".to_string(),
                    stall::hint(
                        dtype,
                        bootstrap::facts::module_flag(
                            &bootstrap::hostroot::HostRoot::system(),
                            "kvm_amd",
                            "nrips",
                        ),
                    ),
                )
            } else if prog.firmware.is_none() {
                (
                    "no firmware output".to_string(),
                    match mode {
                        BootMode::Bios => format!(
                            "the VM printed nothing on its serial console: check QEMU and SeaBIOS \
                             (/var/log/libvirt/qemu/{dom_name}.log)"
                        ),
                        BootMode::Uefi => format!(
                            "OVMF printed nothing on the serial console{firmware}: see \
                             firmware.efi and /var/log/libvirt/qemu/{dom_name}.log"
                        ),
                    },
                )
            } else if prog.ipxe.is_none() {
                ("iPXE never started".to_string(), rom_hint(nic))
            } else if timings.dhcp_s.is_none() {
                (
                    "no DHCP answer".to_string(),
                    "iPXE got no DHCP lease on the test network: check that dnsmasq runs for \
                     libvirt networks and that no firewall drops DHCP on the bridge"
                        .to_string(),
                )
            } else if timings.script_s.is_none() {
                (
                    "no script fetched".to_string(),
                    format!(
                        "DHCP worked but iPXE fetched no boot script: the network must offer the \
                         boot file (<bootp file=...>), and http://{}:{}/ must be reachable from the \
                         bridge (a firewall on the host must let guests reach it)",
                        self.gateway_of(),
                        server.port
                    ),
                )
            } else {
                (
                    "script fetched, no callback".to_string(),
                    format!(
                        "iPXE fetched boot.ipxe but never called back{}: check the iPXE build \
                         (HTTP and script support)",
                        if bad_tokens > 0 {
                            " with the right token"
                        } else {
                            ""
                        }
                    ),
                )
            };
            let hint = if timed_out {
                format!(
                    "{hint}. If the console was still moving, the host is only slow (TCG, a \
                     loaded or nested host): raise --boot-timeout"
                )
            } else {
                hint
            };
            CheckResult::fail(
                id,
                format!(
                    "{stage} ({waited}; {} {}{firmware} domain, NIC model {nic}, DHCP {}, script {}){note}; {console}",
                    dtype.as_str(),
                    mode_word(mode),
                    fmt(timings.dhcp_s),
                    fmt(timings.script_s),
                ),
                hint,
            )
        };
        NicBoot {
            mode,
            nic: nic.into(),
            result: result.took(began.elapsed()),
            timings,
        }
    }

    fn gateway_of(&self) -> String {
        self.network
            .as_ref()
            .and_then(|n| n.xml_desc(0).ok())
            .and_then(|x| {
                xmlscan::tags(&x, "ip")
                    .iter()
                    .find(|t| xmlscan::attr(t, "family").is_none())
                    .and_then(|t| xmlscan::attr(t, "address").map(str::to_string))
            })
            .unwrap_or_else(|| "GATEWAY".into())
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        self.teardown();
    }
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

fn rom_hint(nic: &str) -> String {
    let roms = bootstrap::desired::NIC_ROMS
        .iter()
        .find(|(m, _)| *m == nic)
        .map(|(_, files)| files.join(", "))
        .unwrap_or_else(|| "its iPXE ROM".into());
    format!(
        "the {nic} NIC's iPXE option ROM is missing or broken ({roms}): install the iPXE ROM \
         package (ipxe-qemu on Debian/Ubuntu, ipxe-roms-qemu on RHEL/CentOS), at least a 2016 build"
    )
}

/// Creates `path` empty, readable by us whoever ends up writing it.
fn create_readable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map(drop)
}

/// The pid of the libvirt daemon that creates bridges (`virtnetworkd` on modular hosts).
pub fn libvirt_daemon_pid() -> Option<u32> {
    for f in [
        "/run/virtnetworkd.pid",
        "/run/libvirtd.pid",
        "/var/run/libvirtd.pid",
    ] {
        if let Ok(s) = std::fs::read_to_string(f) {
            if let Ok(pid) = s.trim().parse::<u32>() {
                if Path::new(&format!("/proc/{pid}")).exists() {
                    return Some(pid);
                }
            }
        }
    }
    let rd = std::fs::read_dir("/proc").ok()?;
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) {
            if matches!(comm.trim(), "virtnetworkd" | "libvirtd") {
                return Some(pid);
            }
        }
    }
    None
}

/// `/proc/<pid>/ns/net` when that differs from ours (libvirtd in its own namespace).
fn foreign_netns(pid: u32) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let theirs = PathBuf::from(format!("/proc/{pid}/ns/net"));
    let a = std::fs::metadata(&theirs).ok()?;
    let b = std::fs::metadata("/proc/self/ns/net").ok()?;
    (a.ino() != b.ino() || a.dev() != b.dev()).then_some(theirs)
}

struct DomainSpec<'a> {
    name: &'a str,
    dtype: DomainType,
    nic: &'a str,
    mac: &'a str,
    network: &'a str,
    serial: &'a Path,
    rom: &'a Rom,
    mode: BootMode,
}

/// `BIOS` / `UEFI`, for messages.
fn mode_word(mode: BootMode) -> &'static str {
    match mode {
        BootMode::Bios => "BIOS",
        BootMode::Uefi => "UEFI",
    }
}

/// Whether libvirt offers UEFI firmware for a `q35` domain of `dtype`: the error says why
/// not (checked before a UEFI test domain is created).
fn uefi_offered(conn: &Connect, dtype: DomainType) -> Result<(), String> {
    let caps = conn
        .domain_capabilities(
            None,
            Some(std::env::consts::ARCH),
            Some("q35"),
            Some(dtype.as_str()),
            0,
        )
        .map_err(|e| format!("libvirt would not describe q35 domains: {}", e.message()))?;
    match crate::checks::firmware::efi_offered(&caps)? {
        (true, _) => Ok(()),
        (false, _) => Err("libvirt offers no efi firmware for q35 (no OVMF installed)".into()),
    }
}

/// The `<loader>` and `<nvram>` paths of a running UEFI domain's XML.
fn uefi_files(xml: &str) -> (Option<String>, Option<String>) {
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

/// A diskless domain that boots from its NIC, with SeaBIOS and iPXE on the serial console.
/// `<acpi/>` is required: without it libvirt 9 passes `-no-acpi`, which QEMU 10 rejects.
fn domain_xml(d: &DomainSpec) -> String {
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
    let rom = match d.rom {
        Rom::Default => String::new(),
        Rom::File(r) => format!("\n      <rom file='{}'/>", escape(&r.display().to_string())),
        Rom::Disabled => "\n      <rom bar='off'/>".to_string(),
    };
    format!(
        "<domain type='{ty}'>\n  <name>{name}</name>\n  <memory unit='MiB'>256</memory>\n  \
         <vcpu>1</vcpu>\n  {os}\n  <features><acpi/></features>\n  \
         <on_reboot>destroy</on_reboot>\n  <devices>\n    \
         <interface type='network'>\n      <source network='{net}'/>\n      <mac address='{mac}'/>\n      \
         <model type='{nic}'/>{rom}\n    </interface>\n    \
         <serial type='file'>\n      <source path='{serial}'/>\n      <target port='0'/>\n    </serial>\n    \
         <memballoon model='none'/>\n  </devices>\n</domain>\n",
        ty = d.dtype.as_str(),
        name = escape(d.name),
        net = escape(d.network),
        mac = d.mac,
        nic = escape(d.nic),
        serial = escape(&d.serial.display().to_string()),
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

    #[test]
    fn the_proof_fails_without_randomness() {
        fn broken(_: &mut [u8]) -> std::io::Result<()> {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "/dev/urandom: No such file or directory",
            ))
        }
        assert!(random_hex_from(16, broken).is_err());
        let opts = Options {
            nics: vec!["virtio".into(), "e1000".into()],
            // Never reached: the proof stops before it connects.
            connect: "test:///nonexistent".into(),
            boot_modes: vec![BootMode::Bios],
            ..Options::default()
        };
        let mut said = Vec::new();
        let out = prove_with(
            &Proof::from_options(&opts),
            &mut |m| said.push(m.to_string()),
            broken,
        );
        assert_eq!(out.len(), 2);
        for b in &out {
            assert_eq!(b.result.status, crate::check::Status::Fail);
            assert!(
                b.result
                    .detail
                    .contains("cannot read random bytes from the kernel"),
                "{}",
                b.result.detail
            );
            assert!(b.result.hint.as_deref().unwrap().contains("/dev/urandom"));
        }
        assert!(said.is_empty(), "it went on: {said:?}");
    }

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
        assert!(roxmltree::Document::parse(&u).is_ok() && roxmltree::Document::parse(&x).is_ok());
        let (loader, nvram) = uefi_files(
            "<domain><os><loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>\
             <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/libvirt/qemu/nvram/x_VARS.fd</nvram></os></domain>",
        );
        assert_eq!(loader.as_deref(), Some("/usr/share/OVMF/OVMF_CODE_4M.fd"));
        assert_eq!(
            nvram.as_deref(),
            Some("/var/lib/libvirt/qemu/nvram/x_VARS.fd")
        );
    }
}
