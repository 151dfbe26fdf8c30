//! The `validate` binary as a user runs it, boot proof included, against the real libvirtd
//! that `xtask/host/start-services.sh` starts (in netns `virthost-test`). Run as root.
//! Without a reachable libvirtd these tests skip, unless `VIRTHOST_REQUIRE_REAL=1` (set by
//! `cargo xtask test`), where that is a failure.
//!
//! `tests/tests/validate_real.rs` proves the library (`boot::prove`, the libvirt checks);
//! these prove that the binary wires them up: options to the proof, the JSON report, the
//! human report with its progress lines, the exit code, and that the process leaves nothing
//! behind. Here (not in `virthost-tests`) because cargo builds `CARGO_BIN_EXE_validate` only
//! for the `validate` package's own tests.
//!
//! The CI machines have no sshd, so `ssh.sshd` FAILs there and the exit code is 1: the tests
//! assert that the exit code agrees with the report, not that it is 0.

mod common;

use std::io::{Read, Seek};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{boot_lock, left_by, real_libvirt};
use serde_json::Value;
use validate::boot::PREFIX;
use validate::checks::libvirt::SYSTEM_URI;
use virt::connect::Connect;

/// Two NICs boot one after the other, each within `--boot-timeout`'s default (`options::DEFAULT_BOOT_TIMEOUT_S`, 60 s).
const DEADLINE: Duration = Duration::from_secs(240);

/// A finished `validate` run.
struct Run {
    pid: u32,
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs `validate` with `args` against [`SYSTEM_URI`] as root (`--user root`: the CI
/// machines have no stack user), TCG accepted (`--allow-emulation`).
fn run_validate(args: &[&str]) -> Run {
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_validate"))
        .args([
            "--connect",
            SYSTEM_URI,
            "--allow-emulation",
            "--user",
            "root",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .expect("spawn validate");
    let pid = child.id();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let st = child.wait();
            panic!(
                "validate {args:?} still running after {DEADLINE:?}, killed: {st:?}\nstderr:\n{}",
                read_all(&mut err)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let run = Run {
        pid,
        status,
        stdout: read_all(&mut out),
        stderr: read_all(&mut err),
        took: started.elapsed(),
    };
    eprintln!(
        "validate {args:?}: pid {pid}, {status} after {:.1} s\n--- stderr:\n{}--- stdout:\n{}",
        run.took.as_secs_f64(),
        run.stderr,
        run.stdout
    );
    run
}

fn read_all(f: &mut std::fs::File) -> String {
    let mut s = String::new();
    f.rewind().unwrap();
    f.read_to_string(&mut s).unwrap();
    s
}

/// `3.2` from `... DHCP after 3.2 s, ...` with `label` = `"DHCP after "`.
fn seconds_after(detail: &str, label: &str) -> Option<f64> {
    let rest = &detail[detail.find(label)? + label.len()..];
    rest.split(" s").next()?.parse().ok()
}

/// The progress lines must appear in this order, each containing its text.
fn assert_in_order(text: &str, expected: &[String]) {
    let mut lines = text.lines();
    for want in expected {
        assert!(
            lines.any(|l| l.contains(want.as_str())),
            "no line with {want:?} (in order {expected:#?}) in:\n{text}"
        );
    }
}

/// Nothing the process created (`virthost-validate-<pid>-...`) is left: no domain, no
/// network, no serial file. Its names appear in its progress output, so the check is not
/// vacuous.
fn assert_nothing_left(conn: &Connect, run: &Run) {
    let prefix = format!("{PREFIX}{}-", run.pid);
    assert!(
        run.stderr.contains(&prefix),
        "the progress names the run's network ({prefix}...):\n{}",
        run.stderr
    );
    assert_eq!(
        left_by(conn, run.pid),
        Vec::<String>::new(),
        "left behind by validate {}",
        run.pid
    );
}

/// The domain type libvirt.domain_type chose (`x86_64: qemu (TCG) ...` -> `qemu`).
fn chosen_domain_type(detail: &str) -> &str {
    let ty = detail
        .split_once(": ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("");
    assert!(ty == "qemu" || ty == "kvm", "domain type in {detail:?}");
    ty
}

#[test]
fn json_report_with_the_boot_proof_for_virtio_and_e1000() {
    let Some(conn) = real_libvirt() else { return };
    let _l = boot_lock();
    let run = run_validate(&["--report", "json", "--nic", "virtio,e1000"]);
    let v: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is no JSON report ({e}):\n{}", run.stdout));
    assert_eq!(v["apiVersion"], "virthost.dev/v1");
    assert_eq!(v["kind"], "ValidateReport");
    let checks = v["checks"].as_array().unwrap();
    let get = |id: &str| {
        checks
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in the report"))
    };
    let status = |id: &str| get(id)["status"].as_str().unwrap().to_string();
    let detail = |id: &str| get(id)["detail"].as_str().unwrap().to_string();

    // The summary counts the checks, and the exit code follows it.
    for (key, word) in [("pass", "PASS"), ("warn", "WARN"), ("fail", "FAIL")] {
        let n = checks.iter().filter(|c| c["status"] == word).count();
        assert_eq!(v["summary"][key].as_u64(), Some(n as u64), "summary.{key}");
    }
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c["status"] == "FAIL")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        run.status.code(),
        Some(i32::from(!failed.is_empty())),
        "FAILs: {failed:?}"
    );
    // What this run must not FAIL: libvirt is up, TCG is accepted, the boot works.
    for id in &failed {
        assert!(
            !["libvirt.", "kvm.", "boot."]
                .iter()
                .any(|p| id.starts_with(p)),
            "{id} FAILed: {}",
            detail(id)
        );
    }

    // The libvirt checks, each as the daemon's state says it must be.
    let libvirt_ids: Vec<&str> = checks
        .iter()
        .filter_map(|c| c["id"].as_str())
        .filter(|id| id.starts_with("libvirt."))
        .collect();
    assert_eq!(
        libvirt_ids,
        [
            "libvirt.connect",
            "libvirt.pool",
            "libvirt.domain_type",
            "libvirt.polkit"
        ]
    );
    assert_eq!(status("libvirt.connect"), "PASS");
    let connect = detail("libvirt.connect");
    assert!(
        connect.starts_with(SYSTEM_URI)
            && connect.contains("libvirt ")
            && connect.contains("QEMU "),
        "{connect}"
    );
    assert_eq!(
        status("libvirt.polkit"),
        "PASS",
        "{}",
        detail("libvirt.polkit")
    );
    assert!(detail("libvirt.polkit").contains("'root' (uid 0) manages"));
    // What bootstrap's pool requirement says of this daemon's pool, the binary reports
    // (no pool `default` on the CI machines: WARN).
    let want = validate::checks::libvirt::pool_result(
        &validate::checks::libvirt::pool_facts(&conn),
        std::path::Path::new(virthost_model::desired::IMAGES_DIR).is_dir(),
    );
    assert_eq!(
        status("libvirt.pool"),
        want.status.word(),
        "{}",
        detail("libvirt.pool")
    );
    assert_eq!(detail("libvirt.pool"), want.detail);
    // kvm only with VT-x/AMD-V; the CI machines have a paravirtual /dev/kvm and no flag:
    // qemu, a WARN.
    let dtype = chosen_domain_type(&detail("libvirt.domain_type")).to_string();
    if v["host"]["cpu_virt"].is_null() {
        assert_eq!(dtype, "qemu");
        assert_eq!(status("libvirt.domain_type"), "WARN");
    } else if dtype == "kvm" {
        assert_eq!(status("libvirt.domain_type"), "PASS");
    }

    // The boot proof, one check per boot mode and NIC model (BIOS, then UEFI, each in --nic
    // order), last in the report. install-deps.sh installs ovmf, so UEFI boots here.
    // Then the power proof, one per boot mode, last.
    let ids: Vec<&str> = checks.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(
        ids[ids.len() - 6..],
        [
            "boot.ipxe.virtio",
            "boot.ipxe.e1000",
            "boot.uefi.virtio",
            "boot.uefi.e1000",
            "power.bios",
            "power.uefi"
        ]
    );
    for id in ["power.bios", "power.uefi"] {
        assert_eq!(status(id), "PASS", "{}", detail(id));
        assert!(detail(id).contains("undefine "), "{}", detail(id));
    }
    for (id, nic, booted) in [
        (
            "boot.ipxe.virtio",
            "virtio",
            format!("booted a {dtype} BIOS domain"),
        ),
        (
            "boot.ipxe.e1000",
            "e1000",
            format!("booted a {dtype} BIOS domain"),
        ),
        (
            "boot.uefi.virtio",
            "virtio",
            format!("booted a {dtype} UEFI (/usr/share/OVMF/"),
        ),
        (
            "boot.uefi.e1000",
            "e1000",
            format!("booted a {dtype} UEFI (/usr/share/OVMF/"),
        ),
    ] {
        let d = detail(id);
        assert_eq!(status(id), "PASS", "{d}");
        assert!(get(id)["hint"].is_null(), "{d}");
        assert!(d.starts_with("iPXE 1.") || d.starts_with("iPXE 2"), "{d}");
        assert!(d.contains(&booted), "{d}");
        assert!(d.contains(&format!("NIC model {nic}")), "{d}");
        let dhcp = seconds_after(&d, "DHCP after ").unwrap_or_else(|| panic!("DHCP s: {d}"));
        let callback =
            seconds_after(&d, "callback after ").unwrap_or_else(|| panic!("callback s: {d}"));
        assert!(0.0 < dhcp && dhcp <= callback && callback < 60.0, "{d}");
        let ms = get(id)["duration_ms"].as_u64().unwrap();
        assert!(ms as f64 >= callback * 1000.0, "duration_ms {ms}: {d}");
        eprintln!("{id}: DHCP {dhcp} s, callback {callback} s, check {ms} ms");
    }

    assert_nothing_left(&conn, &run);
}

#[test]
fn human_report_with_progress_and_summary() {
    let Some(conn) = real_libvirt() else { return };
    let _l = boot_lock();
    let run = run_validate(&["--nic", "virtio"]);

    // Progress of the boot proof on stderr, in order.
    let prefix = format!("{PREFIX}{}-", run.pid);
    let progress = [
        "validate: boot: the boot modes ".to_string(),
        "validate: boot: creating the isolated test network".to_string(),
        format!("validate: boot: network {prefix}"),
        "validate: boot: booting a ".to_string(),
        "validate: boot: removing the test network".to_string(),
        "validate: boot: done".to_string(),
    ];
    assert_in_order(&run.stderr, &progress);
    // Side by side the UEFI boot may end before the BIOS one: each after its own start.
    for mode in ["BIOS", "UEFI"] {
        assert_in_order(
            &run.stderr,
            &[
                format!("validate: boot: booting a qemu {mode} domain, NIC model virtio"),
                format!("validate: boot: {} virtio: PASS iPXE ", mode.to_lowercase()),
            ],
        );
    }
    assert!(
        run.stderr.contains("domain, NIC model virtio"),
        "{}",
        run.stderr
    );

    // The report on stdout: no progress there, no colour (a pipe), one aligned line per
    // check (hints indented below), the summary last.
    let out = &run.stdout;
    assert!(!out.contains("validate: boot:"), "progress on stdout");
    assert!(!out.contains('\x1b'), "colour codes on a pipe");
    let lines: Vec<&str> = out.lines().collect();
    let (summary, body) = lines.split_last().expect("empty stdout");
    let checks: Vec<&str> = body
        .iter()
        .copied()
        .filter(|l| !l.starts_with(' '))
        .collect();
    let width = checks
        .iter()
        .map(|l| l.split_whitespace().next().unwrap().len())
        .max()
        .unwrap();
    let mut counts = [0usize; 3];
    for l in &checks {
        let word = &l[width + 2..width + 6];
        let i = ["PASS", "WARN", "FAIL"]
            .iter()
            .position(|w| *w == word)
            .unwrap_or_else(|| panic!("status not in column {}: {l:?}", width + 2));
        counts[i] += 1;
    }
    assert_eq!(
        *summary,
        format!("{} PASS, {} WARN, {} FAIL", counts[0], counts[1], counts[2])
    );
    assert_eq!(run.status.code(), Some(i32::from(counts[2] > 0)));
    let boot = checks
        .iter()
        .find(|l| l.starts_with("boot.ipxe.virtio "))
        .expect("a boot.ipxe.virtio line");
    assert!(
        boot[width..].starts_with("  PASS  iPXE ") && boot.contains("NIC model virtio"),
        "{boot}"
    );
    assert!(
        checks.iter().any(|l| l.starts_with("libvirt.connect ")),
        "{out}"
    );

    assert_nothing_left(&conn, &run);
}

/// `[started_ms, started_ms + duration_ms)` of check `id` in a JSON report.
fn window(checks: &[Value], id: &str) -> (u64, u64) {
    let c = checks
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in the report"));
    let start = c["started_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("{id} has no started_ms: {c}"));
    (start, start + c["duration_ms"].as_u64().unwrap())
}

fn overlap(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Where the host has a CPU and the memory per test domain (these machines: 2 cores, 24
/// GiB), the BIOS and UEFI boots run side by side, each on a network of its own, and the
/// power proof beside the UEFI boot: their time windows in the report overlap, and the
/// report says why. `--sequential` runs them one after the other. Neither leaves anything.
#[test]
fn both_boot_modes_run_side_by_side_and_leave_nothing() {
    let Some(conn) = real_libvirt() else { return };
    let _l = boot_lock();
    let expected = validate::boot::schedule::on_this_host(2, false);
    let run = run_validate(&["--report", "json"]);
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    let checks = v["checks"].as_array().unwrap();
    for id in [
        "boot.ipxe.virtio",
        "boot.uefi.virtio",
        "power.bios",
        "power.uefi",
    ] {
        let c = checks.iter().find(|c| c["id"] == id).unwrap();
        assert_eq!(c["status"], "PASS", "{c}");
    }
    let schedule = &v["bootSchedule"];
    assert_eq!(
        schedule["side_by_side"].as_bool(),
        Some(expected.side_by_side),
        "{schedule}"
    );
    // The same reason, but MemAvailable moves between the two readings: not its MiB.
    let mib_masked = |why: &str| {
        let words: Vec<&str> = why.split(' ').collect();
        let mut out = Vec::new();
        for (i, w) in words.iter().enumerate() {
            let available =
                words.get(i + 1) == Some(&"MiB") && words.get(i + 2) == Some(&"available;");
            out.push(if available { "N" } else { w });
        }
        out.join(" ")
    };
    assert_eq!(
        schedule["why"].as_str().map(mib_masked),
        Some(mib_masked(&expected.why)),
        "{schedule}"
    );
    assert!(
        mib_masked(&expected.why).contains("N MiB available;")
            || !expected.why.contains("MiB available")
    );
    let (bios, uefi) = (
        window(checks, "boot.ipxe.virtio"),
        window(checks, "boot.uefi.virtio"),
    );
    let power = window(checks, "power.bios");
    let prefix = format!("{PREFIX}{}-", run.pid);
    if expected.side_by_side {
        assert!(overlap(bios, uefi), "BIOS {bios:?}, UEFI {uefi:?}");
        assert!(overlap(power, uefi), "power {power:?}, UEFI {uefi:?}");
        assert!(
            power.0 >= bios.1,
            "power after the BIOS boot: {power:?} {bios:?}"
        );
        assert!(
            run.stderr
                .contains("validate: boot: the boot modes side by side"),
            "{}",
            run.stderr
        );
        // A network each, each with its own server (and token).
        for net in [prefix.clone(), "-uefi-0 up".to_string()] {
            assert!(
                run.stderr
                    .lines()
                    .any(|l| l.starts_with("validate: boot: network ") && l.contains(&net)),
                "{net}: {}",
                run.stderr
            );
        }
        let ups = run
            .stderr
            .lines()
            .filter(|l| l.starts_with(&format!("validate: boot: network {prefix}")))
            .count();
        assert_eq!(ups, 2, "{}", run.stderr);
    } else {
        eprintln!("not side by side here: {}", expected.why);
    }
    assert_nothing_left(&conn, &run);

    let seq = run_validate(&["--report", "json", "--sequential"]);
    let v: Value = serde_json::from_str(&seq.stdout).unwrap();
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(v["bootSchedule"]["side_by_side"].as_bool(), Some(false));
    assert_eq!(v["bootSchedule"]["why"], "--sequential");
    let (bios, uefi, power) = (
        window(checks, "boot.ipxe.virtio"),
        window(checks, "boot.uefi.virtio"),
        window(checks, "power.bios"),
    );
    assert!(
        bios.1 <= uefi.0 && uefi.1 <= power.0,
        "one after the other: BIOS {bios:?}, UEFI {uefi:?}, power {power:?}"
    );
    assert!(
        seq.stderr
            .contains("validate: boot: the boot modes one after the other (--sequential)"),
        "{}",
        seq.stderr
    );
    assert_nothing_left(&conn, &seq);
}
