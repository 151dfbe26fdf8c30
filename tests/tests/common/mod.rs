//! What the real-daemon test files of this package share: the libvirtd that
//! `xtask/host/start-services.sh` starts, or a skip (a failure under
//! `VIRTHOST_REQUIRE_REAL=1`, which `cargo xtask test` sets).

use validate::checks::libvirt::SYSTEM_URI;
use virt::connect::Connect;

/// The real daemon, or `None` (skip) when it is absent and not required.
pub fn real_libvirt() -> Option<Connect> {
    virt::error::clear_error_callback();
    let required = std::env::var("VIRTHOST_REQUIRE_REAL").as_deref() == Ok("1");
    let root = is_root();
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

/// Whether this process runs as root (real uid 0), read from `/proc/self/status`.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}
