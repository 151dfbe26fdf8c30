//! Telling a hung test domain from a slow one.
//!
//! A slow boot still prints: iPXE writes a dot a second while it waits for DHCP, and the
//! longest quiet gap measured in healthy boots was 4.4 s (a TCG domain inside a TCG VM on a
//! loaded host; docs/e2e.md, docs/boot-proof.md). A hung domain goes silent
//! while it keeps its vCPU busy. That is what nested test domains in the e2e VM did (once
//! in 41 boots there, and once in four CI runs; docs/e2e.md): the firmware spun in its
//! serial-output loop, in the middle of a line, with the vCPU thread at 100 %. CPU use
//! alone tells nothing (a healthy nested boot keeps 0.6-0.9 of a CPU busy); it only keeps
//! a domain that gets no CPU at all on an overloaded host from being called hung.

use std::time::{Duration, Instant};

use crate::options::DomainType;

/// Console silence after which a busy kvm domain counts as hung: healthy nested kvm boots
/// were never quiet for more than 2.6 s.
pub const SILENCE: Duration = Duration::from_secs(15);
/// The same for a qemu (TCG) domain, whose pace follows the host's spare CPU: a healthy one
/// inside the TCG e2e VM, with that VM's other vCPU spinning and another VM busy on the
/// same two cores, was once quiet for 14.3 s (25 boots, docs/e2e.md).
pub const SILENCE_TCG: Duration = Duration::from_secs(45);

/// The console silence after which a busy domain of type `dtype` counts as hung.
pub fn silence(dtype: DomainType) -> Duration {
    match dtype {
        DomainType::Kvm => SILENCE,
        DomainType::Qemu => SILENCE_TCG,
    }
}

/// Share of one CPU the domain must have used during the silence to count as hung. A
/// spinning TCG vCPU got 0.7 of a CPU on a loaded 2-core host here; an iPXE waiting for
/// the network halts between polls.
pub const BUSY: f64 = 0.5;

/// How often the domain's CPU time is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The domain's CPU time (virDomainGetInfo's `cpuTime`, all its threads) over time.
#[derive(Debug, Default)]
pub struct CpuSamples {
    samples: Vec<(Instant, u64)>,
}

impl CpuSamples {
    /// Whether a new sample is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.samples
            .last()
            .is_none_or(|(at, _)| now.saturating_duration_since(*at) >= SAMPLE_EVERY)
    }

    /// Records the domain's total CPU time `cpu_ns` seen at `at`.
    pub fn push(&mut self, at: Instant, cpu_ns: u64) {
        self.samples.push((at, cpu_ns));
    }

    /// Share of one CPU used from the first sample at or after `since` to the last sample,
    /// and the seconds that covers; `None` with fewer than two samples in that window.
    pub fn busy_since(&self, since: Instant) -> Option<(f64, f64)> {
        let first = self.samples.iter().find(|(at, _)| *at >= since)?;
        let last = self.samples.last()?;
        let wall = last.0.saturating_duration_since(first.0).as_secs_f64();
        if wall <= 0.0 {
            return None;
        }
        let cpu = last.1.saturating_sub(first.1) as f64 / 1e9;
        Some((cpu / wall, wall))
    }
}

/// A domain that stopped printing while it kept its vCPU busy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stall {
    /// Seconds since the console last changed.
    pub silent_s: f64,
    /// Share of one CPU the domain used while silent.
    pub busy: f64,
}

/// Whether the domain hangs at `now`: its console has not changed since `last_output`
/// for at least `silence` ([`silence`] of its type), and over (almost all of) that time it
/// used at least [`BUSY`] of a CPU.
pub fn stalled(
    last_output: Instant,
    now: Instant,
    cpu: &CpuSamples,
    silence: Duration,
) -> Option<Stall> {
    let since_output = now.saturating_duration_since(last_output);
    if since_output < silence {
        return None;
    }
    let (busy, covered) = cpu.busy_since(last_output)?;
    // The samples must span most of the silence, not one second of it.
    if covered < silence.as_secs_f64() - 2.0 * SAMPLE_EVERY.as_secs_f64() || busy < BUSY {
        return None;
    }
    Some(Stall {
        silent_s: since_output.as_secs_f64(),
        busy,
    })
}

/// The hint for a hung test domain; `nrips` is `kvm_amd`'s `nrips` parameter on this host
/// (`virthost_model::facts::module_flag`). Without NRIP-save (a CPU that QEMU's TCG emulates, for
/// one) KVM decodes every intercepted instruction itself to step over it; the e2e VM's
/// nested domains hung there.
pub fn hint(dtype: DomainType, nrips: Option<bool>) -> String {
    let base = "the test domain's vCPU kept running while it printed nothing: the hypervisor \
                did not run this VM correctly (not a network problem)";
    match (dtype, nrips) {
        (DomainType::Kvm, Some(false)) => format!(
            "{base}. kvm_amd runs with nrips=0 (this CPU has no NRIP-save, as in a VM whose \
             hypervisor is QEMU TCG): nested domains hung like this in about 1 of 40 boots \
             there; run validate again, and deploy onto hosts with hardware virtualization"
        ),
        (DomainType::Kvm, _) => format!(
            "{base}. Run validate again; if it recurs, check the KVM module's messages (`dmesg`) \
             and, on a nested host, the outer hypervisor"
        ),
        (DomainType::Qemu, _) => format!(
            "{base}. A qemu (TCG) domain: run validate again; if it recurs, check QEMU's log \
             (/var/log/libvirt/qemu/) and the QEMU version"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(t0: Instant, per_s: &[(u64, f64)]) -> CpuSamples {
        let mut c = CpuSamples::default();
        for (s, cpu) in per_s {
            c.push(t0 + Duration::from_secs(*s), (*cpu * 1e9) as u64);
        }
        c
    }

    #[test]
    fn silent_and_busy_is_a_stall() {
        let t0 = Instant::now();
        // Output last changed at 10 s; one CPU-second per second since.
        let c = samples(t0, &(0..=30).map(|s| (s, s as f64)).collect::<Vec<_>>());
        let s = stalled(
            t0 + Duration::from_secs(10),
            t0 + Duration::from_secs(30),
            &c,
            SILENCE,
        )
        .expect("stall");
        assert!((s.silent_s - 20.0).abs() < 1e-9);
        assert!((s.busy - 1.0).abs() < 1e-9);
        // The same 20 s are not enough for a qemu (TCG) domain, whose pace follows the host.
        let tcg = silence(DomainType::Qemu);
        assert!(tcg > Duration::from_secs(20) && silence(DomainType::Kvm) == SILENCE);
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(stalled(at(10), at(30), &c, tcg), None);
        let long = samples(t0, &(0..=70).map(|s| (s, s as f64)).collect::<Vec<_>>());
        let s = stalled(at(10), at(10) + tcg, &long, tcg).expect("stall after the TCG silence");
        assert!((s.silent_s - tcg.as_secs_f64()).abs() < 1e-9);
    }

    #[test]
    fn silent_but_idle_is_only_slow() {
        let t0 = Instant::now();
        // 0.2 CPU-seconds per second: a halted firmware waiting for a timer.
        let c = samples(
            t0,
            &(0..=30).map(|s| (s, s as f64 * 0.2)).collect::<Vec<_>>(),
        );
        assert_eq!(
            stalled(
                t0 + Duration::from_secs(10),
                t0 + Duration::from_secs(30),
                &c,
                SILENCE
            ),
            None
        );
    }

    #[test]
    fn busy_but_not_silent_long_enough_is_no_stall() {
        let t0 = Instant::now();
        let c = samples(t0, &(0..=30).map(|s| (s, s as f64)).collect::<Vec<_>>());
        assert_eq!(
            stalled(
                t0 + Duration::from_secs(20),
                t0 + Duration::from_secs(30),
                &c,
                SILENCE
            ),
            None
        );
    }

    #[test]
    fn too_few_samples_in_the_silence_decide_nothing() {
        let t0 = Instant::now();
        // Sampling stopped at 12 s (e.g. libvirt did not answer): 2 s of data is not enough.
        let c = samples(t0, &[(0, 0.0), (10, 10.0), (11, 11.0), (12, 12.0)]);
        assert_eq!(
            stalled(
                t0 + Duration::from_secs(10),
                t0 + Duration::from_secs(30),
                &c,
                SILENCE
            ),
            None
        );
    }

    #[test]
    fn samples_are_due_once_a_second() {
        let t0 = Instant::now();
        let mut c = CpuSamples::default();
        assert!(c.due(t0));
        c.push(t0, 0);
        assert!(!c.due(t0 + Duration::from_millis(500)));
        assert!(c.due(t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn the_hint_names_nrips_only_when_it_is_off() {
        assert!(hint(DomainType::Kvm, Some(false)).contains("nrips=0"));
        assert!(!hint(DomainType::Kvm, Some(true)).contains("nrips=0"));
        assert!(!hint(DomainType::Kvm, None).contains("nrips=0"));
        // KVM's NRIP-save has nothing to do with a TCG domain, even where kvm_amd is loaded.
        let tcg = hint(DomainType::Qemu, Some(false));
        assert!(
            !tcg.contains("nrips") && tcg.contains("qemu (TCG)"),
            "{tcg}"
        );
    }
}
