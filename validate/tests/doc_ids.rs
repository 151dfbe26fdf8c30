//! Every check id a report carries is documented in docs/validate-report.md. The ids come
//! from real runs: the host checks on every fixture host (with keys, so the ssh.keys.* ids
//! appear too), the libvirt checks against libvirt's built-in test driver (`test:///default`,
//! no daemon needed), and the boot proof's id per NIC model.

use std::collections::BTreeSet;
use std::path::PathBuf;

use validate::options::{parse_nodes, Options};
use validate::probe::FixtureProbe;
use validate::run::run_host;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `code span` of the doc outside fenced blocks.
fn documented() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(root().join("docs/validate-report.md")).unwrap();
    let mut fenced = false;
    let prose: Vec<&str> = doc
        .lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect();
    prose
        .join("\n")
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// `id` is documented as itself or as a `prefix.<...>` pattern (`package.<name>`).
fn covered(id: &str, doc: &BTreeSet<String>) -> bool {
    doc.contains(id)
        || doc.iter().any(|d| {
            d.find(".<")
                .filter(|_| d.ends_with('>'))
                .is_some_and(|i| id.len() > i + 1 && id.starts_with(&d[..=i]))
        })
}

fn emitted() -> BTreeSet<String> {
    let keys = root().join("fixtures/validate/keys");
    let opts = Options {
        root_keys: vec![keys.join("infrared.pub")],
        stack_keys: vec![keys.join("undercloud.pub")],
        nodes: parse_nodes("undercloud:1,ceph:3").unwrap(),
        nics: vec!["virtio".into(), "e1000".into(), "rtl8139".into()],
        ..Options::default()
    };
    let mut ids = BTreeSet::new();
    for case in [
        "rhel74-ready",
        "ubuntu2404-ready",
        "debian12-pvm",
        "centos7-old",
    ] {
        let t = tempfile::tempdir().unwrap();
        let dir = root().join("fixtures/validate").join(case);
        let probe = FixtureProbe::materialize(&dir, t.path()).unwrap();
        ids.extend(run_host(&opts, &probe).checks.into_iter().map(|c| c.id));
    }
    let hosts = root().join("fixtures/hosts");
    for e in std::fs::read_dir(&hosts).unwrap() {
        let t = tempfile::tempdir().unwrap();
        let probe = FixtureProbe::materialize(&e.unwrap().path(), t.path()).unwrap();
        ids.extend(run_host(&opts, &probe).checks.into_iter().map(|c| c.id));
    }
    // A user that does not exist: libvirt.polkit answers without forking or touching
    // qemu:///system.
    let probe = validate::probe::SystemProbe::new(virthost_model::hostroot::HostRoot::system());
    let host = validate::checks::Host::load(&probe);
    let opts_libvirt = Options {
        connect: "test:///default".into(),
        user: "virthost-doc-ids-no-such-user".parse().unwrap(),
        ..Options::default()
    };
    let libvirt = validate::checks::libvirt::run(
        &opts_libvirt,
        &host,
        &validate::connection::Libvirt::open(&opts_libvirt.connect),
    );
    ids.extend(libvirt.into_iter().map(|c| c.id));
    for mode in &opts.boot_modes {
        for nic in &opts.nics {
            ids.insert(validate::boot::check_id(*mode, nic));
        }
    }
    ids
}

#[test]
fn every_emitted_check_id_is_documented() {
    let doc = documented();
    let ids = emitted();
    // The run really produced each group of ids, so the check below means something.
    for id in [
        "os.release",
        "kvm.access",
        "dev.tun",
        "package.libvirt",
        "ipxe.rom.e1000",
        "libvirt.connect",
        "libvirt.pool",
        "libvirt.domain_type",
        "libvirt.polkit",
        "capacity.filesystem",
        "ssh.keys.stack",
        "ssh.perms.root",
        "boot.ipxe.virtio",
    ] {
        assert!(ids.contains(id), "{id} not emitted: {ids:?}");
    }
    let missing: Vec<&String> = ids.iter().filter(|id| !covered(id, &doc)).collect();
    assert!(
        missing.is_empty(),
        "not in docs/validate-report.md: {missing:?}"
    );
}

#[test]
fn patterns_match_only_their_prefix() {
    let doc: BTreeSet<String> = ["package.<name>", "os.release"].map(String::from).into();
    assert!(covered("package.qemu-kvm", &doc));
    assert!(covered("os.release", &doc));
    assert!(!covered("package.", &doc));
    assert!(!covered("packages.x", &doc));
    assert!(!covered("os.kernel", &doc));
}
