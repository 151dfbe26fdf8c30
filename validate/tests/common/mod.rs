//! What the real-daemon tests of the `validate` binary share beyond `virthost-testkit`: the
//! lock that keeps their boots one at a time, and what a `validate` process left behind.
//!
//! Each test binary that declares `mod common;` compiles its own copy and may use only part
//! of it.
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};

use validate::boot::PREFIX;
use virt::connect::Connect;

pub use virthost_testkit::real_libvirt;

static BOOTS: Mutex<()> = Mutex::new(());

/// Held while a test boots a domain: the host has two cores and TCG boots compete for them.
/// Cargo runs the test binaries one after another, so a lock per binary serializes them all.
pub fn boot_lock() -> MutexGuard<'static, ()> {
    BOOTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Names of the domains, networks and serial files (in `$TMPDIR`) that process `pid`
/// created: every name starts with `virthost-validate-<pid>-`.
pub fn left_by(conn: &Connect, pid: u32) -> Vec<String> {
    virthost_testkit::left_by(conn, &format!("{PREFIX}{pid}-"))
}
