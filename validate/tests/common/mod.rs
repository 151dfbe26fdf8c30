//! What the real-daemon tests of the `validate` binary share: finding the real libvirtd
//! (`xtask/host/start-services.sh` starts it in netns `virthost-test`), the lock that keeps
//! their boots one at a time, and what a `validate` process left behind.
//!
//! Each test binary that declares `mod common;` compiles its own copy and may use only part
//! of it.
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};

use validate::boot::PREFIX;
use validate::checks::libvirt::SYSTEM_URI;
use virt::connect::Connect;

static BOOTS: Mutex<()> = Mutex::new(());

/// Held while a test boots a domain: the host has two cores and TCG boots compete for them.
/// Cargo runs the test binaries one after another, so a lock per binary serializes them all.
pub fn boot_lock() -> MutexGuard<'static, ()> {
    BOOTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The real daemon, or `None` (skip) when it is absent and not required. Without it these
/// tests skip, unless `VIRTHOST_REQUIRE_REAL=1` (set by `cargo xtask test`): then a failure.
pub fn real_libvirt() -> Option<Connect> {
    virt::error::clear_error_callback();
    let required = std::env::var("VIRTHOST_REQUIRE_REAL").as_deref() == Ok("1");
    let root = nix::unistd::geteuid().is_root();
    match (root, Connect::open(Some(SYSTEM_URI))) {
        (true, Ok(c)) => Some(c),
        (root, res) => {
            let why = match res {
                Err(e) => format!("libvirtd unreachable at {SYSTEM_URI}: {e}"),
                Ok(_) => format!("not root (root: {root})"),
            };
            if required {
                panic!("VIRTHOST_REQUIRE_REAL=1 but {why}; run `bash xtask/host/start-services.sh` as root");
            }
            eprintln!("skipping: {why}");
            None
        }
    }
}

/// Names of the domains, networks and serial files (in `$TMPDIR`) that process `pid`
/// created: every name starts with `virthost-validate-<pid>-`.
pub fn left_by(conn: &Connect, pid: u32) -> Vec<String> {
    let prefix = format!("{PREFIX}{pid}-");
    let mut out: Vec<String> = conn
        .list_all_domains(0)
        .unwrap()
        .iter()
        .filter_map(|d| d.name().ok())
        .chain(
            conn.list_all_networks(0)
                .unwrap()
                .iter()
                .filter_map(|n| n.name().ok()),
        )
        .filter(|n| n.starts_with(&prefix))
        .collect();
    out.extend(
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix)),
    );
    out
}
