//! Bad input is refused before validate reads the host, connects to libvirt or creates
//! anything: the real binary, given each input of the table, exits 2 with the reason on
//! stderr and prints no report. Each row runs without `--skip-boot`, so an input that got
//! through would start checks (and a boot proof) instead of exiting 2 at once.

use std::process::Command;

#[test]
fn every_bad_input_exits_2_before_anything_runs() {
    let t = tempfile::tempdir().unwrap();
    let put = |name: &str, bytes: &[u8]| -> String {
        let p = t.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let truncated = put(
        "truncated.pub",
        b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBad\n",
    );
    let huge = put("huge.pub", &vec![b'#'; 300 * 1024]);
    let fifo = t.path().join("fifo.pub");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let fifo = fifo.display().to_string();
    let dir = t.path().display().to_string();
    let hostile = "x\" || true || \"".to_string();
    let long = "a".repeat(33);
    let rows: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--user", &hostile], "is not a valid user name"),
        (vec!["--user", "a\nb"], "'a\\nb' is not a valid user name"),
        (vec!["--user", &long], "at most 32"),
        (vec!["--root-key", &truncated], "truncated"),
        (vec!["--root-key", &fifo], "is a FIFO (named pipe)"),
        (vec!["--stack-key", "/dev/zero"], "is a character device"),
        (vec!["--stack-key", &dir], "is a directory"),
        (vec!["--root-key", &huge], "more than the 256 KiB"),
        (vec!["--root-key", "/etc/x\n"], "control character"),
        (vec!["--nodes", "compute:0"], "a count of 0"),
        (vec!["--nodes", "compute:99999"], "more than 10000"),
        (vec!["--nodes", "x:1:4/8"], "VCPUS/MEM_GIB/DISK_GB"),
        (vec!["--nodes", "compute:1\u{1b}[2J"], "control character"),
        (
            vec!["--connect", "qemu+ext:///system?command=/tmp/x"],
            "ext runs a local command",
        ),
        (
            vec!["--connect", "qemu+ssh://h/system?command=/tmp/x"],
            "'command' parameter",
        ),
        (vec!["--connect", "qemu:///system\n"], "control character"),
        (vec!["--boot-timeout", "5"], "10-3600"),
        (vec!["--boot-timeout", "18446744073709551616"], "10-3600"),
        (vec!["--nic", "ne2k"], "unknown NIC model"),
        (vec!["--report", "yaml"], "human"),
    ];
    for (args, want) in &rows {
        let out = Command::new(env!("CARGO_BIN_EXE_validate"))
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: want {want:?} in: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: printed a report");
        assert!(
            !err.contains("AAAAC3NzaC1lZDI1NTE5AAAAIBad"),
            "{args:?}: echoed a key"
        );
    }
}
