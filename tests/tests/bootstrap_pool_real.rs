//! `bootstrap`'s `pool` step against the real libvirtd that `xtask/host/start-services.sh`
//! starts (in netns `virthost-test`, reached through its socket). Run as root. Without a
//! reachable libvirtd these tests skip, unless `VIRTHOST_REQUIRE_REAL=1` (set by `cargo
//! xtask test`), where that is a failure.
//!
//! Each test uses a pool of its own, `virthost-test-pool-<pid>-<test>`, in a temporary
//! directory, never the machine's `default`; a guard destroys and undefines it even when
//! the test fails. What the step did is read back through libvirt's API (the `virt`
//! crate), not through the step's own virsh parsers.

use virthost_testkit::real_libvirt;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bootstrap::hostroot::HostRoot;
use bootstrap::step::{run, Mode, Outcome, Quiet, Status, Step};
use bootstrap::steps::pool::PoolStep;
use bootstrap::virsh::SystemVirsh;
use validate::checks::libvirt::{pool_target_path, SYSTEM_URI};
use virt::connect::Connect;

const PREFIX: &str = "virthost-test-pool-";

fn virsh(args: &[&str]) -> std::process::Output {
    Command::new("virsh")
        .args(["-c", SYSTEM_URI])
        .args(args)
        .output()
        .expect("running virsh")
}

/// `virsh ARGS`, which must succeed (the test's own setup).
fn virsh_ok(args: &[&str]) {
    let out = virsh(args);
    assert!(
        out.status.success(),
        "virsh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A pool name and directory of this test alone; on drop (also when the test panics) the
/// pool is destroyed and undefined, then the directory removed.
struct TestPool {
    name: String,
    /// The directory the step is to use: `<tempdir>/images`, not there at first.
    path: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl TestPool {
    fn new(test: &str) -> TestPool {
        let dir = tempfile::Builder::new()
            .prefix(PREFIX)
            .tempdir()
            .expect("a temporary directory");
        TestPool {
            name: format!("{PREFIX}{}-{test}", std::process::id()),
            path: dir.path().join("images"),
            dir: Some(dir),
        }
    }

    fn step<'a>(&self, virsh: &'a SystemVirsh) -> PoolStep<'a> {
        PoolStep {
            name: self.name.clone(),
            path: self.path.display().to_string(),
            virsh,
            wait: Duration::from_secs(10),
        }
    }

    fn other_dir(&self) -> PathBuf {
        let p = self.dir.as_ref().unwrap().path().join("users-choice");
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for TestPool {
    fn drop(&mut self) {
        // Either may fail (not active, not defined): what matters is what is left.
        let _ = virsh(&["pool-destroy", &self.name]);
        let _ = virsh(&["pool-undefine", &self.name]);
        let left = virsh(&["pool-info", &self.name]).status.success();
        drop(self.dir.take());
        if left && !std::thread::panicking() {
            panic!("pool {} is still defined after cleanup", self.name);
        }
    }
}

/// Destroys and undefines a pool a test made by hand, on drop.
struct Undefine(String);

impl Drop for Undefine {
    fn drop(&mut self) {
        let _ = virsh(&["pool-destroy", &self.0]);
        let _ = virsh(&["pool-undefine", &self.0]);
    }
}

fn go(t: &TestPool, mode: Mode) -> Outcome {
    let v = SystemVirsh::new(SYSTEM_URI);
    let steps: Vec<Box<dyn Step + '_>> = vec![Box::new(t.step(&v))];
    let o = run(&steps, &HostRoot::system(), mode, &Quiet, |_| {}).remove(0);
    eprintln!("{mode:?}: {o:?}");
    o
}

/// What libvirt itself says about the pool: (active, autostart, persistent, target path).
fn libvirt_state(conn: &Connect, name: &str) -> Option<(bool, bool, bool, PathBuf)> {
    let pool = conn.lookup_storage_pool_by_name(name).ok()?;
    let xml = pool.xml_desc(0).unwrap();
    Some((
        pool.is_active().unwrap(),
        pool.autostart().unwrap(),
        pool.is_persistent().unwrap(),
        pool_target_path(&xml).expect("a target path"),
    ))
}

#[test]
fn converges_a_missing_pool_then_finishes_half_done_ones() {
    let Some(conn) = real_libvirt() else { return };
    let t = TestPool::new("converge");
    let p = t.path.display().to_string();
    let n = &t.name;

    // Check: four changes pending, nothing made.
    let o = go(&t, Mode::Check);
    assert_eq!(o.status, Status::Changed, "{o:?}");
    assert_eq!(
        o.changes,
        [
            format!("virsh pool-define-as {n} dir --target {p}"),
            format!("virsh pool-build {n} (creates {p})"),
            format!("virsh pool-start {n}"),
            format!("virsh pool-autostart {n}"),
        ]
    );
    assert!(libvirt_state(&conn, n).is_none() && !t.path.exists());

    // Apply: defined, built, active, autostarted, at that path.
    let o = go(&t, Mode::Apply);
    assert_eq!(o.status, Status::Changed, "{o:?}");
    assert_eq!(
        o.detail,
        format!("storage pool '{n}': dir at {p}, running, autostart")
    );
    assert_eq!(
        libvirt_state(&conn, n),
        Some((true, true, true, t.path.clone()))
    );
    assert!(t.path.is_dir());

    // Second check and second apply: nothing.
    for mode in [Mode::Check, Mode::Apply] {
        let o = go(&t, mode);
        assert_eq!((o.status, o.changes.len()), (Status::Ok, 0), "{o:?}");
    }

    // Interrupted after define-and-autostart (pool-destroy): only the start is missing.
    virsh_ok(&["pool-destroy", n]);
    let o = go(&t, Mode::Check);
    assert_eq!(o.changes, [format!("virsh pool-start {n}")], "{o:?}");
    assert_eq!(
        libvirt_state(&conn, n),
        Some((false, true, true, t.path.clone()))
    );
    let o = go(&t, Mode::Apply);
    assert_eq!(o.status, Status::Changed, "{o:?}");
    assert_eq!(
        libvirt_state(&conn, n),
        Some((true, true, true, t.path.clone()))
    );

    // Defined only, its directory gone: build, start, autostart.
    virsh_ok(&["pool-destroy", n]);
    virsh_ok(&["pool-autostart", "--disable", n]);
    std::fs::remove_dir(&t.path).unwrap();
    let o = go(&t, Mode::Check);
    assert_eq!(
        o.changes,
        [
            format!("virsh pool-build {n} (creates {p})"),
            format!("virsh pool-start {n}"),
            format!("virsh pool-autostart {n}"),
        ]
    );
    let o = go(&t, Mode::Apply);
    assert_eq!(o.status, Status::Changed, "{o:?}");
    assert_eq!(
        libvirt_state(&conn, n),
        Some((true, true, true, t.path.clone()))
    );
    assert_eq!(go(&t, Mode::Check).status, Status::Ok);
}

#[test]
fn a_pool_of_that_name_elsewhere_is_left_alone() {
    let Some(conn) = real_libvirt() else { return };
    let t = TestPool::new("foreign");
    let other = t.other_dir();
    let other_s = other.display().to_string();
    virsh_ok(&["pool-define-as", &t.name, "dir", "--target", &other_s]);
    // Not running: not ready, and bootstrap says what to do without touching it.
    for mode in [Mode::Check, Mode::Apply] {
        let o = go(&t, mode);
        assert_eq!((o.status, o.changes.len()), (Status::Failed, 0), "{o:?}");
        assert!(
            o.detail.contains(&format!(
                "is a dir pool at {other_s} (inactive, no autostart), not dir at {}",
                t.path.display()
            )) && o.detail.contains(&format!("virsh pool-start {}", t.name)),
            "{o:?}"
        );
    }
    // Untouched: still inactive, not autostarted, at the user's path; ours never made.
    assert_eq!(
        libvirt_state(&conn, &t.name),
        Some((false, false, true, other.clone()))
    );
    assert!(!t.path.exists());
    // Once the operator starts it, their pool meets the requirement as it is.
    virsh_ok(&["pool-start", &t.name]);
    for mode in [Mode::Check, Mode::Apply] {
        let o = go(&t, mode);
        assert_eq!((o.status, o.changes.len()), (Status::Ok, 0), "{o:?}");
        assert!(o.detail.contains("left as the user defined it"), "{o:?}");
    }
    assert_eq!(
        libvirt_state(&conn, &t.name),
        Some((true, false, true, other.clone()))
    );
    assert!(!t.path.exists());
}

#[test]
fn a_transient_pool_at_the_path_is_made_persistent_and_autostarted() {
    let Some(conn) = real_libvirt() else { return };
    let t = TestPool::new("transient");
    std::fs::create_dir(&t.path).unwrap();
    let p = t.path.display().to_string();
    virsh_ok(&["pool-create-as", &t.name, "dir", "--target", &p]);
    assert_eq!(
        libvirt_state(&conn, &t.name),
        Some((true, false, false, t.path.clone()))
    );
    let o = go(&t, Mode::Check);
    assert_eq!(o.changes.len(), 2, "{o:?}");
    assert!(o.changes[0].contains("transient"), "{o:?}");
    let o = go(&t, Mode::Apply);
    assert_eq!(o.status, Status::Changed, "{o:?}");
    assert_eq!(
        libvirt_state(&conn, &t.name),
        Some((true, true, true, t.path.clone()))
    );
    // The XML the step wrote for `pool-define` is gone.
    let tmp = std::env::temp_dir();
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("virthost-pool-{}", t.name))
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(Path::new(&p).is_dir());
}

#[test]
fn a_directory_another_pool_has_fails_clearly_and_is_left_alone() {
    let Some(conn) = real_libvirt() else { return };
    let t = TestPool::new("taken");
    std::fs::create_dir(&t.path).unwrap();
    let p = t.path.display().to_string();
    let other = format!("{}-other", t.name);
    let _other = Undefine(other.clone());
    virsh_ok(&["pool-define-as", &other, "dir", "--target", &p]);
    let o = go(&t, Mode::Apply);
    assert_eq!(o.status, Status::Failed, "{o:?}");
    assert!(
        o.detail
            .starts_with(&format!("another storage pool already uses {p}"))
            && o.detail
                .contains(&format!("pool-define-as {} dir --target {p}", t.name))
            && o.detail
                .contains(&format!("Storage source conflict with pool: '{other}'")),
        "{o:?}"
    );
    assert!(libvirt_state(&conn, &t.name).is_none());
    assert_eq!(
        libvirt_state(&conn, &other),
        Some((false, false, true, t.path.clone()))
    );
}
