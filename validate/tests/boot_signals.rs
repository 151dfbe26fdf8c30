//! SIGINT and SIGKILL of the `validate` binary (the one users run) during its iPXE boot proof,
//! against the real libvirtd that `xtask/host/start-services.sh` starts (in netns
//! `virthost-test`). Run as root. Without a reachable libvirtd these tests skip, unless
//! `VIRTHOST_REQUIRE_REAL=1` (set by `cargo xtask test`), where that is a failure.
//!
//! They live in the `validate` package, not in `virthost-tests` with the other real-daemon
//! tests, because only a package's own integration tests get its binary built by cargo
//! (`CARGO_BIN_EXE_validate`); a dependency's binary is never built for another package.
//!
//! Both tests boot a domain: they run one at a time (a lock), as the boot proofs in
//! `tests/tests/validate_real.rs` do (cargo runs test binaries one after another).

use std::io::{Read, Seek};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use validate::boot::{self, PREFIX};
use validate::checks::libvirt::SYSTEM_URI;
use virt::connect::Connect;

static SERIAL: Mutex<()> = Mutex::new(());

/// The real daemon, or `None` (skip) when it is absent and not required.
fn real_libvirt() -> Option<Connect> {
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

/// A running `validate` (full run, one NIC, as root against [`SYSTEM_URI`]); its stdout and
/// stderr go to a temporary file, shown when something goes wrong.
struct Validate {
    child: Child,
    output: std::fs::File,
}

impl Validate {
    fn start() -> Validate {
        let output = tempfile::tempfile().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_validate"))
            .args(["--connect", SYSTEM_URI, "--nic", "virtio", "--user", "root"])
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output.try_clone().unwrap())
            .spawn()
            .expect("spawn validate");
        Validate { child, output }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn output(&mut self) -> String {
        let mut s = String::new();
        self.output.rewind().unwrap();
        let _ = self.output.read_to_string(&mut s);
        s
    }

    /// Kills (if still running) and reaps the child, then panics with its output.
    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let status = self.child.wait();
        panic!("{why}; validate: {status:?}, output:\n{}", self.output());
    }
}

/// Starts `validate`, waits until its test domain exists (its boot proof is running),
/// sends `signal`, and returns the process's pid and exit status.
fn start_validate_and_signal(conn: &Connect, signal: Signal) -> (u32, ExitStatus) {
    let mut v = Validate::start();
    let pid = v.pid();
    let prefix = format!("{PREFIX}{pid}-");
    let started = Instant::now();
    loop {
        let domain_up = conn
            .list_all_domains(0)
            .unwrap()
            .iter()
            .filter_map(|d| d.name().ok())
            .any(|n| n.starts_with(&prefix));
        if domain_up {
            break;
        }
        if let Ok(Some(st)) = v.child.try_wait() {
            v.fail(&format!(
                "validate ended ({st}) before its test domain appeared"
            ));
        }
        if started.elapsed() > Duration::from_secs(30) {
            v.fail("validate's test domain did not appear within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Into the boot loop (the domain boots for ~3-5 s before its callback).
    std::thread::sleep(Duration::from_millis(500));
    let signalled = started.elapsed();
    if let Err(e) = kill(Pid::from_raw(pid as i32), signal) {
        v.fail(&format!("kill -{signal} {pid}: {e}"));
    }
    let status = v.child.wait().unwrap();
    eprintln!(
        "validate {pid}: {signal} {:.1} s after start, ended {:.1} s after start: {status}; \
         output:\n{}",
        signalled.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        v.output()
    );
    (pid, status)
}

/// Names of the domains, networks and serial files that process `pid` created.
fn left_by(conn: &Connect, pid: u32) -> Vec<String> {
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

#[test]
fn sigint_during_the_boot_tears_everything_down() {
    use std::os::unix::process::ExitStatusExt;
    let Some(conn) = real_libvirt() else { return };
    let _l = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (pid, status) = start_validate_and_signal(&conn, Signal::SIGINT);
    assert_eq!(
        status.signal(),
        Some(Signal::SIGINT as i32),
        "validate re-raises SIGINT: {status:?}"
    );
    assert_eq!(left_by(&conn, pid), Vec::<String>::new());
}

#[test]
fn sigkill_leftovers_are_swept_by_the_next_run() {
    use std::os::unix::process::ExitStatusExt;
    let Some(conn) = real_libvirt() else { return };
    let _l = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (pid, status) = start_validate_and_signal(&conn, Signal::SIGKILL);
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status:?}");
    // AUTODESTROY takes the domain with the connection (libvirtd notices the closed socket
    // a moment later); the network and the serial file remain.
    let mut left = left_by(&conn, pid);
    for _ in 0..100 {
        if left.iter().all(|n| !n.ends_with("-virtio")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        left = left_by(&conn, pid);
    }
    assert!(
        left.iter().all(|n| !n.ends_with("-virtio")),
        "domain survived its connection: {left:?}"
    );
    let network_left = conn
        .list_all_networks(0)
        .unwrap()
        .iter()
        .filter_map(|n| n.name().ok())
        .any(|n| left.contains(&n));
    assert!(
        network_left && left.iter().any(|n| n.ends_with(".serial")),
        "a SIGKILL leaves the network and the serial file to the sweep: {left:?}"
    );
    // The sweep every run starts with (`boot::prove`) removes them: the process is gone.
    boot::sweep(&conn);
    assert_eq!(left_by(&conn, pid), Vec::<String>::new());
}
