//! Runs the checks in order and builds the [`Report`].
//!
//! Host checks read the host through a [`Probe`] (fixtures stand in for `/` in tests); the
//! libvirt checks and the iPXE boot proof talk to the real daemon.

use bootstrap::hostroot::HostRoot;

use crate::check::{timed, CheckResult};
use crate::checks::{self, Host};
use crate::options::Options;
use crate::probe::{Probe, SystemProbe};
use crate::report::{HostFacts, Report};

/// Every check on the running system: host checks, libvirt, and the boot proof.
pub fn run_system(opts: &Options) -> Report {
    let probe = SystemProbe::new(HostRoot::system());
    let host = Host::load(&probe);
    let mut results = Vec::new();
    results.extend(before_libvirt(opts, &host));
    results.extend(libvirt_checks(opts));
    let pool = default_pool_path(opts).or_else(|| persistent_pool_path(&host));
    results.extend(after_libvirt(opts, &host, pool));
    if !opts.skip_boot {
        // Progress of the boot proof (it takes seconds) goes to stderr, so it never mixes
        // with the report on stdout, JSON included.
        let mut progress = |msg: &str| eprintln!("validate: {msg}");
        results.extend(boot_checks(opts, &mut progress));
    }
    Report::new(HostFacts::of(&host), results)
}

/// The host checks alone (no libvirt connection, no boot proof), on any probe.
pub fn run_host(opts: &Options, probe: &dyn Probe) -> Report {
    let host = Host::load(probe);
    let mut results = before_libvirt(opts, &host);
    let pool = persistent_pool_path(&host);
    results.extend(after_libvirt(opts, &host, pool));
    Report::new(HostFacts::of(&host), results)
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

fn libvirt_checks(opts: &Options) -> Vec<CheckResult> {
    checks::libvirt::run(opts)
}

fn boot_checks(opts: &Options, progress: &mut dyn FnMut(&str)) -> Vec<CheckResult> {
    crate::boot::run(opts, progress)
}

/// The default pool's target path as the live daemon reports it; `None` falls back to the
/// persistent pool definition, then to /var/lib/libvirt/images (or its nearest existing
/// parent).
fn default_pool_path(opts: &Options) -> Option<String> {
    virt::connect::Connect::open(Some(&opts.connect))
        .ok()
        .and_then(|c| checks::libvirt::default_pool_path(&c))
        .map(|p| p.display().to_string())
}

/// `<target><path>` of the persistent default pool (`/etc/libvirt/storage/default.xml`).
pub fn persistent_pool_path(host: &Host) -> Option<String> {
    let xml = host.read("/etc/libvirt/storage/default.xml")?;
    checks::libvirt::pool_target_path(&xml).map(|p| p.display().to_string())
}
