//! `cpu.threads`: the spec calls fewer than 4 threads (or a low clock) not a recommended
//! choice. Model and clock go into the detail.

use super::Host;
use crate::check::CheckResult;

/// The spec: "just <4 threads ... is not a recommended choice".
pub const MIN_THREADS: usize = 4;

pub fn run(host: &Host) -> Vec<CheckResult> {
    let c = &host.cpu;
    // "Intel(R) Xeon(R) CPU E5-2630 v4 @ 2.20GHz" already names its clock.
    let clock = c
        .mhz
        .filter(|_| !c.model.contains("Hz"))
        .map(|m| format!(" @ {:.2} GHz", m / 1000.0))
        .unwrap_or_default();
    let detail = format!("{} threads, {}{clock}", c.threads, c.model);
    let r = if c.threads == 0 {
        CheckResult::fail(
            "cpu.threads",
            "no processor entries in /proc/cpuinfo",
            "is /proc mounted?",
        )
    } else if c.threads < MIN_THREADS {
        CheckResult::warn(
            "cpu.threads",
            detail,
            format!("fewer than {MIN_THREADS} threads: deployments will be slow and time out more often; use a host with more cores"),
        )
    } else {
        CheckResult::pass("cpu.threads", detail)
    };
    vec![r]
}
