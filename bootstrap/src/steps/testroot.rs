//! A small host under a temporary directory for step tests: `root` and `stack`
//! (uid 1234, gid 1235) in `/etc/passwd`, their homes, and a snapshot of every file to
//! prove a run changed nothing.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::hostroot::HostRoot;
use crate::step::{run, Mode, Outcome, Quiet, Step};

pub use crate::fixture::NO_COMMANDS;

pub const STACK_UID: u32 = 1234;
pub const STACK_GID: u32 = 1235;

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
    daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
    stack:x:1234:1235:Stack:/home/stack:/bin/bash\n";
pub const GROUP: &str = "root:x:0:\ndaemon:x:1:\nstack:x:1235:\n";

/// A host with `root` and `stack`, their homes (`/root` 0700, `/home/stack` 0700 owned by
/// stack), and `/etc/polkit-1` as an installed polkit has it.
pub fn new() -> (tempfile::TempDir, HostRoot) {
    let t = tempfile::tempdir().unwrap();
    let root = HostRoot::at(t.path());
    write(&root, "/etc/passwd", PASSWD, 0o644);
    write(&root, "/etc/group", GROUP, 0o644);
    write(
        &root,
        "/etc/shadow",
        "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nstack:!:19000:0:99999:7:::\n",
        0o640,
    );
    write(
        &root,
        "/etc/gshadow",
        "root:*::\ndaemon:*::\nstack:!::\n",
        0o640,
    );
    for (dir, uid, gid) in [("/root", 0, 0), ("/home/stack", STACK_UID, STACK_GID)] {
        let p = root.path(dir);
        fs::create_dir_all(&p).unwrap();
        std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o700)).unwrap();
    }
    fs::create_dir_all(root.path("/usr/share/polkit-1/actions")).unwrap();
    fs::create_dir_all(root.path("/etc/polkit-1")).unwrap();
    (t, root)
}

pub fn write(root: &HostRoot, path: &str, content: &str, mode: u32) {
    let p = root.path(path);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Applies the one step `step` as `bootstrap` does (check, apply, verify).
pub fn apply_one<'a>(step: impl Step + 'a, root: &HostRoot) -> Outcome {
    run(
        &[Box::new(step) as Box<dyn Step + 'a>],
        root,
        Mode::Apply,
        &Quiet,
        |_| {},
    )
    .remove(0)
}

/// Writes `text` to `rel` under the directory `dir`, creating parents (a fixture file).
pub fn put(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// Every entry under a root: type, mode, owner, inode, mtime and content.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot(BTreeMap<PathBuf, Entry>);

#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    mode: u32,
    uid: u32,
    gid: u32,
    ino: u64,
    mtime: (i64, i64),
    content: Option<Vec<u8>>,
}

impl Snapshot {
    pub fn take(root: &HostRoot) -> Snapshot {
        let mut map = BTreeMap::new();
        walk(root.dir(), root.dir(), &mut map);
        Snapshot(map)
    }
}

fn walk(base: &Path, dir: &Path, map: &mut BTreeMap<PathBuf, Entry>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        let content = m.file_type().is_file().then(|| fs::read(&p).unwrap());
        map.insert(
            p.strip_prefix(base).unwrap().to_path_buf(),
            Entry {
                mode: m.mode(),
                uid: m.uid(),
                gid: m.gid(),
                ino: m.ino(),
                mtime: (m.mtime(), m.mtime_nsec()),
                content,
            },
        );
        if m.file_type().is_dir() {
            walk(base, &p, map);
        }
    }
}
