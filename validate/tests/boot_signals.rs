//! SIGINT and SIGKILL of the `validate` binary (the one users run) during its iPXE boot proof,
//! against the real libvirtd that `xtask/host/start-services.sh` starts (in netns
//! `virthost-test`). Run as root. Without a reachable libvirtd these tests skip, unless
//! `VIRTHOST_REQUIRE_REAL=1` (set by `cargo xtask test`), where that is a failure.
//!
//! They live in the `validate` package, not in `virthost-tests` with the other real-daemon
//! tests, because only a package's own integration tests get its binary built by cargo
//! (`CARGO_BIN_EXE_validate`); a dependency's binary is never built for another package.
//!
//! Every test boots a domain: they run one at a time (`common::boot_lock`), as the boot
//! proofs in `tests/tests/validate_real.rs` do (cargo runs test binaries one after another).

mod common;

use std::io::{Read, Seek};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{boot_lock, left_by, real_libvirt};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use validate::boot::{self, PREFIX};
use validate::checks::libvirt::SYSTEM_URI;
use virt::connect::Connect;

/// A running `validate` (full run, one NIC, as root against [`SYSTEM_URI`]); its stdout and
/// stderr go to a temporary file, shown when something goes wrong.
struct Validate {
    child: Child,
    output: std::fs::File,
}

/// How `validate` finds SIGINT when it starts.
#[derive(Clone, Copy, PartialEq)]
enum Sigint {
    /// As in a terminal: the default action (whatever the test runner inherited: a script's
    /// background job, for one, has SIGINT ignored).
    Default,
    /// Ignored, as in a script's background job (`validate &` in a non-interactive shell).
    Ignored,
}

impl Validate {
    fn start(sigint: Sigint) -> Validate {
        use nix::sys::signal::{signal, SigHandler};
        use std::os::unix::process::CommandExt;
        let output = tempfile::tempfile().unwrap();
        let handler = match sigint {
            Sigint::Default => SigHandler::SigDfl,
            Sigint::Ignored => SigHandler::SigIgn,
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_validate"));
        cmd.args(["--connect", SYSTEM_URI, "--nic", "virtio", "--user", "root"])
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output.try_clone().unwrap());
        // SAFETY: signal(2) is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                signal(Signal::SIGINT, handler)
                    .map(drop)
                    .map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn().expect("spawn validate");
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

/// Whether this host boots the two modes side by side (`boot::schedule`): then both test
/// domains run at once and the signal finds both.
fn side_by_side() -> bool {
    boot::schedule::on_this_host(2, false).side_by_side
}

/// Starts `validate` with SIGINT as `sigint` says and waits until its test domains exist
/// (its boot proof is running: the BIOS and the UEFI one when the modes run side by side,
/// else the first).
fn start_validate_booting(conn: &Connect, sigint: Sigint) -> (Validate, Instant) {
    let mut v = Validate::start(sigint);
    let pid = v.pid();
    let wanted = if side_by_side() { 2 } else { 1 };
    let started = Instant::now();
    loop {
        let domains_up = domains_of(conn, pid)
            .iter()
            .filter(|n| n.ends_with("-virtio"))
            .count();
        if domains_up >= wanted {
            break;
        }
        if let Ok(Some(st)) = v.child.try_wait() {
            v.fail(&format!(
                "validate ended ({st}) before its test domain appeared"
            ));
        }
        if started.elapsed() > Duration::from_secs(30) {
            v.fail(&format!(
                "validate's {wanted} test domain(s) did not appear within 30 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (v, started)
}

/// Domains of `pid`'s boot proof that exist now.
fn domains_of(conn: &Connect, pid: u32) -> Vec<String> {
    let prefix = format!("{PREFIX}{pid}-");
    conn.list_all_domains(0)
        .unwrap()
        .iter()
        .filter_map(|d| d.name().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// Starts `validate` (SIGINT as in a terminal), waits until its boot proof runs, sends
/// `signal`, and returns the process's pid and exit status.
fn start_validate_and_signal(conn: &Connect, signal: Signal) -> (u32, ExitStatus) {
    let (v, started) = start_validate_booting(conn, Sigint::Default);
    let (pid, status, _) = signal_and_wait(v, started, signal);
    (pid, status)
}

/// Sends `signal` to the booting `v` and waits for it to end: its pid, exit status and
/// output.
fn signal_and_wait(mut v: Validate, started: Instant, signal: Signal) -> (u32, ExitStatus, String) {
    let pid = v.pid();
    // Into the boot loop (the domain boots for ~3-5 s before its callback).
    std::thread::sleep(Duration::from_millis(500));
    let signalled = started.elapsed();
    if let Err(e) = kill(Pid::from_raw(pid as i32), signal) {
        v.fail(&format!("kill -{signal} {pid}: {e}"));
    }
    let status = v.child.wait().unwrap();
    let output = v.output();
    eprintln!(
        "validate {pid}: {signal} {:.1} s after start, ended {:.1} s after start: {status}; \
         output:\n{output}",
        signalled.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    (pid, status, output)
}

#[test]
fn sigint_during_the_boot_tears_everything_down() {
    use std::os::unix::process::ExitStatusExt;
    let Some(conn) = real_libvirt() else { return };
    let _l = boot_lock();
    let (pid, status) = start_validate_and_signal(&conn, Signal::SIGINT);
    assert_eq!(
        status.signal(),
        Some(Signal::SIGINT as i32),
        "validate re-raises SIGINT: {status:?}"
    );
    // Nothing of either lane: domains, both networks, serial files, the UEFI NVRAM file.
    assert_eq!(left_by(&conn, pid), Vec::<String>::new());
}

#[test]
fn an_ignored_sigint_stays_ignored() {
    let Some(conn) = real_libvirt() else { return };
    let _l = boot_lock();
    let (mut v, _) = start_validate_booting(&conn, Sigint::Ignored);
    let pid = v.pid();
    std::thread::sleep(Duration::from_millis(250));
    if let Err(e) = kill(Pid::from_raw(pid as i32), Signal::SIGINT) {
        v.fail(&format!("kill -INT {pid}: {e}"));
    }
    // validate runs to its end, as if no signal had come: no proof is cut short.
    let until = Instant::now() + Duration::from_secs(600);
    let status = loop {
        match v.child.try_wait().unwrap() {
            Some(st) => break st,
            None if Instant::now() > until => v.fail("validate did not end within 600 s"),
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let output = v.output();
    assert!(status.code().is_some(), "{status:?}: {output}");
    assert!(!output.contains("interrupted"), "{output}");
    assert_eq!(left_by(&conn, pid), Vec::<String>::new());
}

#[test]
fn sigkill_leftovers_are_swept_by_the_next_run() {
    use std::os::unix::process::ExitStatusExt;
    let Some(conn) = real_libvirt() else { return };
    let _l = boot_lock();
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
    if side_by_side() {
        // Both lanes' networks and serial files (the UEFI lane's NVRAM file too, unless
        // libvirt removed it with the domain).
        let nets = conn
            .list_all_networks(0)
            .unwrap()
            .iter()
            .filter_map(|n| n.name().ok())
            .filter(|n| left.contains(n))
            .count();
        let serials = left.iter().filter(|n| n.ends_with(".serial")).count();
        assert_eq!((nets, serials), (2, 2), "{left:?}");
    }
    // The sweep every run starts with (`boot::prove`) removes them: the process is gone.
    boot::sweep(&conn);
    assert_eq!(left_by(&conn, pid), Vec::<String>::new());
}
