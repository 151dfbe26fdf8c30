//! Boots the iPXE proof several times against the real libvirtd and prints, per run, the
//! seconds from domain start to DHCP, to the script fetch and to the callback. Needs root
//! and a running libvirtd (`bash xtask/host/start-services.sh`).
//!
//! - `BOOT_BENCH_RUNS`: runs per variant (3)
//! - `BOOT_BENCH_NICS`: NIC models (`virtio`)
//! - `BOOT_BENCH_VARIANTS`: network tunings to compare (`fast`); also `naive` (a plain
//!   isolated network), `no-ipv6`, `no-ping`, `no-pxedhcp` (fast minus one tweak)
//! - `BOOT_BENCH_VERBOSE`: print the proof's progress with timestamps
//! - `BOOT_BENCH_DOMAIN_TYPE`: `kvm` or `qemu`, as `validate --domain-type` (default: the
//!   best type libvirt can run here)
//! - `BOOT_BENCH_BOOT_TIMEOUT`: seconds, as `validate --boot-timeout` (60)

use validate::boot::net::Tuning;
use validate::boot::{prove, Proof};
use validate::options::Options;

fn tuning(variant: &str) -> Tuning {
    let fast = Tuning::FAST;
    match variant {
        "fast" => fast,
        "naive" => Tuning::NAIVE,
        "no-ipv6" => Tuning {
            ipv6_ra: false,
            ..fast
        },
        "no-ping" => Tuning {
            no_ping: false,
            ..fast
        },
        "no-pxedhcp" => Tuning {
            no_pxedhcp: false,
            ..fast
        },
        v => panic!("unknown variant {v}"),
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs: usize = env_or("BOOT_BENCH_RUNS", "3")
        .parse()
        .expect("BOOT_BENCH_RUNS");
    let nics: Vec<String> = env_or("BOOT_BENCH_NICS", "virtio")
        .split(',')
        .map(str::to_string)
        .collect();
    let variants: Vec<String> = env_or("BOOT_BENCH_VARIANTS", "fast")
        .split(',')
        .map(str::to_string)
        .collect();
    let opts = Options {
        nics: nics.clone(),
        domain_type: std::env::var("BOOT_BENCH_DOMAIN_TYPE")
            .ok()
            .map(|t| t.parse().expect("BOOT_BENCH_DOMAIN_TYPE: kvm or qemu")),
        boot_timeout: std::time::Duration::from_secs(
            env_or("BOOT_BENCH_BOOT_TIMEOUT", "60")
                .parse()
                .expect("BOOT_BENCH_BOOT_TIMEOUT: seconds"),
        ),
        ..Options::default()
    };
    let mut figures: Vec<(String, String, f64)> = Vec::new();
    for variant in &variants {
        let proof = Proof {
            tuning: tuning(variant),
            ..Proof::from_options(&opts)
        };
        for i in 1..=runs {
            let start = std::time::Instant::now();
            let verbose = std::env::var("BOOT_BENCH_VERBOSE").is_ok();
            let mut progress = |m: &str| {
                if verbose {
                    println!("  {:6.2} s  {m}", start.elapsed().as_secs_f64());
                }
            };
            for b in prove(&proof, &mut progress) {
                let t = &b.timings;
                let f = |v: Option<f64>| v.map(|v| format!("{v:5.2}")).unwrap_or("    -".into());
                println!(
                    "{variant:<10} run {i} {:<7} {:?}  dhcp {} s  script {} s  callback {} s  longest console gap {} s  (proof incl. network setup {:.1} s)",
                    b.nic,
                    b.result.status,
                    f(t.dhcp_s),
                    f(t.script_s),
                    f(t.callback_s),
                    f(t.longest_quiet_s),
                    start.elapsed().as_secs_f64(),
                );
                match t.callback_s {
                    Some(c) => figures.push((variant.clone(), b.nic.clone(), c)),
                    None => println!("  {}", b.result.detail),
                }
            }
        }
    }
    println!("\ndomain start -> callback:");
    for variant in &variants {
        for nic in &nics {
            let v: Vec<f64> = figures
                .iter()
                .filter(|f| &f.0 == variant && &f.1 == nic)
                .map(|f| f.2)
                .collect();
            if v.is_empty() {
                println!("{variant:<10} {nic:<7} no successful run");
                continue;
            }
            let min = v.iter().cloned().fold(f64::MAX, f64::min);
            let max = v.iter().cloned().fold(0.0, f64::max);
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            println!(
                "{variant:<10} {nic:<7} {} run(s): min {min:.2} s, mean {mean:.2} s, max {max:.2} s",
                v.len()
            );
        }
    }
}
