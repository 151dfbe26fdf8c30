//! The iPXE boot proof: a transient isolated network, an HTTP server on its gateway, and
//! a transient domain per NIC model that network-boots with iPXE and calls back with a
//! random token. PASS when the callback arrives.
//!
//! Everything created carries the name prefix [`PREFIX`] and the creating process's pid;
//! leftovers of dead processes are swept at the start of each run. Domains are created with
//! `VIR_DOMAIN_START_AUTODESTROY` (libvirt destroys them when our connection closes), the
//! network and the serial files are removed on success, error and SIGINT/SIGTERM.
//!
//! The parts, in the order a proof runs them:
//! - here: what to boot ([`Proof`]), and [`prove`]: connect, sweep, pick the domain type,
//!   decide the [`schedule`], run the lanes, re-raise a signal;
//! - [`schedule`]: whether the boot modes run side by side;
//! - [`lane`]: a network with its HTTP server, and its domains one after the other;
//! - [`domain`]: the test domain's XML and UEFI firmware;
//! - [`poll`]: the wait for one boot; [`verdict`]: what it proved; [`messages`]: the words;
//! - [`names`], [`cleanup`]: names, randomness, the sweep, signals.

mod cleanup;
mod domain;
pub mod http;
mod lane;
mod messages;
mod names;
pub mod net;
mod poll;
pub mod schedule;
pub mod serial;
pub mod stall;
mod tftp;
mod verdict;
pub mod xmlscan;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use virt::connect::Connect;

use crate::check::CheckResult;
use crate::checks::libvirt::domain_types;
use crate::connection::{ConnectError, Libvirt};
use crate::options::Options;
use crate::options::{BootMode, DomainType};

pub use cleanup::{sweep, NVRAM_DIR};
pub(crate) use names::owner_dead;
pub use names::{kernel_random, new_run_name, random_hex, NoRandomness, RandomSource, PREFIX};
pub use net::libvirt_daemon_pid;
pub use schedule::Schedule;
pub use tftp::{DNSMASQ_DIR, SNPONLY};

pub(crate) use cleanup::interrupted;
use cleanup::SignalGuard;
use lane::Lane;
use names::{run_name, RANDOM_HINT};

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
    /// `--sequential`: the modes one after the other even where they could run side by side.
    pub sequential: bool,
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
            sequential: opts.sequential,
        }
    }

    /// Every (mode, NIC model) the proof boots, in order.
    pub fn targets(&self) -> Vec<(BootMode, String)> {
        self.modes
            .iter()
            .flat_map(|m| self.nics.iter().map(move |n| (*m, n.clone())))
            .collect()
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

/// One NIC model's result and timings, in one boot mode.
#[derive(Debug, Clone)]
pub struct NicBoot {
    pub mode: BootMode,
    pub nic: String,
    pub result: CheckResult,
    pub timings: Timings,
}

/// Work that runs beside the boot proof (the power proof): in the first lane's thread
/// after its boots when the modes run side by side, else after the proof.
pub type Beside = Box<dyn FnOnce() -> Vec<CheckResult> + Send>;

/// What [`prove_on`] did.
pub struct Proven {
    pub boots: Vec<NicBoot>,
    /// What [`Beside`] returned (empty without one).
    pub beside: Vec<CheckResult>,
    /// How the modes ran; `None` when no domain was booted.
    pub schedule: Option<Schedule>,
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

/// Runs the boot proof on a connection of its own to `p.uri` (tests, benches; a validate
/// run shares its one connection through [`prove_on`]).
pub fn prove(p: &Proof, progress: &mut dyn FnMut(&str)) -> Vec<NicBoot> {
    progress("boot: connecting to libvirt");
    let libvirt = Libvirt::open(&p.uri);
    prove_with(p, libvirt.get(), progress, kernel_random, None).boots
}

/// Runs the boot proof on `conn` (the run's connection to `p.uri`, or why there is none)
/// with `beside` (see [`Beside`]). The lanes share `conn` across threads: `Connect` is
/// `Sync` (see [`crate::connection`]).
pub fn prove_on(
    p: &Proof,
    conn: Result<&Connect, &ConnectError>,
    progress: &mut dyn FnMut(&str),
    beside: Option<Beside>,
) -> Proven {
    prove_with(p, conn, progress, kernel_random, beside)
}

/// [`prove_on`] with its source of random bytes (tests: one that fails).
fn prove_with(
    p: &Proof,
    conn: Result<&Connect, &ConnectError>,
    progress: &mut dyn FnMut(&str),
    random: RandomSource,
    beside: Option<Beside>,
) -> Proven {
    let start = Instant::now();
    // Every early return still runs what goes beside, after the proof.
    let alone = |boots: Vec<NicBoot>, beside: Option<Beside>| Proven {
        boots,
        beside: beside.map(|f| f()).unwrap_or_default(),
        schedule: None,
    };
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
        Err(e) => return alone(fail_all(e.to_string(), RANDOM_HINT), beside),
    };
    let conn = match conn {
        Ok(c) => c,
        Err(e) => {
            return alone(
                fail_all(e.to_string(), "start libvirtd (see libvirt.connect)"),
                beside,
            )
        }
    };
    let swept = sweep(conn);
    if swept > 0 {
        progress(&format!(
            "boot: removed {swept} leftover(s) of earlier runs"
        ));
    }
    let dtype = match domain_types(conn) {
        Ok(types) => match types.choose(p.domain_type) {
            Ok(t) => t,
            Err((detail, hint)) => return alone(fail_all(detail, hint), beside),
        },
        Err(e) => {
            return alone(
                fail_all(
                    format!("cannot read libvirt capabilities: {}", e.message()),
                    "see libvirt.domain_type",
                ),
                beside,
            )
        }
    };
    // UEFI without firmware: those boots FAIL here, before anything is created.
    let mut unbootable = Vec::new();
    let mut p = p.clone();
    if p.modes.contains(&BootMode::Uefi) {
        if let Err(why) = domain::uefi_offered(conn, dtype) {
            unbootable = p
                .nics
                .iter()
                .map(|nic| NicBoot {
                    mode: BootMode::Uefi,
                    nic: nic.clone(),
                    result: messages::no_uefi(&check_id(BootMode::Uefi, nic), &why.to_string())
                        .took(start.elapsed()),
                    timings: Timings::default(),
                })
                .collect();
            p.modes.retain(|m| *m != BootMode::Uefi);
        }
    }
    if p.modes.is_empty() {
        return alone(unbootable, beside);
    }
    let p = &p;
    let schedule = schedule::on_this_host(p.modes.len(), p.sequential);
    if p.modes.len() > 1 {
        progress(&format!(
            "boot: {} ({})",
            if schedule.side_by_side {
                "the boot modes side by side, a network each"
            } else {
                "the boot modes one after the other"
            },
            schedule.why
        ));
    }
    let signals = SignalGuard::install();
    let (mut boots, beside) = if schedule.side_by_side {
        side_by_side(p, conn, &name, random, dtype, progress, start, beside)
    } else {
        let mut lane = Lane::new(conn.clone(), name, "", random);
        let boots = lane.boot_all(p, &p.targets(), dtype, progress, start);
        drop(lane);
        (boots, beside.map(|f| f()).unwrap_or_default())
    };
    boots.extend(unbootable);
    progress("boot: done");
    signals.finish();
    Proven {
        boots,
        beside,
        schedule: Some(schedule),
    }
}

/// A lane per boot mode, each in a thread; `beside` runs in the first lane's thread after
/// its boots. Progress comes back through a channel, in the order it happens.
#[allow(clippy::too_many_arguments)]
fn side_by_side(
    p: &Proof,
    conn: &Connect,
    name: &str,
    random: RandomSource,
    dtype: DomainType,
    progress: &mut dyn FnMut(&str),
    start: Instant,
    beside: Option<Beside>,
) -> (Vec<NicBoot>, Vec<CheckResult>) {
    let (tx, rx) = mpsc::channel::<String>();
    let mut beside = beside;
    std::thread::scope(|s| {
        let lanes: Vec<_> = p
            .modes
            .iter()
            .enumerate()
            .map(|(i, &mode)| {
                let tx = tx.clone();
                let targets: Vec<(BootMode, String)> =
                    p.nics.iter().map(|n| (mode, n.clone())).collect();
                // The first lane's network keeps the name a lone lane's has.
                let infix = match (i, mode) {
                    (0, _) => "",
                    (_, BootMode::Bios) => "-bios",
                    (_, BootMode::Uefi) => "-uefi",
                };
                let after = if i == 0 { beside.take() } else { None };
                let mut lane = Lane::new(conn.clone(), name.to_string(), infix, random);
                std::thread::Builder::new()
                    .name(format!("boot-{}", mode.as_str()))
                    .spawn_scoped(s, move || {
                        let mut send = |m: &str| {
                            let _ = tx.send(m.to_string());
                        };
                        let boots = lane.boot_all(p, &targets, dtype, &mut send, start);
                        drop(lane);
                        (boots, after.map(|f| f()).unwrap_or_default())
                    })
                    .expect("a thread for a boot lane")
            })
            .collect();
        drop(tx);
        for m in rx {
            progress(&m);
        }
        let mut boots = Vec::new();
        let mut beside_out = Vec::new();
        for l in lanes {
            match l.join() {
                Ok((b, r)) => {
                    boots.extend(b);
                    beside_out.extend(r);
                }
                // The lane's Drop tore down what it made; the panic goes on.
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        (boots, beside_out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proof_fails_without_randomness() {
        fn broken(_: &mut [u8]) -> std::io::Result<()> {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "/dev/urandom: No such file or directory",
            ))
        }
        assert!(names::random_hex_from(16, broken).is_err());
        let opts = Options {
            nics: vec!["virtio".into(), "e1000".into()],
            // Never reached: the proof stops before it uses the connection.
            connect: "test:///nonexistent".into(),
            boot_modes: vec![BootMode::Bios],
            ..Options::default()
        };
        let mut said = Vec::new();
        let ran_beside = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r = ran_beside.clone();
        let never = ConnectError {
            uri: opts.connect.clone(),
            message: "not tried".into(),
        };
        let out = prove_with(
            &Proof::from_options(&opts),
            Err(&never),
            &mut |m| said.push(m.to_string()),
            broken,
            Some(Box::new(move || {
                r.store(true, std::sync::atomic::Ordering::SeqCst);
                vec![CheckResult::pass("power.bios", "ran")]
            })),
        );
        assert_eq!(out.boots.len(), 2);
        for b in &out.boots {
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
        // What goes beside the proof still runs, after it.
        assert!(ran_beside.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(out.beside.len(), 1);
        assert!(out.schedule.is_none());
    }
}
