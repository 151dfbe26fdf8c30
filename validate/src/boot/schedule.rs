//! Whether the boot modes run side by side: each TCG (or KVM) test domain keeps one CPU
//! busy while it boots, so two at once are only faster when the host has a CPU for each
//! and the memory for both. Otherwise they run one after the other, as they always did.

use super::domain::MEMORY_MIB;

/// What QEMU itself may need beside a test domain's memory. Measured here (TCG, sampled
/// every 0.25 s through a whole proof) a test domain's QEMU peaked at 48 MiB resident (BIOS)
/// and 131 MiB (UEFI): the guest touches little of its 256 MiB. The budget is the worst
/// case, a guest that touches all of it and QEMU's own beside it.
pub const QEMU_OVERHEAD_MIB: u64 = 256;

/// How the boot modes (and the power proof beside them) run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Schedule {
    pub side_by_side: bool,
    /// Why, for the progress line and the report: `2 CPUs, 23597 MiB available ...`.
    pub why: String,
}

/// Side by side when more than one mode boots, `sequential` was not asked for, `cpus` >= the
/// number of modes and `available_mib` holds a test domain per mode.
pub fn decide(modes: usize, cpus: usize, available_mib: Option<u64>, sequential: bool) -> Schedule {
    let need = modes as u64 * (MEMORY_MIB + QEMU_OVERHEAD_MIB);
    let mem = match available_mib {
        Some(m) => format!("{m} MiB available"),
        None => "available memory unknown".to_string(),
    };
    let facts =
        format!("{cpus} CPU(s), {mem}; {modes} test domains need {modes} CPUs and {need} MiB");
    let (side_by_side, why) = if modes < 2 {
        (false, "one boot mode".to_string())
    } else if sequential {
        (false, "--sequential".to_string())
    } else {
        let enough = cpus >= modes && available_mib.is_some_and(|m| m >= need);
        (enough, facts)
    };
    Schedule { side_by_side, why }
}

/// [`decide`] on this host: `available_parallelism` (cgroup quota and affinity included)
/// and `/proc/meminfo`'s MemAvailable.
pub fn on_this_host(modes: usize, sequential: bool) -> Schedule {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .as_deref()
        .and_then(crate::checks::capacity::meminfo)
        .map(|(_, avail)| avail >> 20);
    decide(modes, cpus, available, sequential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_by_side_only_with_a_cpu_and_the_memory_per_mode() {
        let yes = decide(2, 2, Some(4096), false);
        assert!(yes.side_by_side, "{yes:?}");
        assert_eq!(
            yes.why,
            "2 CPU(s), 4096 MiB available; 2 test domains need 2 CPUs and 1024 MiB"
        );
        assert!(!decide(2, 1, Some(4096), false).side_by_side);
        assert!(!decide(2, 2, Some(1000), false).side_by_side);
        assert!(!decide(2, 2, None, false).side_by_side);
        assert!(!decide(2, 8, Some(4096), true).side_by_side);
        assert_eq!(decide(2, 8, Some(4096), true).why, "--sequential");
        assert!(!decide(1, 8, Some(4096), false).side_by_side);
    }
}
