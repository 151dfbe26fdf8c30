//! The `bootstrap` binary's contract (contracts.md): flags, exit codes, the JSON report.
//! `--check` reads this machine and changes nothing.

use assert_cmd::Command;
use predicates::str::contains;

fn bootstrap() -> Command {
    Command::cargo_bin("bootstrap").unwrap()
}

#[test]
fn a_bad_flag_is_a_usage_error() {
    bootstrap().arg("--frobnicate").assert().code(2);
    bootstrap()
        .args(["--report", "yaml"])
        .assert()
        .code(2)
        .stderr(contains("human"));
    bootstrap().args(["--os-family", "pacman"]).assert().code(2);
}

#[test]
fn help_lists_the_exit_codes() {
    bootstrap()
        .arg("--help")
        .assert()
        .success()
        .stdout(contains("--root-key <FILE>"))
        .stdout(contains("5 unsupported OS"));
}

#[test]
fn a_private_key_is_refused_with_exit_2_before_anything() {
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("id_ed25519");
    std::fs::write(
        &key,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ==\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    bootstrap()
        .arg("--check")
        .arg("--stack-key")
        .arg(&key)
        .assert()
        .code(2)
        .stdout("");
}

#[test]
fn check_reads_this_host_and_reports_json() {
    let out = bootstrap()
        .args(["--check", "--report", "json"])
        .output()
        .unwrap();
    let code = out.status.code().unwrap();
    // 0: nothing pending, 4: changes pending, 1: a check failed, 5: not a supported OS.
    assert!(
        [0, 1, 4, 5].contains(&code),
        "{code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if code == 5 {
        return;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["apiVersion"], "virthost.dev/v1");
    assert_eq!(v["kind"], "BootstrapReport");
    assert_eq!(v["mode"], "check");
    let steps = v["steps"].as_array().unwrap();
    let ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids[..4], ["packages", "ipxe", "kvm", "devkvm"]);
    assert_eq!(ids[ids.len() - 2..], ["libvirt", "pool"]);
    for s in steps {
        assert!(["ok", "changed", "failed", "skipped"].contains(&s["status"].as_str().unwrap()));
        assert!(s["duration_ms"].is_u64() && s["changes"].is_array());
    }
    let sum = &v["summary"];
    let total: u64 = ["ok", "changed", "failed", "skipped"]
        .iter()
        .map(|k| sum[*k].as_u64().unwrap())
        .sum();
    assert_eq!(total as usize, steps.len());
    let pending = sum["changed"].as_u64().unwrap() > 0;
    let failed = sum["failed"].as_u64().unwrap() > 0;
    assert_eq!(
        code,
        if failed {
            1
        } else if pending {
            4
        } else {
            0
        }
    );
    assert!(v["host"]["platform"]["family"].is_string());
}

#[test]
fn apply_as_a_plain_user_exits_3_and_check_still_reads() {
    // Drop to nobody with util-linux's setpriv (tests run as root in CI).
    if virthost_testkit::root().is_none()
        || virthost_testkit::tool("setpriv", "util-linux").is_none()
    {
        return;
    }
    let bin = assert_cmd::cargo::cargo_bin("bootstrap");
    let as_nobody = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(args)
            .output()
            .unwrap()
    };
    let out = as_nobody(&[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must run as root"));
    let out = as_nobody(&["--check"]);
    assert_ne!(out.status.code(), Some(3));
}
