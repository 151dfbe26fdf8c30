//! The file-changing steps together on a temporary host root, as the CLI builds them:
//! key files parsed first (a private key stops everything before a write), then the steps
//! run twice (the second run changes nothing).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bootstrap::cmd::Runner;
use bootstrap::cpu::VirtExtension;
use bootstrap::desired::{self, PolkitBackend};
use bootstrap::fixture::World;
use bootstrap::hostroot::HostRoot;
use bootstrap::step::{run, Mode, Quiet, Status, Step};
use bootstrap::steps::files::ManagedFile;
use bootstrap::steps::keys::KeysStep;
use bootstrap::steps::polkit::PolkitStep;
use bootstrap::steps::user::UserStep;
use bootstrap::username::{Rules, UserName};

const PUB: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH5MtzcSvmMSc4QzuI91jV6PvabZH2w7/O/Yzu6MM0SI alice@laptop\n";
const PRIVATE: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\n\
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n\
-----END OPENSSH PRIVATE KEY-----\n";

fn put(root: &HostRoot, path: &str, content: &str, mode: u32) {
    let p = root.path(path);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A host with root and stack (uid 1234), polkit installed, an authorized_keys of root's
/// own, and useradd's configuration.
fn host() -> (tempfile::TempDir, HostRoot) {
    let t = tempfile::tempdir().unwrap();
    let root = HostRoot::at(t.path());
    put(
        &root,
        "/etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\nstack:x:1234:1235::/home/stack:/usr/sbin/nologin\n",
        0o644,
    );
    put(&root, "/etc/group", "root:x:0:\nstack:x:1235:\n", 0o644);
    put(
        &root,
        "/etc/shadow",
        "root:*:19000::::::\nstack:!:19000::::::\n",
        0o640,
    );
    put(&root, "/etc/gshadow", "root:*::\nstack:!::\n", 0o640);
    put(&root, "/root/.ssh/authorized_keys", "# root's own\n", 0o600);
    fs::create_dir_all(root.path("/home/stack")).unwrap();
    std::os::unix::fs::chown(root.path("/home/stack"), Some(1234), Some(1235)).unwrap();
    fs::create_dir_all(root.path("/usr/share/polkit-1/actions")).unwrap();
    (t, root)
}

type Tree = BTreeMap<PathBuf, (u32, u32, u64, i64, i64, Option<Vec<u8>>)>;

fn tree(base: &Path) -> Tree {
    fn walk(base: &Path, dir: &Path, out: &mut Tree) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let content = m.is_file().then(|| fs::read(&p).unwrap());
            let rel = p.strip_prefix(base).unwrap().to_path_buf();
            out.insert(
                rel,
                (
                    m.mode(),
                    m.uid(),
                    m.ino(),
                    m.mtime(),
                    m.mtime_nsec(),
                    content,
                ),
            );
            if m.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Tree::new();
    walk(base, base, &mut out);
    out
}

/// What the CLI does: parse every key file first, then build the steps.
fn build<'a>(
    user: &str,
    root_keys: &[PathBuf],
    stack_keys: &[PathBuf],
    run: &'a dyn Runner,
) -> anyhow::Result<Vec<Box<dyn Step + 'a>>> {
    let user = UserName::parse(user, Rules::Debian)?;
    let apt = bootstrap::os::Family::Apt;
    let root_keys = KeysStep::from_files(&UserName::root(), root_keys, run, apt)?;
    let user_keys = KeysStep::from_files(&user, stack_keys, run, apt)?;
    Ok(vec![
        Box::new(ManagedFile::new(
            "nested",
            desired::NESTED_CONF_PATH,
            desired::nested_conf(VirtExtension::Svm),
            0o644,
        )),
        Box::new(ManagedFile::new(
            "kvm-udev",
            desired::KVM_UDEV_RULE_PATH,
            desired::kvm_udev_rule(),
            0o644,
        )),
        Box::new(UserStep {
            name: user.clone(),
            run,
        }),
        Box::new(PolkitStep {
            user,
            backend: PolkitBackend::Rules,
        }),
        Box::new(root_keys),
        Box::new(user_keys),
    ])
}

#[test]
fn a_private_key_as_root_key_is_refused_before_anything_is_written() {
    let (t, root) = host();
    let keys = tempfile::tempdir().unwrap();
    let private = keys.path().join("id_rsa");
    let public = keys.path().join("id_rsa_undercloud.pub");
    fs::write(&private, PRIVATE).unwrap();
    fs::write(&public, PUB).unwrap();
    let before = tree(t.path());
    let err = build(
        "stack",
        std::slice::from_ref(&private),
        &[public],
        &bootstrap::fixture::NO_COMMANDS,
    )
    .err()
    .unwrap();
    let msg = format!("{err:#}");
    assert!(msg.contains("private key") && msg.contains(".pub"), "{msg}");
    assert!(msg.contains(&*private.to_string_lossy()), "{msg}");
    assert!(
        !msg.contains("b3BlbnNzaC1rZXkt"),
        "key material echoed: {msg}"
    );
    assert_eq!(tree(t.path()), before, "nothing under the root changed");
    let _ = root;
}

#[test]
fn all_file_steps_converge_and_a_second_run_changes_nothing() {
    let (t, root) = host();
    let keys = tempfile::tempdir().unwrap();
    let public = keys.path().join("id_rsa.pub");
    fs::write(&public, PUB).unwrap();
    let world = World::at(t.path());
    let steps = build(
        "stack",
        std::slice::from_ref(&public),
        std::slice::from_ref(&public),
        &world,
    )
    .unwrap();

    let first = run(&steps, &root, Mode::Apply, &Quiet, |_| {});
    for o in &first {
        assert_eq!(o.status, Status::Changed, "{o:?}");
    }
    let root_keys = fs::read_to_string(root.path("/root/.ssh/authorized_keys")).unwrap();
    assert_eq!(root_keys, format!("# root's own\n{PUB}"));
    let m = fs::metadata(root.path("/home/stack/.ssh/authorized_keys")).unwrap();
    assert_eq!((m.mode() & 0o777, m.uid(), m.gid()), (0o600, 1234, 1235));
    let passwd = fs::read_to_string(root.path("/etc/passwd")).unwrap();
    assert!(passwd.contains("/home/stack:/bin/bash"), "{passwd}");

    let before = tree(t.path());
    let check = run(&steps, &root, Mode::Check, &Quiet, |_| {});
    let second = run(&steps, &root, Mode::Apply, &Quiet, |_| {});
    for o in check.iter().chain(&second) {
        assert_eq!(o.status, Status::Ok, "{o:?}");
    }
    assert_eq!(tree(t.path()), before);
}

#[test]
fn the_steps_of_a_user_that_could_not_be_made_are_skipped_and_write_nothing() {
    let (t, root) = host();
    // The user database cannot be read: the user step fails.
    fs::remove_file(root.path("/etc/passwd")).unwrap();
    let keys = tempfile::tempdir().unwrap();
    let public = keys.path().join("id.pub");
    fs::write(&public, PUB).unwrap();
    let world = World::at(t.path());
    let steps = build("ops", &[], std::slice::from_ref(&public), &world).unwrap();
    let out = run(&steps[2..], &root, Mode::Apply, &Quiet, |_| {});
    let by_id = |id: &str| out.iter().find(|o| o.id == id).unwrap();
    assert_eq!(by_id("user").status, Status::Failed, "{out:?}");
    for id in ["polkit", "user-keys"] {
        let o = by_id(id);
        assert_eq!(o.status, Status::Skipped, "{o:?}");
        assert_eq!(o.detail, "needs 'user', which failed");
    }
    assert!(!root.path(desired::POLKIT_RULE_PATH).exists());
    assert!(!t.path().join("home/ops").exists());
}
