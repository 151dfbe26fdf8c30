//! Boots the iPXE proof several times against the real libvirtd and prints, per run, the
//! seconds from domain start to DHCP and to the callback. Runs: `BOOT_BENCH_RUNS` (3);
//! NIC models: `BOOT_BENCH_NICS` (virtio). Needs root and a running libvirtd.

use validate::boot::{prove, Proof};
use validate::options::Options;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs: usize = std::env::var("BOOT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let nics: Vec<String> = std::env::var("BOOT_BENCH_NICS")
        .unwrap_or_else(|_| "virtio".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let opts = Options {
        nics: nics.clone(),
        ..Options::default()
    };
    let proof = Proof::from_options(&opts);
    let mut figures: Vec<(String, f64)> = Vec::new();
    for i in 1..=runs {
        let start = std::time::Instant::now();
        for b in prove(&proof, &mut |_| {}) {
            let t = &b.timings;
            println!(
                "run {i} {:<8} {:?} dhcp {:>5} s  script {:>5} s  callback {:>5} s  (whole proof {:.1} s)",
                b.nic,
                b.result.status,
                t.dhcp_s.map(|v| format!("{v:.2}")).unwrap_or("-".into()),
                t.script_s.map(|v| format!("{v:.2}")).unwrap_or("-".into()),
                t.callback_s.map(|v| format!("{v:.2}")).unwrap_or("-".into()),
                start.elapsed().as_secs_f64(),
            );
            if let Some(c) = t.callback_s {
                figures.push((b.nic.clone(), c));
            } else {
                println!("  {}", b.result.detail);
            }
        }
    }
    for nic in &nics {
        let v: Vec<f64> = figures
            .iter()
            .filter(|f| &f.0 == nic)
            .map(|f| f.1)
            .collect();
        if v.is_empty() {
            println!("{nic}: no successful run");
            continue;
        }
        let min = v.iter().cloned().fold(f64::MAX, f64::min);
        let max = v.iter().cloned().fold(0.0, f64::max);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "{nic}: domain start -> callback over {} run(s): min {min:.2} s, mean {mean:.2} s, max {max:.2} s",
            v.len()
        );
    }
}
