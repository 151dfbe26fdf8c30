//! How long `validate` takes without the boot proof; the target is under 0.5 s. Prints
//! figures; asserts nothing.
//!
//!     cargo bench -p validate --bench host_checks
//!
//! Two figures on this machine:
//! - "all but boot": everything `validate --skip-boot` runs (`run_system`): the host checks
//!   and the libvirt checks against the real daemon at `VIRTHOST_BENCH_CONNECT` (default
//!   qemu:///system): connect, default pool, domain type, and the polkit probe, which forks
//!   a child that connects as the stack user. When the daemon is unreachable the bench says
//!   so and prints the host-only figures anyway.
//! - "host checks": the host checks alone (`run_host`, no libvirt), on this machine and on
//!   each fixture host.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use validate::options::{parse_nodes, Options, DEFAULT_CONNECT};
use validate::probe::{FixtureProbe, SystemProbe};
use validate::report::Report;
use validate::run::{run_host, run_system};
use virthost_model::hostroot::HostRoot;

const RUNS: usize = 20;
const TARGET: Duration = Duration::from_millis(500);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `f` [`RUNS`] times, prints min / median / mean / max; returns the reports of the
/// median and the slowest run.
fn measure(name: &str, mut f: impl FnMut() -> Report) -> (Report, Report) {
    let mut runs: Vec<(Duration, Report)> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            let r = f();
            (t.elapsed(), std::hint::black_box(r))
        })
        .collect();
    runs.sort_by_key(|(d, _)| *d);
    let (min, max) = (runs[0].0, runs[RUNS - 1].0);
    let mean = runs.iter().map(|(d, _)| *d).sum::<Duration>() / RUNS as u32;
    let slowest = runs[RUNS - 1].1.clone();
    let (median, report) = runs.swap_remove(RUNS / 2);
    let verdict = if median < TARGET { "ok" } else { "OVER 0.5 s" };
    println!(
        "{name:<34} min {:7.2} ms  median {:7.2} ms  mean {:7.2} ms  max {:7.2} ms  ({RUNS} runs; {verdict})",
        ms(min),
        ms(median),
        ms(mean),
        ms(max),
    );
    (report, slowest)
}

/// Where the time of one run went: `duration_ms` per probe group (checks of one group
/// share it, so each group counts once).
fn breakdown(which: &str, r: &Report) {
    let mut groups: BTreeMap<String, (u64, usize)> = BTreeMap::new();
    let mut order = Vec::new();
    for c in &r.checks {
        // The groups of run.rs: kvm.* and dev.* are one, package.* and ipxe.* another;
        // each libvirt check is timed alone.
        let group = match c.id.split('.').next().unwrap_or("") {
            "libvirt" => c.id.clone(),
            "kvm" | "dev" => "kvm+dev".to_string(),
            "package" | "ipxe" => "packages".to_string(),
            g => g.to_string(),
        };
        let e = groups.entry(group.clone()).or_insert((0, 0));
        if e.1 == 0 {
            order.push(group);
        }
        e.0 = e.0.max(c.duration_ms);
        e.1 += 1;
    }
    let parts: Vec<String> = order
        .iter()
        .map(|g| {
            let (d, n) = groups[g];
            format!("{g} {d} ms ({n})")
        })
        .collect();
    println!("  {which}: {}", parts.join(", "));
}

fn main() {
    let opts = Options {
        nodes: parse_nodes("undercloud:1,controller:3,compute:2").unwrap(),
        ..Options::default()
    };

    let uri = std::env::var("VIRTHOST_BENCH_CONNECT").unwrap_or_else(|_| DEFAULT_CONNECT.into());
    virt::error::clear_error_callback();
    match virt::connect::Connect::open(Some(&uri)) {
        Ok(c) => {
            let version = c
                .lib_version()
                .map(validate::checks::libvirt::version_string)
                .unwrap_or_else(|_| "?".into());
            drop(c);
            println!("libvirt at {uri}: reachable (libvirt {version})");
            let all = Options {
                connect: uri.clone(),
                skip_boot: true,
                skip_power: true,
                ..opts.clone()
            };
            let (r, slowest) = measure(
                "this host, all but the boot and power proofs (libvirt)",
                || run_system(&all),
            );
            breakdown("median run", &r);
            breakdown("slowest run", &slowest);
            for c in r.checks.iter().filter(|c| c.id.starts_with("libvirt.")) {
                println!("  {:<20} {} {}", c.id, c.status, c.detail);
            }
        }
        Err(e) => println!(
            "libvirt at {uri}: NOT REACHABLE ({}); no all-but-boot figure, host checks only",
            e.message()
        ),
    }

    let system = SystemProbe::new(HostRoot::system());
    let (r, slowest) = measure("this host (/), host checks", || run_host(&opts, &system));
    breakdown("median run", &r);
    breakdown("slowest run", &slowest);
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/validate");
    for case in ["rhel74-ready", "debian12-pvm", "centos7-old"] {
        let t = tempfile::tempdir().unwrap();
        let probe = FixtureProbe::materialize(&fixtures.join(case), t.path()).unwrap();
        measure(&format!("fixture {case}"), || run_host(&opts, &probe));
    }
}
