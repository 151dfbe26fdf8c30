//! Property tests: every `bootstrap` parser that reads bytes it did not write survives
//! arbitrary input: no panic, no hang, bounded time (each call runs under a watchdog).
//!
//! Covered (inputs: arbitrary strings, lossy UTF-8 of arbitrary bytes, and real fixture text
//! from `fixtures/` mutated: cut at random points, random bytes spliced in, lines
//! duplicated, dropped and swapped, the parser's own tokens mixed with garbage):
//!
//! - `os::OsRelease::parse` (+ `OsRelease::version`, `os::Platform::detect`): os-release
//! - `cpu::CpuInfo::parse`: `/proc/cpuinfo`
//! - `ipxe::build_date`: iPXE ROM package versions
//! - `desired::PolkitBackend::for_version`: polkit package versions
//! - `pkg::parse_rpm_qa`, `parse_dpkg_query`, `parse_dnf_repoquery`, `parse_yum_list`,
//!   `parse_apt_cache_policy`, and `pkg::FixturePackageDb` over them
//! - `virsh::parse_pool_info`, `parse_pool_xml`, `classify`, `reason`, `same_path`, and the
//!   `pool` step's check over arbitrary virsh answers (`steps::pool::PoolStep`)
//! - `accounts::parse_passwd`, `parse_group`, `Accounts::parse`, `Accounts::read`
//! - `facts`: `KvmModules::read`, `module_flag`, `nested_param`, `DevNode::read` (the
//!   captured stat line), `group_gid`, `group_name`, `process_name`, `processes`,
//!   `running_guests`, `is_running`, `distro_kvm_udev_rule`, `Selinux::read`,
//!   `Facts::platform`, `Facts::gather`, over files laid out in a temporary `HostRoot`
//! - `atomic::missing_lines`, `append_lines` (existing file text)
//! - the whole check-mode plan (`plan::plan` + `step::run`) of a copied fixture host with
//!   one host file (or captured virsh / package-manager answer) mutated: every step's
//!   check reads the host through the parsers above; a caught panic ("internal error")
//!   fails the property.
//!
//! Not here: `sshkey` (SSH key files and `authorized_keys` lines, `KeysStep::missing`) has
//! its own property tests in `model/src/sshkey.rs`.
//!
//! `PROPTEST_CASES=N` raises every case count (deeper runs); `PROPTEST_RNG_SEED=N` replays a
//! run.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use proptest::prelude::*;

use bootstrap::accounts::{parse_group, parse_passwd, Accounts};
use bootstrap::cmd::CmdError;
use bootstrap::cpu::{CpuInfo, VirtExtension};
use bootstrap::desired::PolkitBackend;
use bootstrap::facts::{self, DevNode, Facts, KvmModules, Selinux};
use bootstrap::hostroot::HostRoot;
use bootstrap::ipxe::build_date;
use bootstrap::os::{Family, OsRelease, Platform};
use bootstrap::pkg::{self, FixturePackageDb, PackageDb};
use bootstrap::step::{Check, Mode, Quiet, Step};
use bootstrap::steps::pool::PoolStep;
use bootstrap::virsh::{self, Virsh};

// The shared machinery (watchdog, configuration, fixture seeds, generators) is
// `virthost_testkit::props`.
use virthost_testkit::props::*;

// ---------------------------------------------------------------------------------------
// Tokens of each format.
// ---------------------------------------------------------------------------------------

#[rustfmt::skip]
const OS_WORDS: &[&str] = &[
    "ID", "ID_LIKE", "VERSION_ID", "NAME", "PRETTY_NAME", "VERSION", "=", "=\"", "\"", "'",
    "rhel", "centos", "rocky", "almalinux", "fedora", "debian", "ubuntu", "Stream", "7", "7.4",
    "8.10", "9", "12", "24.04", "40", ".", "..", "7.", ".4", "\\\"", "\\$", "\\\\",
];

#[rustfmt::skip]
const CPU_WORDS: &[&str] = &[
    "processor", "vendor_id", "model name", "cpu MHz", "flags", ":", "\t: ", "GenuineIntel",
    "AuthenticAMD", "vmx", "svm", "fpu", "2450.000", "NaN", "inf", "-0", "1e400",
];

#[rustfmt::skip]
const VERSION_WORDS: &[&str] = &[
    "20180825", "20130517", "19941231", "21010101", "20161301", "20160132", "20160100",
    "1.21.1", "1.20.1", "1.0.0", "1:", "0:", "+git-", "-3.git133f4c47.el8", "~", "-", "+", ".",
    "0.105", "0.106", "0.112", "124", "122-3", "ubuntu", "2016",
];

#[rustfmt::skip]
const PKG_WORDS: &[&str] = &[
    "\t", "(none):", "0:", "1:", "ii", "iU", "iF", "iH", "iW", "it", "iiR", "rc", "un", "hi",
    "libvirt", "qemu-kvm", "ipxe-roms-qemu", "ipxe-qemu", "polkitd", ".x86_64", ".noarch",
    ".i686", "Available Packages", "Installed Packages", "Loaded plugins: ", "Candidate:",
    "Candidate: (none)", "Installed:", "Version table:", "  ", "     ", "500", "***",
    "libvirt-daemon-system:", ":", "9.0.0-4+deb12u2", "rhel-7-server-rpms",
];

#[rustfmt::skip]
const VIRSH_WORDS: &[&str] = &[
    "Name:", "UUID:", "State:", "Persistent:", "Autostart:", "Capacity:", "running", "inactive",
    "building", "degraded", "yes", "no", "no autostart", "unknown", ":", "<pool",
    "<pool type='dir'>", "type=", "type='", "type=\"", "'", "\"", "<target>", "</target>",
    "<path>", "</path>", "<path/>", "<path ", "<target ", "/>", ">", "<", "&amp;", "&lt;",
    "&quot;", "&apos;", "&gt;", "&", "<pool>", "<pooltype", "error: ",
    "failed to connect to the hypervisor", "Storage pool not found",
    "no storage pool with matching name",
];

#[rustfmt::skip]
const ACCOUNT_WORDS: &[&str] = &[
    ":", "::", ":x:", "root", "stack", "kvm", "libvirt", "qemu", "0", "1000", "-1",
    "4294967295", "4294967296", ",", ",,", "+", "-", "#", "/home/stack", "/bin/bash", "x",
];

#[rustfmt::skip]
const FACT_WORDS: &[&str] = &[
    "Y", "N", "y", "1", "0", "\n", " ", "0 0 600", "0 36 660", "0 36 0660", "0 36 9999",
    "qemu-kvm", "qemu-system-x86_64", "libvirtd", "virtqemud", "kvm", "KERNEL==\"kvm\"",
    "GROUP=\"kvm\"", "MODE=\"0660\"", ", ", "#", "kvm:x:36:", "kvm:x:", "::",
];

// ---------------------------------------------------------------------------------------
// Pure parsers.
// ---------------------------------------------------------------------------------------

fn check_os_release(text: String) -> Result<(), TestCaseError> {
    let os = OsRelease::parse(&text);
    for f in [&os.id, &os.version_id, &os.name, &os.pretty_name] {
        no_newline("an os-release field", f)?;
    }
    prop_assert_eq!(&os.id, &os.id.to_ascii_lowercase());
    for like in &os.id_like {
        prop_assert!(!like.is_empty() && !like.contains(char::is_whitespace));
    }
    let _ = os.version();
    let _ = Platform::detect(&os, None);
    for f in [Family::Yum, Family::Dnf, Family::Apt] {
        // An override always yields a (best-effort) platform.
        let p = Platform::detect(&os, Some(f));
        prop_assert!(p.is_ok(), "--os-family {} refused: {:?}", f, p);
    }
    Ok(())
}

#[test]
fn os_release_fixtures_parse_and_are_supported() {
    for text in host_files("etc/os-release") {
        let os = OsRelease::parse(&text);
        assert!(
            Platform::detect(&os, None).is_ok(),
            "fixture os-release not supported: {text}"
        );
    }
}

fn check_cpuinfo(text: String) -> Result<(), TestCaseError> {
    let c = CpuInfo::parse(&text);
    no_newline("the CPU model", &c.model)?;
    prop_assert!(c.threads <= text.lines().count());
    if let Some(v) = c.virt {
        let flag = match v {
            VirtExtension::Vmx => "vmx",
            VirtExtension::Svm => "svm",
        };
        prop_assert!(text.contains(flag));
    }
    Ok(())
}

#[test]
fn cpuinfo_fixtures_have_processors() {
    for text in host_files("proc/cpuinfo") {
        let c = CpuInfo::parse(&text);
        assert!(c.threads > 0 && c.model != "unknown", "{c:?}");
    }
}

fn check_build_date(v: String) -> Result<(), TestCaseError> {
    if let Some(d) = build_date(&v) {
        prop_assert!((1995..=2100).contains(&d.year), "{d:?}");
        prop_assert!(
            (1..=12).contains(&d.month) && (1..=31).contains(&d.day),
            "{d:?}"
        );
        prop_assert_eq!(d.to_string().len(), 10);
    }
    Ok(())
}

/// Version-like strings: digit runs of every length near 8, separators, epochs.
fn version_like() -> BoxedStrategy<String> {
    let part = prop_oneof![
        token(VERSION_WORDS),
        (0u32..100_000_000).prop_map(|n| n.to_string()),
        "[0-9]{7,9}",
        "[0-9a-z.+~:-]{0,12}",
    ];
    prop::collection::vec(part, 0..6)
        .prop_map(|p| p.concat())
        .boxed()
}

/// Versions of the fixtures' installed packages (the second field of each line).
fn installed_versions() -> Vec<String> {
    let mut v: Vec<String> = host_files("pkg/installed.txt")
        .iter()
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.split('\t').nth(1).map(String::from))
                .collect::<Vec<_>>()
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

fn check_polkit(v: String) -> Result<(), TestCaseError> {
    let b = PolkitBackend::for_version(&v);
    prop_assert!(!b.path().is_empty());
    Ok(())
}

fn check_pkg(text: String) -> Result<(), TestCaseError> {
    let rpm = pkg::parse_rpm_qa(&text);
    for (n, v) in &rpm {
        no_newline("an rpm name", n)?;
        no_newline("an rpm version", v)?;
        prop_assert!(!n.contains('\t'));
    }
    let dpkg = pkg::parse_dpkg_query(&text);
    for (n, v) in &dpkg.installed {
        no_newline("a dpkg name", n)?;
        no_newline("a dpkg version", v)?;
    }
    for n in &dpkg.interrupted {
        no_newline("an interrupted dpkg name", n)?;
    }
    for avail in [
        pkg::parse_dnf_repoquery(&text),
        pkg::parse_yum_list(&text),
        pkg::parse_apt_cache_policy(&text),
    ] {
        for (n, v) in &avail {
            no_newline("an available name", n)?;
            no_newline("an available version", v)?;
        }
    }
    // The fixture database over the same text, as every family reads it.
    for family in [Family::Yum, Family::Dnf, Family::Apt] {
        let db = FixturePackageDb::new(family, &text, &text);
        let names = [
            "libvirt",
            "qemu-kvm",
            "ipxe-roms-qemu",
            "ipxe-qemu",
            "polkitd",
            "",
        ];
        let installed = db.installed(&names).unwrap();
        prop_assert!(installed.keys().all(|k| names.contains(&k.as_str())));
        let _ = db.available(&names).unwrap();
        let _ = db.interrupted().unwrap();
        db.install(&names, &Quiet).ok();
        db.upgrade(&names, &Quiet).ok();
    }
    Ok(())
}

#[test]
fn package_fixtures_parse() {
    for host in hosts() {
        let Ok(os) = std::fs::read_to_string(host.join("etc/os-release")) else {
            continue;
        };
        let family = Platform::detect(&OsRelease::parse(&os), None)
            .unwrap()
            .family;
        let installed = std::fs::read_to_string(host.join("pkg/installed.txt")).unwrap();
        let n = if family.is_rpm() {
            pkg::parse_rpm_qa(&installed).len()
        } else {
            pkg::parse_dpkg_query(&installed).installed.len()
        };
        assert!(n > 0, "{}: nothing installed", host.display());
        if let Ok(avail) = std::fs::read_to_string(host.join("pkg/available.txt")) {
            let a = match family {
                Family::Dnf => pkg::parse_dnf_repoquery(&avail),
                Family::Yum => pkg::parse_yum_list(&avail),
                Family::Apt => pkg::parse_apt_cache_policy(&avail),
            };
            assert!(
                !a.is_empty() || avail.trim().is_empty(),
                "{}: nothing available",
                host.display()
            );
        }
    }
}

fn virsh_seeds() -> Vec<String> {
    let dir = "virsh/libvirt-9.0";
    let names = [
        "pool-info-running.txt",
        "pool-info-defined.txt",
        "pool-info-transient.txt",
        "pool-info-inactive-autostart.txt",
        "pool-info-running-autostart.txt",
        "pool-dumpxml-running.xml",
        "pool-dumpxml-defined.xml",
        "pool-dumpxml-transient.xml",
        "pool-dumpxml-defined-inactive.xml",
        "pool-info-missing.stderr",
        "pool-info-unreachable.stderr",
        "pool-info-nonroot.stderr",
        "pool-dumpxml-missing.stderr",
        "pool-define-as-conflict.stderr",
    ];
    let rels: Vec<String> = names.iter().map(|n| format!("{dir}/{n}")).collect();
    let rels: Vec<&str> = rels.iter().map(String::as_str).collect();
    let mut v = fixture_files(&rels);
    v.extend(fixture_files(&["validate/libvirt-9.0/pool-dir.xml"]));
    v
}

fn failed(stderr: &str) -> CmdError {
    CmdError::Failed {
        cmdline: "virsh -c qemu:///system pool-info default".into(),
        status: ExitStatus::from_raw(1 << 8),
        stderr: stderr.into(),
    }
}

fn check_virsh(text: String) -> Result<(), TestCaseError> {
    if let Ok(info) = virsh::parse_pool_info(&text) {
        no_newline("the pool name", &info.name)?;
    }
    if let Ok(def) = virsh::parse_pool_xml(&text) {
        prop_assert!(def.path.as_deref() != Some(""));
    }
    let e = failed(&text);
    let _ = virsh::classify(&e);
    no_newline("virsh's reason", &virsh::reason(&e))?;
    let spawn = CmdError::Spawn {
        cmdline: "virsh".into(),
        error: io::Error::other(text.clone()),
    };
    let _ = virsh::classify(&spawn);
    let _ = virsh::reason(&spawn);
    // Path comparison: reflexive and symmetric on whatever paths libvirt prints.
    let mut halves = text.splitn(2, '\n');
    let (a, b) = (halves.next().unwrap_or(""), halves.next().unwrap_or(""));
    prop_assert!(virsh::same_path(a, a));
    prop_assert_eq!(virsh::same_path(a, b), virsh::same_path(b, a));
    Ok(())
}

#[test]
fn virsh_captures_parse() {
    for name in [
        "pool-info-running.txt",
        "pool-info-defined.txt",
        "pool-info-transient.txt",
        "pool-info-inactive-autostart.txt",
        "pool-info-running-autostart.txt",
    ] {
        let t = &fixture_files(&[&format!("virsh/libvirt-9.0/{name}")])[0];
        let info = virsh::parse_pool_info(t).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(!info.name.is_empty(), "{name}");
    }
    for name in [
        "pool-dumpxml-running.xml",
        "pool-dumpxml-defined.xml",
        "pool-dumpxml-transient.xml",
        "pool-dumpxml-defined-inactive.xml",
    ] {
        let t = &fixture_files(&[&format!("virsh/libvirt-9.0/{name}")])[0];
        let def = virsh::parse_pool_xml(t).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(def.kind, "dir", "{name}");
        assert!(def.path.is_some(), "{name}");
    }
}

/// virsh answering each command from a table: stdout, a failure with that stderr, or not
/// installed.
#[derive(Debug, Clone)]
enum Answer {
    Out(String),
    Fail(String),
    Missing,
}

struct TableVirsh(BTreeMap<&'static str, Answer>);

impl Virsh for TableVirsh {
    fn run(&self, args: &[&str]) -> Result<String, CmdError> {
        match self.0.get(args[0]) {
            Some(Answer::Out(s)) => Ok(s.clone()),
            Some(Answer::Fail(s)) => Err(failed(s)),
            Some(Answer::Missing) | None => Err(CmdError::Spawn {
                cmdline: self.cmdline(args),
                error: io::Error::from(io::ErrorKind::NotFound),
            }),
        }
    }
    fn cmdline(&self, args: &[&str]) -> String {
        format!("virsh {}", args.join(" "))
    }
}

fn answer() -> BoxedStrategy<Answer> {
    let seeds = virsh_seeds();
    prop_oneof![
        // Lightly mutated captures: the step gets past the parsers to its decisions.
        3 => mutated(seeds.clone(), VIRSH_WORDS, TEXT_MAX, 0..3).prop_map(Answer::Out),
        3 => input(seeds.clone(), VIRSH_WORDS, TEXT_MAX).prop_map(Answer::Out),
        2 => input(seeds, VIRSH_WORDS, TEXT_MAX).prop_map(Answer::Fail),
        1 => Just(Answer::Missing),
    ]
    .boxed()
}

fn check_accounts(passwd: String, group: String) -> Result<(), TestCaseError> {
    for u in parse_passwd(&passwd) {
        prop_assert!(!u.name.is_empty());
        for f in [&u.name, &u.home, &u.shell] {
            no_newline("a passwd field", f)?;
            prop_assert!(!f.contains(':'));
        }
    }
    for g in parse_group(&group) {
        prop_assert!(!g.name.is_empty() && !g.name.contains(':'));
        no_newline("a group name", &g.name)?;
        for m in &g.members {
            prop_assert!(!m.is_empty() && !m.contains(',') && !m.contains(':'));
            no_newline("a group member", m)?;
        }
    }
    let a = Accounts::parse(&passwd, &group);
    for name in ["root", "stack", "kvm", ""] {
        let _ = a.user(name);
        let _ = a.group(name);
        let _ = a.in_group(name, "kvm");
    }
    if let Some(g) = a.groups.first() {
        prop_assert!(a.group_by_gid(g.gid).is_some());
    }
    Ok(())
}

#[test]
fn account_fixtures_parse() {
    for text in host_files("etc/passwd") {
        let users = parse_passwd(&text);
        assert!(
            users.iter().any(|u| u.name == "root" && u.uid == 0),
            "{text}"
        );
    }
    for text in host_files("etc/group") {
        assert!(!parse_group(&text).is_empty(), "{text}");
    }
}

fn check_lines(existing: String, wanted: Vec<String>) -> Result<(), TestCaseError> {
    let missing = bootstrap::atomic::missing_lines(&existing, &wanted, |a, b| a.trim() == b.trim());
    for m in &missing {
        prop_assert!(wanted.iter().any(|w| w == m));
    }
    let add: Vec<&str> = missing.to_vec();
    let out = bootstrap::atomic::append_lines(&existing, &add);
    prop_assert!(
        out.starts_with(&existing),
        "existing text not kept verbatim"
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn os_release_never_panics(text in input(host_files("etc/os-release"), OS_WORDS, TEXT_MAX)) {
        bounded(move || check_os_release(text))?;
    }

    #[test]
    fn cpuinfo_never_panics(text in input(host_files("proc/cpuinfo"), CPU_WORDS, TEXT_MAX)) {
        bounded(move || check_cpuinfo(text))?;
    }

    #[test]
    fn ipxe_build_date_never_panics(v in prop_oneof![
        version_like(),
        input(installed_versions(), VERSION_WORDS, 256),
    ]) {
        bounded(move || check_build_date(v))?;
    }

    #[test]
    fn polkit_for_version_never_panics(v in prop_oneof![
        version_like(),
        input(installed_versions(), VERSION_WORDS, 256),
    ]) {
        bounded(move || check_polkit(v))?;
    }

    #[test]
    fn package_manager_output_never_panics(text in input(
        [host_files("pkg/installed.txt"), host_files("pkg/available.txt")].concat(),
        PKG_WORDS,
        TEXT_MAX,
    )) {
        bounded(move || check_pkg(text))?;
    }

    #[test]
    fn virsh_output_never_panics(text in input(virsh_seeds(), VIRSH_WORDS, XML_MAX)) {
        bounded(move || check_virsh(text))?;
    }

    #[test]
    fn passwd_and_group_never_panic(
        passwd in input(host_files("etc/passwd"), ACCOUNT_WORDS, TEXT_MAX),
        group in input(host_files("etc/group"), ACCOUNT_WORDS, TEXT_MAX),
    ) {
        bounded(move || check_accounts(passwd, group))?;
    }

    #[test]
    fn line_merging_keeps_existing_text(
        existing in input(host_files("etc/group"), ACCOUNT_WORDS, TEXT_MAX),
        wanted in prop::collection::vec(token(ACCOUNT_WORDS), 0..6),
    ) {
        bounded(move || check_lines(existing, wanted))?;
    }
}

// ---------------------------------------------------------------------------------------
// Readers of host files, over a temporary HostRoot.
// ---------------------------------------------------------------------------------------

/// Host files for the `facts` readers, each possibly absent.
#[derive(Debug, Clone)]
struct FactFiles {
    files: Vec<HostFile>,
}

/// Where each fact file goes and what seeds it.
fn fact_specs() -> Vec<(&'static str, Vec<String>)> {
    let udev = host_files("usr/lib/udev/rules.d/50-udev-default.rules");
    vec![
        (
            "/sys/module/kvm_intel/parameters/nested",
            vec!["Y\n".into(), "N\n".into(), "1\n".into()],
        ),
        (
            "/sys/module/kvm_amd/parameters/nested",
            vec!["1\n".into(), "0\n".into()],
        ),
        ("/sys/module/kvm/parameters/ignore_msrs", vec!["N\n".into()]),
        ("/dev/kvm", host_files("dev/kvm")),
        ("/etc/group", host_files("etc/group")),
        ("/etc/passwd", host_files("etc/passwd")),
        ("/etc/os-release", host_files("etc/os-release")),
        ("/proc/cpuinfo", host_files("proc/cpuinfo")),
        (
            "/proc/sys/kernel/hostname",
            host_files("proc/sys/kernel/hostname"),
        ),
        ("/proc/1/comm", host_files("proc/1/comm")),
        (
            "/proc/4077/comm",
            vec!["qemu-kvm\n".into(), "qemu-system-x86\n".into()],
        ),
        (
            "/proc/12/comm",
            vec!["libvirtd\n".into(), "virtqemud\n".into()],
        ),
        ("/sys/fs/selinux/enforce", vec!["1".into(), "0".into()]),
        ("/usr/lib/udev/rules.d/50-udev-default.rules", udev.clone()),
        ("/etc/udev/rules.d/65-kvm.rules", udev),
        ("/pkg/installed.txt", host_files("pkg/installed.txt")),
        ("/pkg/available.txt", host_files("pkg/available.txt")),
    ]
}

fn fact_files() -> BoxedStrategy<FactFiles> {
    let parts: Vec<BoxedStrategy<HostFile>> = fact_specs()
        .into_iter()
        .map(|(path, seeds)| {
            prop::option::weighted(0.8, file_bytes(seeds, FACT_WORDS))
                .prop_map(move |c| (path, c))
                .boxed()
        })
        .collect();
    parts.prop_map(|files| FactFiles { files }).boxed()
}

fn lay_out(dir: &Path, files: &[HostFile]) {
    let root = HostRoot::at(dir);
    for (path, content) in files {
        if let Some(c) = content {
            let p = root.path(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, c).unwrap();
        }
    }
}

fn check_facts(f: FactFiles) -> Result<(), TestCaseError> {
    let dir = scratch();
    lay_out(dir.path(), &f.files);
    let root = HostRoot::at(dir.path());
    for ext in [None, Some(VirtExtension::Vmx), Some(VirtExtension::Svm)] {
        let _ = KvmModules::read(&root, ext);
    }
    let _ = facts::nested_param(&root, "kvm_intel");
    let _ = facts::module_flag(&root, "kvm", "ignore_msrs");
    let _ = facts::module_flag(&root, "kvm_hygon", "nested");
    if let Ok(Some(d)) = DevNode::read(&root, "/dev/kvm") {
        let _ = d.usable_by_group(36);
    }
    let _ = DevNode::read(&root, "/dev/absent");
    if let Ok(Some(gid)) = facts::group_gid(&root, "kvm") {
        let _ = facts::group_name(&root, gid);
    }
    let _ = facts::group_name(&root, 0);
    for pid in [1, 12, 4077, 99] {
        if let Some(c) = facts::process_name(&root, pid) {
            prop_assert!(!c.ends_with('\n'));
        }
    }
    let all = facts::processes(&root, |_| true);
    prop_assert!(all.windows(2).all(|w| w[0].pid < w[1].pid));
    let _ = facts::running_guests(&root);
    let _ = facts::is_running(&root, "libvirtd");
    if let Some(rule) = facts::distro_kvm_udev_rule(&root) {
        prop_assert!(rule.ends_with(".rules"));
    }
    let _ = Selinux::read(&root).enabled();
    let _ = facts::LibvirtDaemons::read(&root);
    let _ = Accounts::read(&root);
    for family in [
        None,
        Some(Family::Yum),
        Some(Family::Dnf),
        Some(Family::Apt),
    ] {
        let Ok(Ok(platform)) = Facts::platform(&root, family) else {
            continue;
        };
        let host_dir = dir.path().to_path_buf();
        let Ok(db) = FixturePackageDb::load(&host_dir, platform.family) else {
            continue;
        };
        if let Ok(f) = Facts::gather(&root, platform.clone(), &db) {
            prop_assert_eq!(f.hostname.trim(), f.hostname.as_str());
            let _ = f.libvirt.mode(&root, &platform);
            let _ = bootstrap::plan::polkit_backend(&f);
            serde_json::to_string(&f).unwrap();
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Whole check-mode plans of fixture hosts with one file mutated.
// ---------------------------------------------------------------------------------------

#[rustfmt::skip]
const HOST_WORDS: &[&str] = &[
    "\n", ":", "=", "\t", " ", "ii", "(none):", "0:", "Y", "N", "1", "0", "vmx", "svm",
    "processor", "flags", "ID", "VERSION_ID", "ID_LIKE", "kvm", "stack", "root", "<pool",
    "<target>", "<path>", "</path>", "State:", "Persistent:", "Autostart:", "running", "yes",
    "no", "error: ", "failed to connect to the hypervisor", "Storage pool not found",
    "KERNEL==\"kvm\"", "GROUP=\"kvm\"", "polkit", "0 0 600", "36", "é", "😀",
];

fn check_plan(m: MutatedFixture) -> Result<(), TestCaseError> {
    let t = m.lay_down();
    let root = HostRoot::at(t.path());
    let platform = match Facts::platform(&root, None) {
        Ok(Ok(p)) => p,
        Ok(Err(_)) => match Facts::platform(&root, Some(Family::Dnf)) {
            Ok(Ok(p)) => p,
            _ => return Ok(()),
        },
        Err(_) => return Ok(()),
    };
    let Ok(db) = FixturePackageDb::load(t.path(), platform.family) else {
        return Ok(());
    };
    let Ok(facts) = Facts::gather(&root, platform, &db) else {
        return Ok(());
    };
    let opts = bootstrap::plan::Options::default();
    let world = bootstrap::fixture::World::at(t.path());
    let virsh =
        bootstrap::fixture::WorldVirsh::new(&world, &virthost_testkit::fixtures::virsh_templates());
    let tools = bootstrap::plan::Tools {
        packages: &db,
        virsh: &virsh,
        run: &world,
    };
    let steps = bootstrap::plan::plan(&facts, &opts, tools);
    let outcomes = bootstrap::step::run(&steps, &root, Mode::Check, &Quiet, |_| {});
    for o in &outcomes {
        prop_assert!(
            !o.detail.contains("internal error"),
            "step {} panicked: {}",
            o.id,
            o.detail
        );
    }
    let _ = bootstrap::report::human(&outcomes, Mode::Check);
    Ok(())
}

fn check_pool_step(info: Answer, xml: Answer, path: String) -> Result<(), TestCaseError> {
    let virsh = TableVirsh(BTreeMap::from([("pool-info", info), ("pool-dumpxml", xml)]));
    let dir = scratch();
    let root = HostRoot::at(dir.path());
    let step = PoolStep {
        name: "default".into(),
        path,
        virsh: &virsh,
        wait: Duration::ZERO,
    };
    if let Ok(Check::Pending(changes)) = step.check(&root) {
        prop_assert!(!changes.is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn fact_readers_never_panic(f in fact_files()) {
        bounded(move || check_facts(f))?;
    }

    #[test]
    fn check_plan_of_a_mutated_fixture_host_never_panics(m in mutated_fixture(hosts(), HOST_WORDS)) {
        bounded(move || check_plan(m))?;
    }

    #[test]
    fn pool_step_check_never_panics(
        info in answer(),
        xml in answer(),
        path in prop_oneof![
            Just("/var/lib/libvirt/images".to_string()),
            Just("/tmp/virthost-capture-pool.97GIC7".to_string()),
            token(VIRSH_WORDS),
        ],
    ) {
        bounded(move || check_pool_step(info, xml, path))?;
    }
}
