//! What the real-daemon tests share, across packages (`validate`'s tests of its binary,
//! `virthost-tests`): the real libvirtd that `xtask/host/start-services.sh` starts (libvirtd
//! in netns `virthost-test`), or a skip that becomes a failure under
//! `VIRTHOST_REQUIRE_REAL=1` (which `cargo xtask test` sets); and what a test left behind.
//! A dev-dependency only: nothing here ships in a binary.

pub mod fixtures;
pub mod props;

use virt::connect::Connect;
use virthost_model::desired::LIBVIRT_URI;

/// The real daemon at `qemu:///system`, or `None` (skip) when it is absent or this is not
/// root and `VIRTHOST_REQUIRE_REAL` is not `1`; with it, a panic that says how to start it.
pub fn real_libvirt() -> Option<Connect> {
    virt::error::clear_error_callback();
    let required = std::env::var("VIRTHOST_REQUIRE_REAL").as_deref() == Ok("1");
    let root = nix::unistd::geteuid().is_root();
    match (root, Connect::open(Some(LIBVIRT_URI))) {
        (true, Ok(c)) => Some(c),
        (root, res) => {
            let why = match res {
                Err(e) => format!("libvirtd unreachable at {LIBVIRT_URI}: {e}"),
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

/// Names of the domains and networks of `conn`, and of the files in `$TMPDIR`, that start
/// with `prefix` (validate's boot proof names all three `virthost-validate-<pid>-...`).
pub fn left_by(conn: &Connect, prefix: &str) -> Vec<String> {
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
        .filter(|n| n.starts_with(prefix))
        .collect();
    // Serial files in $TMPDIR, UEFI variable stores in libvirt's NVRAM directory, UEFI TFTP
    // roots (`<network>.tftp`) beside libvirt's dnsmasq files.
    for dir in [
        std::env::temp_dir(),
        "/var/lib/libvirt/qemu/nvram".into(),
        virthost_model::desired::LIBVIRT_DNSMASQ_DIR.into(),
    ] {
        out.extend(
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix)),
        );
    }
    out
}

/// Whether `VIRTHOST_REQUIRE_REAL=1` (set by `cargo xtask test`): then a missing tool, daemon
/// or root is a failure, never a skip.
pub fn real_required() -> bool {
    std::env::var("VIRTHOST_REQUIRE_REAL").as_deref() == Ok("1")
}

/// The path of `tool` on `PATH`, or `None` (skip, said on stderr); under
/// `VIRTHOST_REQUIRE_REAL=1` a missing tool panics with the package that brings it
/// (`xtask/host/install-deps.sh` installs it).
pub fn tool(tool: &str, package: &str) -> Option<std::path::PathBuf> {
    match which::which(tool) {
        Ok(p) => Some(p),
        Err(_) if real_required() => panic!(
            "VIRTHOST_REQUIRE_REAL=1 but {tool} is not on PATH: apt-get install {package} \
             (xtask/host/install-deps.sh does)"
        ),
        Err(_) => {
            eprintln!("skipping: {tool} not on PATH (apt-get install {package})");
            None
        }
    }
}

/// Root, or `None` (skip, said on stderr); under `VIRTHOST_REQUIRE_REAL=1` a panic.
pub fn root() -> Option<()> {
    if nix::unistd::geteuid().is_root() {
        return Some(());
    }
    if real_required() {
        panic!("VIRTHOST_REQUIRE_REAL=1 but this test needs root");
    }
    eprintln!("skipping: needs root");
    None
}

/// Account names that would change what a generated file (a polkit rule, a `.pkla` file, a
/// sudoers line) means if pasted raw: quotes, newlines, separators, wildcards, escapes,
/// Unicode line separators, a NUL, and a few ordinary names beside them. Most are no valid
/// `UserName`; the renderers are tested with them directly, so the quoting holds without the
/// name check. The one list for bootstrap's unit tests and the real-tool tests.
pub const HOSTILE_NAMES: &[&str] = &[
    "stack",
    "x\" || true || \"",
    "x' || true || '",
    "a\nb",
    "*",
    "x\\",
    "x\\\" || true //",
    "</script>",
    "*/ polkit.addRule(function(){return polkit.Result.YES;}); /*",
    "a\u{2028}b",
    "\u{0}",
    "é",
    "%admin",
    "+netgroup",
    "#0",
    "ALL",
    "a,b",
    "a:b",
    "a=b",
    "a!b",
    "a(b)",
    "a b",
    "a$",
    "john.doe",
    "😀",
    "",
    "a\r\nIdentity=unix-user:*",
    "a?",
    "a;unix-user:root",
    " lead",
    "a\u{2029}b",
    "a\tb",
    "\u{1b}[31m",
    "\u{feff}",
];

/// Real ed25519 public keys generated with ssh-keygen for the tests (the private halves were
/// discarded).
pub const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH5MtzcSvmMSc4QzuI91jV6PvabZH2w7/O/Yzu6MM0SI alice@laptop";
/// A second one, another key.
pub const ED25519_2: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBtgOQ5R58u+rj+2AShhdmkxhcTlhdo+RjnASE1SODvN bob@desk";
