//! Capacity for the planned VMs (`--nodes`, default the spec's minimum VM).
//!
//! Ids: `capacity.vcpus`, `capacity.memory`, `capacity.disk`, `capacity.filesystem`.
//! Memory is compared with `MemAvailable` (page cache counts as free) and disk with the
//! free space where the images go. A need up to [`BAND`] above what is there WARNs, more
//! FAILs; `--overcommit` turns those FAILs into WARNs (KSM, swap, ballooning, and thin
//! images that never fill are then the operator's bet).

use virthost_model::desired::IMAGES_DIR;
use virthost_model::hostroot::HostRoot;

use super::Host;
use crate::check::{CheckResult, Status};
use crate::options::{NodeGroup, NodeSize, Options};

/// How far above what is available a need may go before WARN turns into FAIL.
pub const BAND: f64 = 0.20;

const GIB: u64 = 1 << 30;
const GB: u64 = 1_000_000_000;

/// The planned VMs: `--nodes`, or one VM of the spec's minimum size.
pub fn planned(opts: &Options) -> Vec<NodeGroup> {
    if opts.nodes.is_empty() {
        vec![NodeGroup {
            name: "spec-minimum".into(),
            count: 1,
            size: NodeSize::SPEC_MINIMUM,
        }]
    } else {
        opts.nodes.clone()
    }
}

/// `per_vm * count`, summed over the groups; saturating, so a plan bigger than `u64` counts
/// as `u64::MAX` (more than any host has) instead of wrapping around to a small need.
/// `--nodes` bounds every size ([`crate::options::MAX_COUNT`] and friends), but `Options`
/// can be built by hand.
pub fn total(groups: &[NodeGroup], per_vm: impl Fn(&NodeSize) -> u64) -> u64 {
    groups.iter().fold(0u64, |sum, g| {
        sum.saturating_add(per_vm(&g.size).saturating_mul(u64::from(g.count)))
    })
}

fn describe(groups: &[NodeGroup]) -> String {
    let vms = total(groups, |_| 1);
    let list: Vec<String> = groups
        .iter()
        .map(|g| format!("{}x{}", g.count, g.name))
        .collect();
    format!(
        "{vms} VM{} ({})",
        if vms == 1 { "" } else { "s" },
        list.join(", ")
    )
}

/// PASS / WARN within the band / FAIL beyond (WARN with `--overcommit`).
fn judge(need: u64, have: u64, overcommit: bool) -> Status {
    if need <= have {
        Status::Pass
    } else if (need as f64) <= have as f64 * (1.0 + BAND) || overcommit {
        Status::Warn
    } else {
        Status::Fail
    }
}

fn result(id: &str, status: Status, detail: String, hint: String) -> CheckResult {
    match status {
        Status::Pass => CheckResult::pass(id, detail),
        Status::Warn => CheckResult::warn(id, detail, hint),
        Status::Fail => CheckResult::fail(id, detail, hint),
    }
}

fn gib(bytes: u64) -> String {
    if bytes == u64::MAX {
        return "more than 16 EiB".into();
    }
    format!("{:.1} GiB", bytes as f64 / GIB as f64)
}

fn gb(bytes: u64) -> String {
    if bytes == u64::MAX {
        return "more than 18 EB".into();
    }
    format!("{:.0} GB", bytes as f64 / GB as f64)
}

/// `images_dir`: the default pool's path when libvirt (or its pool XML) names one.
pub fn run(opts: &Options, host: &Host, images_dir: Option<String>) -> Vec<CheckResult> {
    let groups = planned(opts);
    let what = describe(&groups);
    vec![
        vcpus(host, &groups, &what),
        memory(opts, host, &groups, &what),
        disk(opts, host, &groups, &what, images_dir.clone()),
        filesystem(host, images_dir),
    ]
}

fn vcpus(host: &Host, groups: &[NodeGroup], what: &str) -> CheckResult {
    let id = "capacity.vcpus";
    let total = total(groups, |s| u64::from(s.vcpus));
    let widest = groups.iter().map(|g| g.size.vcpus).max().unwrap_or(0);
    let threads = host.cpu.threads as u64;
    let detail = format!("{total} vCPUs for {what} on {threads} host threads");
    if threads > 0 && widest as u64 > threads {
        CheckResult::warn(
            id,
            detail,
            format!("a VM with {widest} vCPUs on {threads} threads runs slower than with fewer vCPUs; shrink it or use a bigger host"),
        )
    } else if threads > 0 && total > threads {
        CheckResult::pass(
            id,
            format!(
                "{detail} (overcommitted {:.1}:1, usual for test VMs)",
                total as f64 / threads as f64
            ),
        )
    } else {
        CheckResult::pass(id, detail)
    }
}

/// `(MemTotal, MemAvailable)` in bytes; older kernels without MemAvailable: free + cache.
/// Line by line: a line it cannot read (a field a future kernel formats differently) is
/// skipped, not the whole file; `None` only when `MemTotal` itself is missing or unreadable.
/// Not procfs's `Meminfo`: that fails the whole file on one such line, requires some twenty
/// fields (`SwapCached`, `VmallocChunk`, ...) that old kernels and the fixtures lack, and
/// multiplies by 1024 unchecked (a panic on the huge values `parser_props` feeds).
pub fn meminfo(text: &str) -> Option<(u64, u64)> {
    let mut fields = std::collections::BTreeMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let Some(kb) = v
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        fields.insert(k.trim(), kb.saturating_mul(1024));
    }
    let total = *fields.get("MemTotal")?;
    let avail = match fields.get("MemAvailable") {
        Some(a) => *a,
        // Saturating: values near u64::MAX (a corrupt file) must not overflow.
        None => ["MemFree", "Buffers", "Cached"]
            .iter()
            .filter_map(|k| fields.get(k))
            .fold(0u64, |sum, v| sum.saturating_add(*v)),
    };
    Some((total, avail))
}

fn memory(opts: &Options, host: &Host, groups: &[NodeGroup], what: &str) -> CheckResult {
    let id = "capacity.memory";
    let need = total(groups, |s| s.memory_gib.saturating_mul(GIB));
    let Some((total, avail)) = host.read("/proc/meminfo").as_deref().and_then(meminfo) else {
        return CheckResult::fail(id, "cannot read /proc/meminfo", "is /proc mounted?");
    };
    let status = judge(need, avail, opts.overcommit);
    let detail = format!(
        "{what} need {}, {} available of {} (page cache counts as free)",
        gib(need),
        gib(avail),
        gib(total)
    );
    let hint = if status == Status::Warn && need as f64 <= avail as f64 * (1.0 + BAND) {
        format!("within {:.0}% of what is available: VMs may swap; free memory or plan fewer/smaller VMs", BAND * 100.0)
    } else if opts.overcommit {
        "beyond what is available, accepted with --overcommit: relies on KSM, ballooning or swap"
            .to_string()
    } else {
        "plan fewer or smaller VMs (--nodes NAME:COUNT:VCPUS/MEM_GIB/DISK_GB), add memory, or accept it with --overcommit".to_string()
    };
    result(id, status, detail, hint)
}

/// The nearest existing directory at or above `path` (the images go there or below).
fn existing_ancestor(root: &HostRoot, path: &str) -> String {
    let mut p = std::path::Path::new(path);
    loop {
        if root.path(p).is_dir() || p.parent().is_none() {
            return p.to_string_lossy().into_owned();
        }
        p = p.parent().unwrap_or(std::path::Path::new("/"));
    }
}

fn images_dir(host: &Host, pool: Option<String>) -> (String, String) {
    match pool {
        Some(p) => {
            let at = existing_ancestor(host.probe.root(), &p);
            (at, format!("the default pool's path {p}"))
        }
        None => {
            let at = existing_ancestor(host.probe.root(), IMAGES_DIR);
            (at, format!("{IMAGES_DIR} (no default pool found)"))
        }
    }
}

fn disk(
    opts: &Options,
    host: &Host,
    groups: &[NodeGroup],
    what: &str,
    pool: Option<String>,
) -> CheckResult {
    let id = "capacity.disk";
    let need = total(groups, |s| s.total_disk_gb().saturating_mul(GB));
    let (at, source) = images_dir(host, pool);
    let space = match host.probe.space(&at) {
        Ok(s) => s,
        Err(e) => {
            return CheckResult::fail(
                id,
                format!("statvfs {at}: {e}"),
                "check the images directory",
            )
        }
    };
    let status = judge(need, space.available, opts.overcommit);
    let detail = format!(
        "{what} need {} of disk, {} free on {at} for {source}; images are thin-provisioned (qcow2), so this is the worst case",
        gb(need),
        gb(space.available)
    );
    let hint = if opts.overcommit && status == Status::Warn {
        "accepted with --overcommit: thin images only fill as guests write; watch the free space"
            .to_string()
    } else {
        "free space there, point the default pool at a bigger filesystem, plan smaller disks, or accept thin provisioning with --overcommit".to_string()
    };
    result(id, status, detail, hint)
}

/// The mount (mount point, fs type, options) holding `path`, from `/proc/mounts`.
/// Not procfs's `MountEntry` list: it leaves `\040` (a space in a mount point) escaped, and
/// one short line fails the whole table.
pub fn mount_of(mounts: &str, path: &str) -> Option<(String, String, String)> {
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4).then(|| (unescape(f[1]), f[2].to_string(), f[3].to_string()))
        })
        .filter(|(mp, _, _)| std::path::Path::new(path).starts_with(mp))
        // The last of the longest: later mounts hide earlier ones at the same point.
        .fold(
            None,
            |best: Option<(String, String, String)>, m| match &best {
                Some(b) if b.0.len() > m.0.len() => best,
                _ => Some(m),
            },
        )
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\134", "\\")
}

/// `ftype` of `xfs_info` output (`naming   =version 2   bsize=4096   ascii-ci=0, ftype=1`).
pub fn xfs_ftype(xfs_info: &str) -> Option<u32> {
    xfs_info
        .lines()
        .find(|l| l.trim_start().starts_with("naming"))
        .and_then(|l| l.split("ftype=").nth(1))
        .and_then(|v| v.trim().split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|d| d.parse().ok())
}

fn filesystem(host: &Host, pool: Option<String>) -> CheckResult {
    let id = "capacity.filesystem";
    let (at, _) = images_dir(host, pool);
    let Some((mp, fstype, _opts)) = host.read("/proc/mounts").and_then(|m| mount_of(&m, &at))
    else {
        return CheckResult::warn(
            id,
            format!("no mount for {at} in /proc/mounts"),
            "is /proc mounted?",
        );
    };
    if fstype != "xfs" {
        return CheckResult::pass(id, format!("{at} is on {fstype} (mounted at {mp})"));
    }
    match host.probe.command(&["xfs_info", &mp]) {
        Ok(stdout) => match xfs_ftype(&stdout) {
            Some(1) => CheckResult::pass(id, format!("{at} is on xfs with ftype=1 (mounted at {mp})")),
            Some(n) => CheckResult::fail(
                id,
                format!("{at} is on xfs with ftype={n} (mounted at {mp}): no d_type, which overlayfs (container storage) and tools that trust d_type need"),
                "put the images on a filesystem made with mkfs.xfs -n ftype=1 (the default since xfsprogs 3.2.3), or on ext4",
            ),
            None => CheckResult::warn(id, format!("{at} is on xfs; xfs_info shows no ftype"), "check `xfs_info` by hand: ftype must be 1"),
        },
        Err(e) => CheckResult::warn(
            id,
            format!("{at} is on xfs (mounted at {mp}); ftype unknown: {e}"),
            "install xfsprogs so validate can read ftype (it must be 1)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands() {
        assert_eq!(judge(100, 100, false), Status::Pass);
        assert_eq!(judge(119, 100, false), Status::Warn);
        assert_eq!(judge(121, 100, false), Status::Fail);
        assert_eq!(judge(500, 100, true), Status::Warn);
    }

    #[test]
    fn sums_saturate_instead_of_wrapping() {
        let group = |count, memory_gib| NodeGroup {
            name: "edge".into(),
            count,
            size: NodeSize::new(1, memory_gib, 1),
        };
        // 2^34 GiB = 2^64 bytes: wrapping multiplication made this a need of 0 (or, with
        // 2^34 + 1 GiB, of 1 GiB).
        let huge = [group(1, 1 << 34)];
        assert_eq!(total(&huge, |s| s.memory_gib.saturating_mul(GIB)), u64::MAX);
        let huge = [group(1, (1 << 34) + 1)];
        assert_eq!(total(&huge, |s| s.memory_gib.saturating_mul(GIB)), u64::MAX);
        // The largest groups --nodes accepts, many times: the sum saturates too.
        let max = group(10_000, 64 * 1024);
        let many = vec![max; 40];
        assert_eq!(total(&many, |s| s.memory_gib.saturating_mul(GIB)), u64::MAX);
        assert_eq!(total(&many, |_| 1), 400_000);
        assert_eq!(
            total(&[group(3, 8), group(2, 4)], |s| s.memory_gib),
            3 * 8 + 2 * 4
        );
    }

    #[test]
    fn meminfo_counts_page_cache_as_free() {
        let m = "MemTotal:       24683656 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\nCached: 5 kB\n";
        assert_eq!(meminfo(m), Some((24683656 * 1024, 20000000 * 1024)));
        let old = "MemTotal: 100 kB\nMemFree: 10 kB\nBuffers: 5 kB\nCached: 20 kB\n";
        assert_eq!(meminfo(old), Some((102400, 35 * 1024)));
    }

    #[test]
    fn meminfo_sums_huge_values_without_overflow() {
        // Found by validate/tests/parser_props.rs: free + buffers overflowed u64 (a panic in
        // debug builds, a wrapped-around small "available" in release ones).
        let m = "MemFree:        18014398509481983 kB\nBuffers:            1032 kB\nMemTotal:        8009540 kB";
        assert_eq!(meminfo(m), Some((8009540 * 1024, u64::MAX)));
    }

    #[test]
    fn meminfo_skips_lines_it_cannot_parse() {
        // One odd line (no number, a negative, a word, too big for u64) once made the whole
        // file unreadable: "cannot read /proc/meminfo".
        let m = "MemTotal:       24683656 kB
MemFree:         1000000 kB
                 HugePages_Odd:   n/a
Weird: -5 kB
Empty:
not a field line
                 Huge: 99999999999999999999999 kB
MemAvailable:   20000000 kB
";
        assert_eq!(meminfo(m), Some((24683656 * 1024, 20000000 * 1024)));
        // Without MemAvailable: the readable parts of free + buffers + cache.
        let old = "MemTotal: 100 kB
MemFree: 10 kB
Buffers: ? kB
Cached: 20 kB
";
        assert_eq!(meminfo(old), Some((102400, 30 * 1024)));
        // MemTotal itself unreadable: None (the check FAILs).
        assert_eq!(
            meminfo(
                "MemTotal: lots
MemAvailable: 5 kB
"
            ),
            None
        );
    }

    #[test]
    fn finds_the_longest_mount() {
        let m = "/dev/vda / ext4 rw 0 0\n/dev/vdb /var/lib/libvirt xfs rw 0 0\n/dev/vdc /var/lib/libvirt/images\\040x ext4 rw 0 0\n";
        assert_eq!(mount_of(m, "/var/lib/libvirt/images").unwrap().1, "xfs");
        assert_eq!(mount_of(m, "/home").unwrap().0, "/");
        assert_eq!(
            mount_of(m, "/var/lib/libvirt/images x/a").unwrap().1,
            "ext4"
        );
    }

    #[test]
    fn reads_ftype_from_captured_xfs_info() {
        // Captured with xfsprogs 6.1 (fixtures/validate/xfs_info/README.md).
        let rhel = include_str!("../../../fixtures/validate/xfs_info/xfsprogs6.1-ftype1.txt");
        let old = include_str!("../../../fixtures/validate/xfs_info/xfsprogs6.1-v4-ftype0.txt");
        assert_eq!(xfs_ftype(rhel), Some(1));
        assert_eq!(xfs_ftype(old), Some(0));
        assert_eq!(xfs_ftype("garbage"), None);
    }
}
