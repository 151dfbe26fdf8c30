//! How long the host checks take (everything but the libvirt checks and the boot proof);
//! the target is under 0.5 s. Prints figures; asserts nothing.
//!
//!     cargo bench -p validate --bench host_checks
//!
//! Runs on this machine (SystemProbe at /, as `validate --skip-boot` would, minus libvirt)
//! and on each fixture host.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bootstrap::hostroot::HostRoot;
use validate::options::{parse_nodes, Options};
use validate::probe::{FixtureProbe, Probe, SystemProbe};
use validate::run::run_host;

const RUNS: usize = 20;

fn measure(name: &str, opts: &Options, probe: &dyn Probe) {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            let r = run_host(opts, probe);
            std::hint::black_box(&r);
            t.elapsed()
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = times[RUNS / 2];
    let verdict = if median < Duration::from_millis(500) {
        "ok"
    } else {
        "OVER 0.5 s"
    };
    println!(
        "{name:<28} min {:7.2} ms  median {:7.2} ms  max {:7.2} ms  ({RUNS} runs; {verdict})",
        ms(times[0]),
        ms(median),
        ms(times[RUNS - 1])
    );
}

fn main() {
    let opts = Options {
        nodes: parse_nodes("undercloud:1,controller:3,compute:2").unwrap(),
        ..Options::default()
    };
    measure(
        "this host (/)",
        &opts,
        &SystemProbe::new(HostRoot::system()),
    );
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/validate");
    for case in ["rhel74-ready", "debian12-pvm", "centos7-old"] {
        let probe = FixtureProbe::load(fixtures.join(case)).unwrap();
        measure(&format!("fixture {case}"), &opts, &probe);
    }
}
