//! The JSON report of every fixture host (fixtures/validate/<case>), snapshotted. Durations
//! vary and are redacted.

use std::path::PathBuf;

use validate::options::{parse_nodes, Options};
use validate::probe::FixtureProbe;
use validate::run::run_host;
use virthost_testkit::fixtures;

fn fixture(case: &str) -> PathBuf {
    fixtures::case(case)
}

fn key(name: &str) -> PathBuf {
    fixture("keys").join(format!("{name}.pub"))
}

/// The report of a fixture host, read as validate reads a host once it is materialized (the
/// owners and modes git cannot store put on a copy's files: root).
fn report_of(dir: &std::path::Path, opts: &Options) -> validate::report::Report {
    let t = tempfile::tempdir().unwrap();
    let probe = FixtureProbe::materialize(dir, t.path()).unwrap_or_else(|e| panic!("{e:#}"));
    run_host(opts, &probe)
}

fn report(case: &str, opts: &Options) -> validate::report::Report {
    report_of(&fixture(case), opts)
}

fn with_keys() -> Options {
    Options {
        root_keys: vec![key("infrared")],
        stack_keys: vec![key("undercloud")],
        nodes: parse_nodes("undercloud:1,controller:3,compute:2").unwrap(),
        nics: vec!["virtio".into(), "e1000".into()],
        ..Options::default()
    }
}

macro_rules! snapshot {
    ($name:expr, $report:expr) => {
        insta::assert_json_snapshot!($name, $report, {
            ".checks[].duration_ms" => "[duration]",
        })
    };
}

#[test]
fn rhel74_ready_passes_everything() {
    let r = report("rhel74-ready", &with_keys());
    assert_eq!(
        (r.summary.warn, r.summary.fail),
        (0, 0),
        "{}",
        r.to_human(false)
    );
    snapshot!("rhel74-ready", r);
}

#[test]
fn ubuntu2404_ready_with_socket_activated_sshd_passes_everything() {
    // No sshd process (ssh.socket starts it per connection); systemd listens on port 22.
    let r = report("ubuntu2404-ready", &with_keys());
    let sshd = r.checks.iter().find(|c| c.id == "ssh.sshd").unwrap();
    assert_eq!(
        sshd.detail,
        "no sshd process, but port 22 listening (socket-activated?)"
    );
    assert_eq!(
        (r.summary.warn, r.summary.fail),
        (0, 0),
        "{}",
        r.to_human(false)
    );
    snapshot!("ubuntu2404-ready", r);
}

#[test]
fn debian12_pvm_reports_the_paravirtual_kvm_and_the_reprobe_trap() {
    let r = report("debian12-pvm", &with_keys());
    let status = |id: &str| {
        r.checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no {id}"))
            .status
    };
    use validate::check::Status::*;
    assert_eq!(status("kvm.extension"), Fail);
    // root:root 0600: the re-probe trap, which bootstrap's devkvm step fixes.
    assert_eq!(status("kvm.device"), Fail);
    assert_eq!(status("kvm.usable"), Fail);
    assert_eq!(status("kvm.access"), Fail);
    snapshot!("debian12-pvm", r);
}

#[test]
fn debian12_pvm_with_allow_emulation_only_warns_about_hardware() {
    let opts = Options {
        allow_emulation: true,
        ..Options::default()
    };
    let r = report("debian12-pvm", &opts);
    for id in ["kvm.extension", "kvm.module", "kvm.usable"] {
        let c = r.checks.iter().find(|c| c.id == id).unwrap();
        assert_eq!(c.status, validate::check::Status::Warn, "{id}");
        assert!(c.hint.as_ref().unwrap().contains("--allow-emulation"));
    }
    // Not a hardware matter: still FAIL.
    for id in ["kvm.access", "kvm.device"] {
        let c = r.checks.iter().find(|c| c.id == id).unwrap();
        assert_eq!(c.status, validate::check::Status::Fail, "{id}");
    }
}

#[test]
fn centos7_old_fails_with_hints() {
    let r = report("centos7-old", &with_keys_default_nodes());
    for c in &r.checks {
        if c.status != validate::check::Status::Pass {
            assert!(c.hint.is_some(), "{} has no hint", c.id);
        }
    }
    snapshot!("centos7-old", r);
}

fn with_keys_default_nodes() -> Options {
    Options {
        nodes: Vec::new(),
        ..with_keys()
    }
}

#[test]
fn overcommit_turns_capacity_fails_into_warns() {
    let strict = report("debian12-pvm", &with_keys());
    let relaxed = report(
        "debian12-pvm",
        &Options {
            overcommit: true,
            ..with_keys()
        },
    );
    for id in ["capacity.memory", "capacity.disk"] {
        let s = strict.checks.iter().find(|c| c.id == id).unwrap();
        let r = relaxed.checks.iter().find(|c| c.id == id).unwrap();
        assert_eq!(s.status, validate::check::Status::Fail, "{id}");
        assert_eq!(r.status, validate::check::Status::Warn, "{id}");
        assert!(r.hint.as_ref().unwrap().contains("--overcommit"), "{id}");
    }
}

#[test]
fn human_output_is_aligned_with_a_summary() {
    let r = report("centos7-old", &with_keys_default_nodes());
    let text = r.to_human(false);
    assert!(!text.contains('\x1b'));
    let width = r.checks.iter().map(|c| c.id.len()).max().unwrap();
    for line in text.lines().filter(|l| !l.starts_with(' ')) {
        if let Some(rest) = line.get(width..) {
            if line.contains("  PASS  ") || line.contains("  WARN  ") || line.contains("  FAIL  ") {
                assert!(rest.starts_with("  "), "misaligned: {line}");
            }
        }
    }
    let s = r.summary;
    assert!(text.ends_with(&format!(
        "{} PASS, {} WARN, {} FAIL\n",
        s.pass, s.warn, s.fail
    )));
    assert!(r.to_human(true).contains("\x1b[1;31mFAIL\x1b[0m"));
}

#[test]
fn package_checks_are_exactly_the_shared_desired_set() {
    use virthost_model::os::{OsRelease, Platform};
    for case in [
        "rhel74-ready",
        "ubuntu2404-ready",
        "debian12-pvm",
        "centos7-old",
    ] {
        let r = report(case, &Options::default());
        let os = std::fs::read_to_string(fixture(case).join("etc/os-release")).unwrap();
        let platform = Platform::detect(&OsRelease::parse(&os), None).unwrap();
        let want: Vec<String> = virthost_model::desired::packages(&platform)
            .iter()
            .map(|p| format!("package.{}", p.name))
            .collect();
        let got: Vec<String> = r
            .checks
            .iter()
            .filter(|c| c.id.starts_with("package."))
            .map(|c| c.id.clone())
            .collect();
        assert_eq!(got, want, "{case}");
    }
}

/// The shared fixture hosts (`fixtures/hosts/<name>`, the ones bootstrap plans for), read
/// by validate. Free space and the KVM ioctls are not captured there and say so.
fn shared_host(name: &str) -> validate::report::Report {
    report_of(&fixtures::host(name), &Options::default())
}

#[test]
fn every_shared_fixture_host_snapshot() {
    let hosts = fixtures::hosts();
    assert!(!hosts.is_empty());
    for host in hosts {
        let r = report_of(&host, &Options::default());
        snapshot!(format!("hosts-{}", fixtures::name(&host)), r);
    }
}

#[test]
fn a_host_bootstrap_calls_converged_passes_validate_s_model_checks() {
    // One definition of ready: every check that names the bootstrap step owning it PASSes
    // on each of bootstrap's converged fixtures. No list of ids: a new owned check is covered.
    for host in ["rhel-7.4-converged", "debian-13-converged"] {
        let r = shared_host(host);
        let owned: Vec<_> = r
            .checks
            .iter()
            .filter(|c| c.bootstrap_step.is_some())
            .collect();
        assert!(owned.len() >= 12, "{host}: {owned:?}");
        for c in owned {
            assert_eq!(
                c.status,
                validate::check::Status::Pass,
                "{host}: {} (bootstrap's `{}` step): {}",
                c.id,
                c.bootstrap_step.as_deref().unwrap(),
                c.detail
            );
        }
    }
    // The converged hosts also carry what validate reads beyond bootstrap's reach
    // (meminfo, mounts, sshd, the tun device, probe.json's KVM and free-space answers):
    // nothing FAILs, a host bootstrap converged is ready. rhel-7.4-converged is clean;
    // debian-13-converged, a 2-thread VM without vhost-net, WARNs about both.
    for (host, warns) in [("rhel-7.4-converged", 0), ("debian-13-converged", 2)] {
        let r = shared_host(host);
        assert_eq!(
            (r.summary.warn, r.summary.fail),
            (warns, 0),
            "{host}: {}",
            r.to_human(false)
        );
    }
    // And the fresh one fails them.
    let r = shared_host("rhel-7.4");
    let fails: Vec<&str> = r
        .checks
        .iter()
        .filter(|c| c.status == validate::check::Status::Fail)
        .map(|c| c.id.as_str())
        .collect();
    assert!(
        fails.contains(&"package.libvirt") && fails.contains(&"user.exists"),
        "{fails:?}"
    );
}
