//! The binary's exit codes and usage errors (host checks on fixture hosts through the
//! hidden `--fixture` flag: no libvirt, no boot proof).

use std::path::PathBuf;

use assert_cmd::Command;
use predicates::prelude::*;

fn fixtures() -> PathBuf {
    virthost_testkit::fixtures::dir().join("validate")
}

fn validate() -> Command {
    Command::cargo_bin("validate").unwrap()
}

fn on(case: &str) -> Command {
    let mut c = validate();
    c.arg("--fixture").arg(fixtures().join(case));
    c
}

#[test]
fn exit_0_when_nothing_fails() {
    on("rhel74-ready")
        .args(["--nodes", "undercloud:1,controller:3,compute:2"])
        .arg("--root-key")
        .arg(fixtures().join("keys/infrared.pub"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("0 WARN, 0 FAIL"));
}

#[test]
fn exit_1_when_something_fails() {
    on("centos7-old")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("ipxe.build"))
        // stdout is a pipe here: no colour codes.
        .stdout(predicate::str::contains("\x1b").not());
}

#[test]
fn json_report_is_versioned() {
    let out = on("rhel74-ready")
        .args(["--report", "json"])
        .assert()
        .code(0);
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["apiVersion"], "virthost.dev/v1");
    assert_eq!(v["kind"], "ValidateReport");
    assert_eq!(v["summary"]["fail"], 0);
    assert!(v["checks"].as_array().unwrap().len() > 20);
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    let keys = fixtures().join("keys");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--nodes".into(), "compute".into()], "NAME:COUNT"),
        (vec!["--nodes".into(), "edge:2".into()], "give a size"),
        (vec!["--nodes".into(), "compute:1:4/x/40".into()], "memory"),
        (
            vec!["--root-key".into(), "/nonexistent/key.pub".into()],
            "cannot read",
        ),
        (
            vec![
                "--stack-key".into(),
                keys.join("garbage.pub").display().to_string(),
            ],
            "garbage.pub",
        ),
        (vec!["--nic".into(), "ne2k".into()], "unknown NIC model"),
        (vec!["--report".into(), "yaml".into()], "yaml"),
        (vec!["--no-such-flag".into()], "--no-such-flag"),
    ];
    for (args, needle) in cases {
        validate()
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(needle))
            .stderr(predicate::str::contains("panicked").not());
    }
}

#[test]
fn nodes_too_big_or_zero_are_usage_errors_not_panics() {
    for (nodes, needle) in [
        // 17179869185 GiB * 2^30 overflowed: a panic (exit 101) in debug builds, a 1 GiB need
        // that PASSed in release builds.
        (
            "edge:1:1/17179869185/1",
            "more than 65536 GiB (64 TiB) per VM",
        ),
        (
            "edge:1:1/8/1000001",
            "disk 1000001 GB is more than 1000000 GB (1 PB) per disk",
        ),
        ("edge:1:1/8/40+1000001", "data disk 1000001 GB"),
        ("compute:10001", "more than 10000 VMs"),
        // A zero count used to drop the group and check the spec-minimum VM instead.
        ("compute:0", "a count of 0"),
        ("controller:1,compute:0", "leave the role out"),
    ] {
        on("rhel74-ready")
            .args(["--nodes", nodes])
            .assert()
            .code(2)
            .stdout(predicate::str::is_empty())
            .stderr(predicate::str::contains(needle))
            .stderr(predicate::str::contains("panicked").not());
    }
}

#[test]
fn the_largest_plan_nodes_accepts_fails_capacity_without_overflow() {
    // Every limit at once, 30 times: the sums saturate, the plan FAILs (exit 1).
    let group = "edge:10000:4096/65536/1000000+1000000";
    let nodes = vec![group; 30].join(",");
    let out = on("rhel74-ready")
        .args(["--report", "json", "--nodes", &nodes])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("panicked").not());
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let status = |id: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status("capacity.memory"), "FAIL");
    assert_eq!(status("capacity.disk"), "FAIL");
    assert_eq!(status("capacity.vcpus"), "WARN");
}

#[test]
fn help_documents_the_nodes_syntax_and_overcommit() {
    validate()
        .arg("--help")
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "NAME:COUNT[:VCPUS/MEM_GIB/DISK_GB",
        ))
        .stdout(predicate::str::contains("ceph 2/6/46"))
        .stdout(predicate::str::contains("--overcommit"))
        .stdout(predicate::str::contains("--fixture").not());
}

#[test]
fn this_host_gets_a_well_formed_report() {
    // The real probes (files under /, statvfs, the /dev/kvm ioctls, rpm/dpkg); whatever this
    // machine is, the report parses, every id is unique, and the exit code matches.
    let out = validate()
        .args(["--skip-boot", "--report", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = v["checks"].as_array().unwrap();
    let mut ids: Vec<&str> = checks.iter().map(|c| c["id"].as_str().unwrap()).collect();
    for id in [
        "os.release",
        "cpu.threads",
        "kvm.usable",
        "capacity.disk",
        "ssh.sshd",
    ] {
        assert!(ids.contains(&id), "{id} missing");
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate check ids");
    let failed = v["summary"]["fail"].as_u64().unwrap() > 0;
    assert_eq!(out.status.code(), Some(i32::from(failed)));
    // The CPU flags and the extension check agree.
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let has_ext = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    let ext = checks.iter().find(|c| c["id"] == "kvm.extension").unwrap();
    assert_eq!(ext["status"] == "PASS", has_ext);
}
