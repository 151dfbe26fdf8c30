//! Where the fixtures are (`fixtures/`, fixtures/README.md), listed once for every test: the
//! shared hosts bootstrap plans for and validate reads, and validate's cases, in one layout.
//! A new directory is in every test that walks them, by construction.

use std::path::{Path, PathBuf};

/// The workspace's `fixtures/`.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// The shared fixture hosts (`fixtures/hosts/<name>`), sorted.
pub fn hosts() -> Vec<PathBuf> {
    sorted_dirs(&dir().join("hosts"))
}

/// validate's fixture cases (`fixtures/validate/<case>` with a `probe.json`), sorted.
pub fn cases() -> Vec<PathBuf> {
    sorted_dirs(&dir().join("validate"))
        .into_iter()
        .filter(|d| d.join("probe.json").is_file())
        .collect()
}

/// Every fixture: the shared hosts, then validate's cases.
pub fn all() -> Vec<PathBuf> {
    hosts().into_iter().chain(cases()).collect()
}

/// The shared host `name`.
pub fn host(name: &str) -> PathBuf {
    dir().join("hosts").join(name)
}

/// validate's case `name`.
pub fn case(name: &str) -> PathBuf {
    dir().join("validate").join(name)
}

/// The virsh answers (libvirt 9.0's words) the fixture world's virsh fills its templates
/// from (`fixtures/virsh/libvirt-9.0`).
pub fn virsh_templates() -> PathBuf {
    dir().join("virsh/libvirt-9.0")
}

/// A fixture's name: its directory's.
pub fn name(fixture: &Path) -> String {
    fixture
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}
