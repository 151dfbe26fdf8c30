//! Two bootstrap processes at once, each adding its own root key, round after round: with
//! the host lock taken before the host is read (as `cli::run_at` does), no key is lost.
//! Processes, not threads: the lock is a POSIX record lock, which is per process. The test
//! runs itself as the children (`child ROOT KEY`), so each is a real process doing what a
//! bootstrap run does: lock, read `authorized_keys`, add its key, write, exit.
//!
//! `harness = false`: `main` is the test; it prints `N passed, 0 failed` at the end.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use base64::Engine;
use bootstrap::hostlock::{self, Access};
use bootstrap::hostroot::HostRoot;
use bootstrap::sshkey::PublicKey;
use bootstrap::step::{run, Mode, Quiet, Status, Step};
use bootstrap::steps::keys::KeysStep;
use bootstrap::username::UserName;

const ROUNDS: usize = 8;

/// A well-formed ed25519 public key line whose 32 key bytes come from `seed`.
fn key_line(seed: u64) -> String {
    let mut blob = Vec::new();
    for part in [&b"ssh-ed25519"[..], &{
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&seed.to_be_bytes());
        k[8..16].copy_from_slice(&std::process::id().to_be_bytes().repeat(2));
        k
    }] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    format!(
        "ssh-ed25519 {} run{seed}",
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

fn child(root: &Path, line: &str) -> ! {
    let root = HostRoot::at(root);
    let lock = hostlock::acquire(&root, Access::Exclusive, Duration::from_secs(60), &|_| {})
        .expect("the lock");
    let step = KeysStep {
        user: UserName::root(),
        keys: vec![PublicKey::parse(line).expect("a valid key")],
        run: &bootstrap::fixture::NO_COMMANDS,
        family: bootstrap::os::Family::Apt,
    };
    let steps: Vec<Box<dyn Step>> = vec![Box::new(step)];
    let out = run(&steps, &root, Mode::Apply, &Quiet, |_| {});
    drop(lock);
    std::process::exit(if out[0].status == Status::Changed {
        0
    } else {
        1
    })
}

fn spawn(root: &Path, line: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .arg("child")
        .arg(root)
        .arg(line)
        .spawn()
        .unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        child(Path::new(&args[2]), &args[3]);
    }
    if args.iter().any(|a| a == "--list") {
        println!("concurrent_runs: test");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("etc")).unwrap();
    std::fs::create_dir_all(t.path().join("root")).unwrap();
    std::fs::write(
        t.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\n",
    )
    .unwrap();
    let file = t.path().join("root/.ssh/authorized_keys");
    let mut want: Vec<String> = Vec::new();
    for round in 0..ROUNDS {
        let lines = [key_line(2 * round as u64), key_line(2 * round as u64 + 1)];
        let mut kids: Vec<Child> = lines.iter().map(|l| spawn(t.path(), l)).collect();
        for k in &mut kids {
            assert!(k.wait().unwrap().success(), "round {round}: a run failed");
        }
        want.extend(lines);
        let text = std::fs::read_to_string(&file).unwrap();
        let have: Vec<&str> = text.lines().collect();
        let lost: Vec<&String> = want
            .iter()
            .filter(|w| !have.contains(&w.as_str()))
            .collect();
        assert!(lost.is_empty(), "round {round}: lost {lost:?}");
        assert_eq!(have.len(), want.len(), "no key twice: {text}");
    }
    println!(
        "concurrent_runs: {} keys from {ROUNDS} rounds of 2 concurrent runs, none lost",
        want.len()
    );
    println!("1 passed, 0 failed");
}
