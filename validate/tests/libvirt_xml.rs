//! The libvirt checks' readers on documents captured from the real libvirt 9.0 of the
//! development machine (fixtures/validate/libvirt-9.0/README.md): capabilities, domain
//! capabilities for kvm and qemu, and a dir pool's description. The checks they give are
//! snapshotted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use validate::check::{CheckResult, Status};
use validate::checks::libvirt::{
    domain_type_result, domain_types_from, offered_types, pool_result, pool_target_path,
    DomainTypes,
};
use validate::options::DomainType;
use virthost_model::assess::pool::PoolFacts;
use virthost_model::virsh::{PoolDef, PoolInfo, PoolState};

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/validate/libvirt-9.0")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `(case, check)` pairs as the snapshot shows them.
fn named(cases: Vec<(&str, CheckResult)>) -> Vec<serde_json::Value> {
    cases
        .into_iter()
        .map(|(name, r)| serde_json::json!({ "case": name, "check": r }))
        .collect()
}

#[test]
fn capabilities_offer_qemu_and_kvm_for_both_x86_arches() {
    let caps = fixture("capabilities.xml");
    assert_eq!(offered_types(&caps, "x86_64"), ["qemu", "kvm"]);
    assert_eq!(offered_types(&caps, "i686"), ["qemu", "kvm"]);
    assert!(offered_types(&caps, "aarch64").is_empty());
    // The <host><cpu><arch> and <secmodel><baselabel type='kvm'> are no guest offers.
    assert!(offered_types(&caps, "x86").is_empty());
}

#[test]
fn domain_types_from_captured_capabilities() {
    let caps = fixture("capabilities.xml");
    let kvm = fixture("domcapabilities-kvm.xml");
    let qemu = fixture("domcapabilities-qemu.xml");
    let types = |domcaps: Option<&str>, arch: &str, hw_virt: bool| {
        domain_types_from(&caps, domcaps, arch, hw_virt)
    };
    // This machine: libvirt offers kvm (a PVM /dev/kvm answers), the CPU has no vmx/svm.
    let here = types(Some(&kvm), "x86_64", false);
    assert_eq!(
        here,
        DomainTypes {
            arch: "x86_64".into(),
            kvm_offered: true,
            qemu_offered: true,
            hw_virt: false,
        }
    );
    assert_eq!(here.best(), Some(DomainType::Qemu));
    // The same libvirt on a CPU with VT-x/AMD-V: kvm.
    assert_eq!(
        types(Some(&kvm), "x86_64", true).best(),
        Some(DomainType::Kvm)
    );
    // Domain capabilities refused for kvm (no usable KVM): qemu only, even with vmx/svm.
    let refused = types(None, "x86_64", true);
    assert!(!refused.kvm_offered);
    assert_eq!(refused.best(), Some(DomainType::Qemu));
    // An answer that is not about kvm does not count as one.
    assert!(!types(Some(&qemu), "x86_64", true).kvm_offered);
    // An architecture the capabilities do not list: nothing runs.
    assert_eq!(types(Some(&kvm), "aarch64", true).best(), None);
}

#[test]
fn domain_type_checks_snapshot() {
    let caps = fixture("capabilities.xml");
    let kvm = fixture("domcapabilities-kvm.xml");
    let fast = Duration::from_millis(30);
    let check = |domcaps: Option<&str>, arch: &str, hw_virt: bool, took: Duration| {
        domain_type_result(&domain_types_from(&caps, domcaps, arch, hw_virt), took)
    };
    let cases = vec![
        (
            "this machine: kvm offered, no vmx/svm",
            check(Some(&kvm), "x86_64", false, fast),
        ),
        (
            "hardware virtualization",
            check(Some(&kvm), "x86_64", true, fast),
        ),
        (
            "kvm domain capabilities refused",
            check(None, "x86_64", true, fast),
        ),
        (
            "no hvm guest for the architecture",
            check(Some(&kvm), "aarch64", true, fast),
        ),
        (
            "libvirt re-probes QEMU (56 s)",
            check(Some(&kvm), "x86_64", true, Duration::from_secs(56)),
        ),
    ];
    let statuses: Vec<Status> = cases.iter().map(|(_, r)| r.status).collect();
    assert_eq!(
        statuses,
        [
            Status::Warn,
            Status::Pass,
            Status::Warn,
            Status::Fail,
            Status::Warn
        ]
    );
    assert!(cases[0].1.detail.contains("no VT-x/AMD-V"));
    assert!(cases[4].1.detail.contains("re-probes QEMU"));
    for (name, r) in &cases {
        assert_eq!(r.id, "libvirt.domain_type", "{name}");
        assert_eq!(r.hint.is_some(), r.status != Status::Pass, "{name}");
    }
    insta::assert_json_snapshot!("domain_type", named(cases));
}

#[test]
fn pool_checks_snapshot() {
    let xml = fixture("pool-dir.xml");
    assert_eq!(
        pool_target_path(&xml).as_deref(),
        Some(Path::new("/tmp/virthost-vfix-pool.C3PrDF"))
    );
    // The persistent definition libvirt writes (with its warning comment) reads the same way.
    let persistent = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/validate/rhel74-ready/etc/libvirt/storage/default.xml"),
    )
    .unwrap();
    assert_eq!(
        pool_target_path(&persistent).as_deref(),
        Some(Path::new("/srv/vms/images"))
    );
    assert_eq!(
        pool_target_path("<pool><target><path></path></target></pool>"),
        None
    );
    assert_eq!(
        pool_target_path("<pool type='dir'><name>x</name></pool>"),
        None
    );

    // The pool the capture made, as libvirt's API would describe it in each state.
    let def = virthost_model::virsh::parse_pool_xml(&xml).unwrap();
    let ours = |state: PoolState, persistent: bool, autostart: bool, path: Option<&str>| {
        PoolFacts::Pool(
            PoolInfo {
                name: "default".into(),
                state,
                persistent,
                autostart,
            },
            PoolDef {
                path: path.map(String::from),
                ..def.clone()
            },
        )
    };
    let img = Some(virthost_model::desired::IMAGES_DIR);
    let cases = vec![
        (
            "running, autostart",
            pool_result(&ours(PoolState::Running, true, true, img), true),
        ),
        (
            "defined, not active",
            pool_result(&ours(PoolState::Inactive, true, false, img), true),
        ),
        (
            "running, no autostart",
            pool_result(&ours(PoolState::Running, true, false, img), true),
        ),
        (
            "the capture's own path (the operator's pool)",
            pool_result(
                &ours(PoolState::Running, true, true, def.path.as_deref()),
                true,
            ),
        ),
        ("no pool 'default'", pool_result(&PoolFacts::Missing, false)),
        (
            "inaccessible",
            pool_result(
                &ours(PoolState::Other("inaccessible".into()), true, true, img),
                true,
            ),
        ),
    ];
    let statuses: Vec<Status> = cases.iter().map(|(_, r)| r.status).collect();
    assert_eq!(
        statuses,
        [
            Status::Pass,
            Status::Warn,
            Status::Warn,
            Status::Pass,
            Status::Warn,
            Status::Warn
        ]
    );
    assert!(cases[1]
        .1
        .hint
        .as_deref()
        .unwrap()
        .contains("virsh pool-start default; virsh pool-autostart default"));
    assert!(cases[3]
        .1
        .detail
        .contains("at /tmp/virthost-vfix-pool.C3PrDF"));
    assert!(cases[4]
        .1
        .hint
        .as_deref()
        .unwrap()
        .starts_with("run bootstrap (its `pool` step: virsh pool-define-as default dir"));
    insta::assert_json_snapshot!("pool", named(cases));
}
