//! Runs the checks in order and builds the [`Report`].
//!
//! Host checks read the host through a [`Probe`] (fixtures stand in for `/` in tests); the
//! libvirt checks and the iPXE boot proof talk to the real daemon.

use virthost_model::hostroot::HostRoot;

use crate::check::{timed, CheckResult};
use crate::checks::{self, Host};
use crate::connection::Libvirt;
use crate::options::{uri_host, Options, DEFAULT_CONNECT};
use crate::probe::{Probe, SystemProbe};
use crate::report::{HostFacts, Report};

/// Every check on the running system: host checks, libvirt, and the boot proof. libvirt is
/// connected to once, here, as validate's own user ([`Libvirt`]): the libvirt checks, the
/// default pool's path, the power proof's preparation and cleanup and the boot proof share
/// that connection. Only the connections that prove something of their own are separate
/// (those a child opens as `--user`: `libvirt.polkit`, the power proof's steps).
pub fn run_system(opts: &Options) -> Report {
    crate::check::clock();
    let probe = SystemProbe::new(HostRoot::system());
    let host = Host::load(&probe);
    let mut results = Vec::new();
    results.extend(before_libvirt(opts, &host));
    let libvirt = Libvirt::open(checks::libvirt::uri_of(opts));
    results.extend(checks::libvirt::run(opts, &host, &libvirt));
    let pool = libvirt
        .conn()
        .and_then(default_pool_path)
        .or_else(|| persistent_pool_path(&host));
    if uri_host(&opts.connect).is_none() {
        let dir = pool
            .clone()
            .unwrap_or_else(|| virthost_model::desired::IMAGES_DIR.into());
        results.extend(timed(|| {
            checks::images::run(&host, std::path::Path::new(&dir))
        }));
    }
    results.extend(after_libvirt(opts, &host, pool));
    let (proofs, schedule) = proofs(opts, &libvirt);
    results.extend(proofs);
    Report::new(HostFacts::of(&host), owned(results, &opts.user)).with_boot_schedule(schedule)
}

/// The boot proof, then the power proof; when the boot modes run side by side, the power
/// proof runs beside the boot proof (in its first lane, after that lane's boots).
fn proofs(opts: &Options, libvirt: &Libvirt) -> (Vec<CheckResult>, Option<crate::boot::Schedule>) {
    let mut power = (!opts.skip_power).then(|| power_beside(opts, libvirt));
    let mut beside = None;
    let mut schedule = None;
    let mut results = boot_unless_remote(opts, || {
        // Progress of the boot proof (it takes seconds) goes to stderr, so it never mixes
        // with the report on stdout, JSON included.
        let mut progress = |msg: &str| eprintln!("validate: {msg}");
        let proven = crate::boot::prove_on(
            &crate::boot::Proof::from_options(opts),
            libvirt.get(),
            &mut progress,
            power.take(),
        );
        beside = Some(proven.beside);
        schedule = proven.schedule;
        proven.boots.into_iter().map(|b| b.result).collect()
    });
    // No boot proof (skipped, or a remote daemon): the power proof alone.
    results.extend(beside.unwrap_or_else(|| power.map(|f| f()).unwrap_or_default()));
    (results, schedule)
}

/// The power proof, ready to run beside the boot proof: the domain type chosen on the
/// run's connection, the children that act as `--user` forked (now, while the process has
/// one thread).
fn power_beside(opts: &Options, libvirt: &Libvirt) -> crate::boot::Beside {
    let prepared = prepare_power(opts, libvirt);
    let user = opts.user.to_string();
    Box::new(move || {
        eprintln!("validate: power: define, boot device, start, reset, stop, undefine as {user}");
        let began = std::time::Instant::now();
        let results = match prepared {
            Ok(p) => p.run(),
            Err(r) => r,
        };
        let took = began.elapsed();
        results
            .into_iter()
            .map(|r| r.took(took).started(began))
            .collect()
    })
}

/// Which bootstrap step makes a check pass, for the checks not yet judged by a shared
/// assessment (`crate::assessed` marks those itself); `None`: outside bootstrap's reach.
pub fn bootstrap_step(id: &str, user: &str) -> Option<&'static str> {
    Some(match id {
        _ if id.starts_with("package.") => "packages",
        _ if id == "ipxe.build" || id.starts_with("ipxe.rom.") => "ipxe",
        "kvm.module" | "kvm.nested" => "kvm",
        "kvm.device" | "kvm.access" => "devkvm",
        "libvirt.connect" => "libvirt",
        "libvirt.polkit" => "polkit",
        _ => match id
            .strip_prefix("ssh.keys.")
            .or_else(|| id.strip_prefix("ssh.perms."))?
        {
            "root" => "root-keys",
            who if who == user => "user-keys",
            _ => return None,
        },
    })
}

fn owned(results: Vec<CheckResult>, user: &virthost_model::username::UserName) -> Vec<CheckResult> {
    results
        .into_iter()
        .map(
            |r| match (&r.bootstrap_step, bootstrap_step(&r.id, user.as_str())) {
                (None, Some(step)) => r.by_step(step),
                _ => r,
            },
        )
        .collect()
}

/// The boot proof's results: nothing with `--skip-boot`; a WARN per NIC model, without
/// calling `prove`, when `--connect` names a daemon on another machine (a URI with a host:
/// the proof binds its HTTP server on the test network's bridge and writes the serial
/// console to a file, both on the machine validate runs on, which must be the
/// hypervisor); otherwise what `prove` returns.
pub fn boot_unless_remote(
    opts: &Options,
    prove: impl FnOnce() -> Vec<CheckResult>,
) -> Vec<CheckResult> {
    if opts.skip_boot {
        return Vec::new();
    }
    let Some(host) = uri_host(&opts.connect) else {
        return prove();
    };
    opts.boot_modes
        .iter()
        .flat_map(|m| opts.nics.iter().map(move |n| (*m, n)))
        .map(|(mode, nic)| {
            CheckResult::warn(
                crate::boot::check_id(mode, nic),
                format!(
                    "not run: --connect {} is a daemon on {host}; the boot proof needs validate \
                     to run on the hypervisor itself: run it there",
                    opts.connect
                ),
                format!(
                    "run validate on {host} (its default --connect is {DEFAULT_CONNECT}); the host \
                     checks (kvm.*, package.*, capacity.*, ssh.*) also describe the machine \
                     validate runs on, not {host}. --skip-boot leaves the proof out"
                ),
            )
        })
        .collect()
}

/// The host checks alone (no libvirt connection, no boot proof), on any probe.
pub fn run_host(opts: &Options, probe: &dyn Probe) -> Report {
    let host = Host::load(probe);
    let mut results = before_libvirt(opts, &host);
    let pool = persistent_pool_path(&host);
    results.extend(after_libvirt(opts, &host, pool));
    Report::new(HostFacts::of(&host), owned(results, &opts.user))
}

fn before_libvirt(opts: &Options, host: &Host) -> Vec<CheckResult> {
    let mut r = Vec::new();
    r.extend(timed(|| checks::os::run(host)));
    r.extend(timed(|| checks::cpu::run(host)));
    r.extend(timed(|| checks::kvm::run(opts, host)));
    r.extend(timed(|| checks::packages::run(opts, host)));
    r
}

fn after_libvirt(opts: &Options, host: &Host, pool: Option<String>) -> Vec<CheckResult> {
    let mut r = Vec::new();
    r.extend(timed(|| checks::capacity::run(opts, host, pool)));
    r.extend(timed(|| checks::user::run(opts, host)));
    r.extend(timed(|| checks::ssh::run(opts, host)));
    r
}

/// The power proof with the domain type the boot proof would use, prepared
/// (`power::prepare`) on the run's connection, or its FAILs.
fn prepare_power(
    opts: &Options,
    libvirt: &Libvirt,
) -> Result<crate::power::Prepared, Vec<CheckResult>> {
    let fail = |detail: String, hint: &str| -> Vec<CheckResult> {
        opts.boot_modes
            .iter()
            .map(|m| CheckResult::fail(crate::power::check_id(*m), detail.clone(), hint))
            .collect()
    };
    let conn = libvirt
        .get()
        .map_err(|e| fail(e.to_string(), "see libvirt.connect"))?;
    let dtype = match checks::libvirt::domain_types(conn) {
        Ok(t) => match t.choose(opts.domain_type) {
            Ok(d) => d,
            Err((detail, hint)) => return Err(fail(detail, hint)),
        },
        Err(e) => {
            return Err(fail(
                format!("cannot read libvirt capabilities: {}", e.message()),
                "see libvirt.domain_type",
            ))
        }
    };
    match crate::boot::new_run_name() {
        Ok(name) => Ok(crate::power::prepare(opts, conn, dtype, &name)),
        Err(e) => Err(fail(e.to_string(), "see the boot proof's randomness hint")),
    }
}

/// The default pool's target path as the live daemon reports it; `None` falls back to the
/// persistent pool definition, then to /var/lib/libvirt/images (or its nearest existing
/// parent).
fn default_pool_path(conn: &virt::connect::Connect) -> Option<String> {
    checks::libvirt::default_pool_path(conn).map(|p| p.display().to_string())
}

/// `<target><path>` of the persistent default pool (`/etc/libvirt/storage/default.xml`).
pub fn persistent_pool_path(host: &Host) -> Option<String> {
    let xml = host.read("/etc/libvirt/storage/default.xml")?;
    checks::libvirt::pool_target_path(&xml).map(|p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;

    fn opts(connect: &str, skip_boot: bool) -> Options {
        Options {
            connect: connect.into(),
            skip_boot,
            nics: vec!["virtio".into(), "e1000".into()],
            boot_modes: vec![crate::options::BootMode::Bios],
            ..Options::default()
        }
    }

    #[test]
    fn the_boot_proof_is_not_tried_for_a_remote_daemon() {
        // Nothing is resolved or connected: `prove` would panic.
        let uri = "qemu+ssh://nonexistent.invalid/system";
        let r = boot_unless_remote(&opts(uri, false), || panic!("boot proof tried for {uri}"));
        let ids: Vec<&str> = r.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["boot.ipxe.virtio", "boot.ipxe.e1000"]);
        for c in &r {
            assert_eq!(c.status, Status::Warn);
            assert_eq!(
                c.detail,
                "not run: --connect qemu+ssh://nonexistent.invalid/system is a daemon on \
                 nonexistent.invalid; the boot proof needs validate to run on the hypervisor \
                 itself: run it there"
            );
            let hint = c.hint.as_deref().unwrap();
            assert!(
                hint.starts_with("run validate on nonexistent.invalid"),
                "{hint}"
            );
        }
        // --skip-boot: nothing at all, as on a local daemon.
        let r = boot_unless_remote(&opts(uri, true), || panic!("boot proof tried"));
        assert!(r.is_empty());
    }

    #[test]
    fn the_boot_proof_runs_for_a_local_daemon() {
        for uri in ["qemu:///system", "qemu:///session", "test:///default", ""] {
            let mut tried = false;
            let r = boot_unless_remote(&opts(uri, false), || {
                tried = true;
                vec![CheckResult::pass("boot.ipxe.virtio", "proved")]
            });
            assert!(tried, "{uri}");
            assert_eq!(r[0].detail, "proved");
            let r = boot_unless_remote(&opts(uri, true), || panic!("tried with --skip-boot"));
            assert!(r.is_empty());
        }
    }
}
