//! How much a whole `validate` grows with both boot modes (issue 10: at most 1.5x a
//! BIOS-only run). Runs the `validate` binary as a user does (`--report json`, boot and
//! power proofs included) against the real libvirtd, interleaved so the host's load falls on
//! every variant alike, and prints each run, the medians and the ratios. Asserts nothing.
//! Needs root and a running libvirtd (`bash xtask/host/start-services.sh`).
//!
//!     cargo bench -p validate --bench boot_modes
//!
//! Variants: `bios` (`--boot-mode bios`), `both` (the default `bios,uefi`: side by side
//! where the host has the cores), `sequential` (`--sequential`: both, one after the other,
//! as before side by side existed).
//!
//! - `BOOT_MODES_BENCH_RUNS`: runs per variant (3)
//! - `BOOT_MODES_BENCH_USER`: `--user` (root: the CI machines have no stack user)
//! - `BOOT_MODES_BENCH_NICS`: `--nic` (virtio)

use std::process::{Command, Stdio};
use std::time::Instant;

const VARIANTS: &[(&str, &[&str])] = &[
    ("bios", &["--boot-mode", "bios"]),
    ("both", &[]),
    ("sequential", &["--sequential"]),
];

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        println!("boot_modes: needs root (the boot proof); nothing measured");
        return;
    }
    virt::error::clear_error_callback();
    if virt::connect::Connect::open(Some(validate::checks::libvirt::SYSTEM_URI)).is_err() {
        println!("boot_modes: libvirtd not reachable; nothing measured");
        return;
    }
    let runs: usize = env_or("BOOT_MODES_BENCH_RUNS", "3")
        .parse()
        .expect("BOOT_MODES_BENCH_RUNS");
    let user = env_or("BOOT_MODES_BENCH_USER", "root");
    let nics = env_or("BOOT_MODES_BENCH_NICS", "virtio");
    let schedule = validate::boot::schedule::on_this_host(2, false);
    println!(
        "boot_modes: both modes {} here ({})",
        if schedule.side_by_side {
            "side by side"
        } else {
            "one after the other"
        },
        schedule.why
    );
    let mut secs: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    for i in 1..=runs {
        for (k, (name, args)) in VARIANTS.iter().enumerate() {
            let t = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_validate"))
                .args([
                    "--connect",
                    validate::checks::libvirt::SYSTEM_URI,
                    "--allow-emulation",
                    "--report",
                    "json",
                    "--user",
                    &user,
                    "--nic",
                    &nics,
                ])
                .args(*args)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .expect("run validate");
            let s = t.elapsed().as_secs_f64();
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let not_passed: Vec<String> = report["checks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| {
                    let id = c["id"].as_str().unwrap_or("");
                    (id.starts_with("boot.") || id.starts_with("power.")) && c["status"] != "PASS"
                })
                .map(|c| format!("{} {}", c["id"], c["status"]))
                .collect();
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            println!(
                "run {i} {name:<10} {s:6.2} s  (load {}){}",
                load.split_whitespace().next().unwrap_or("?"),
                if not_passed.is_empty() {
                    String::new()
                } else {
                    format!("  NOT PASSED: {}", not_passed.join(", "))
                }
            );
            secs[k].push(s);
        }
    }
    let medians: Vec<f64> = secs.iter_mut().map(|v| median(v)).collect();
    println!("\nwhole validate run, median of {runs} (interleaved):");
    for ((name, _), m) in VARIANTS.iter().zip(&medians) {
        println!("  {name:<10} {m:6.2} s  {:.2}x BIOS-only", m / medians[0]);
    }
    println!(
        "  both modes: {:.2}x BIOS-only (goal: at most 1.5x; one after the other {:.2}x)",
        medians[1] / medians[0],
        medians[2] / medians[0]
    );
}
