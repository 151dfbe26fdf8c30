//! Bad input never changes the host: the real `bootstrap` binary, as root and in apply mode
//! (no `--check`), given each input of the table, exits 2 with the reason on stderr, prints
//! no plan, and every file bootstrap manages on this machine is byte for byte, mode and
//! owner as it was. Needs root (`VIRTHOST_REQUIRE_REAL=1` makes that a failure, not a skip).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use bootstrap::desired;

/// The valid key of the other tests, and the truncated one (its length field says
/// 32 bytes, 2 follow).
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH5MtzcSvmMSc4QzuI91jV6PvabZH2w7/O/Yzu6MM0SI alice@laptop";
const TRUNCATED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBad";

/// Every path bootstrap writes, with what is under the directories among them.
fn managed() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = [
        desired::POLKIT_RULE_PATH,
        desired::POLKIT_PKLA_PATH,
        desired::NESTED_CONF_PATH,
        desired::KVM_UDEV_RULE_PATH,
        "/etc/passwd",
        "/etc/group",
        "/etc/shadow",
        "/root/.ssh",
        "/root/.ssh/authorized_keys",
        "/etc/sudoers.d",
        "/home",
        "/var/lib/libvirt/images",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    for dir in ["/etc/sudoers.d", "/home"] {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                paths.push(e.path());
                paths.push(e.path().join(".ssh/authorized_keys"));
            }
        }
    }
    paths
}

type State = BTreeMap<PathBuf, Option<(u32, u32, u32, Option<Vec<u8>>)>>;

fn state() -> State {
    managed()
        .into_iter()
        .map(|p| {
            let s = std::fs::symlink_metadata(&p).ok().map(|m| {
                let content = m.is_file().then(|| std::fs::read(&p).unwrap());
                (m.mode(), m.uid(), m.gid(), content)
            });
            (p, s)
        })
        .collect()
}

#[test]
fn every_bad_input_exits_2_and_leaves_the_host_as_it_was() {
    if virthost_testkit::root().is_none() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let put = |name: &str, bytes: &[u8]| -> String {
        let p = t.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let truncated = put("truncated.pub", TRUNCATED.as_bytes());
    // The valid key with bytes appended inside its base64 (re-encoded, so still base64).
    let appended = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut blob = b64.decode(KEY.split(' ').nth(1).unwrap()).unwrap();
        blob.extend_from_slice(b"\x00\x00\x00\x01X");
        put(
            "appended.pub",
            format!("ssh-ed25519 {} alice@laptop\n", b64.encode(blob)).as_bytes(),
        )
    };
    let private = put(
        "id_ed25519",
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n",
    );
    let huge = put("huge.pub", &vec![b'#'; 300 * 1024]);
    let binary = put("binary.pub", b"\xff\xfe\x00ssh-ed25519");
    let cert = put(
        "cert.pub",
        format!(
            "ssh-ed25519-cert-v01@openssh.com {}\n",
            KEY.split(' ').nth(1).unwrap()
        )
        .as_bytes(),
    );
    let fifo = t.path().join("fifo.pub");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let fifo = fifo.display().to_string();
    let dir = t.path().display().to_string();
    let good = put("good.pub", KEY.as_bytes());

    let hostile_user = "x\" || true || \"".to_string();
    let long_user = "a".repeat(33);
    let rows: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--user", &hostile_user], "is not a valid user name"),
        (vec!["--user", "bad name;rm"], "is not a valid user name"),
        (vec!["--user", "a\nb"], "'a\\nb' is not a valid user name"),
        (vec!["--user", &long_user], "33 bytes long, at most 32"),
        (vec!["--user", ""], "it is empty"),
        (vec!["--user", "123"], "all digits"),
        (vec!["--user", "root"], "cannot be root"),
        (
            vec!["--user", "daemon", "--sudo"],
            "is a system account (uid 1",
        ),
        // This machine is Debian: adduser's rules, whatever its useradd would take.
        (
            vec!["--user", "John.Doe"],
            "on Debian and Ubuntu a name starts with a-z",
        ),
        (vec!["--root-key", &truncated], "truncated"),
        (vec!["--root-key", &appended], "trailing"),
        (vec!["--stack-key", &private], "private key"),
        (vec!["--root-key", &fifo], "is a FIFO (named pipe)"),
        (vec!["--root-key", "/dev/zero"], "is a character device"),
        (vec!["--stack-key", &dir], "is a directory"),
        (vec!["--root-key", &huge], "more than the 256 KiB"),
        (vec!["--root-key", &binary], "not a text file"),
        (vec!["--root-key", &cert], "certificate"),
        (
            vec!["--root-key", &good, "--root-key", "/nonexistent.pub"],
            "cannot read",
        ),
        (vec!["--lock-wait=-1"], "--lock-wait"),
        (vec!["--lock-wait", "86401"], "--lock-wait"),
        (vec!["--os-family", "pacman"], "pacman"),
    ];
    let before = state();
    for (args, want) in &rows {
        let out = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: want {want:?} in: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: printed a plan");
        // Never the key material.
        assert!(
            !err.contains("AAAAC3NzaC1lZDI1NTE5AAAAI"),
            "{args:?}: {err}"
        );
        assert_eq!(state(), before, "{args:?} changed the host");
    }
    let _ = Path::new(&dir);
}
