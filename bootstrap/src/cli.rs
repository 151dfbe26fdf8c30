//! What `bootstrap` does once its command line is parsed (`main.rs` only parses): root
//! check, key files validated before anything is written, platform, facts, plan, run,
//! report, exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::desired;
use crate::facts::Facts;
use crate::hostroot::HostRoot;
use crate::os::Family;
use crate::pkg::SystemPackageDb;
use crate::plan::{self, Options};
use crate::report::{Human, Report};
use crate::sshkey;
use crate::step::{self, Mode, Summary};
use crate::virsh::SystemVirsh;

/// Exit codes (README, contracts.md).
pub mod exit {
    /// Apply: converged. `--check`: nothing pending.
    pub const OK: u8 = 0;
    /// A step failed.
    pub const FAILED: u8 = 1;
    /// Bad flag, unreadable or invalid key file.
    pub const USAGE: u8 = 2;
    /// Apply needs root.
    pub const NOT_ROOT: u8 = 3;
    /// `--check`: changes pending.
    pub const PENDING: u8 = 4;
    /// Unsupported OS without `--os-family`.
    pub const UNSUPPORTED: u8 = 5;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Human,
    Json,
}

/// A parsed command line.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub check: bool,
    pub root_keys: Vec<PathBuf>,
    pub stack_keys: Vec<PathBuf>,
    pub user: String,
    pub sudo: bool,
    pub report: ReportFormat,
    /// `None` for `auto`.
    pub os_family: Option<Family>,
}

pub fn run(inv: Invocation) -> ExitCode {
    ExitCode::from(run_code(inv, &HostRoot::system()))
}

fn fail(code: u8, msg: impl std::fmt::Display) -> u8 {
    eprintln!("bootstrap: {msg}");
    code
}

fn run_code(inv: Invocation, root: &HostRoot) -> u8 {
    let mode = if inv.check { Mode::Check } else { Mode::Apply };
    if mode == Mode::Apply && !nix::unistd::geteuid().is_root() {
        return fail(
            exit::NOT_ROOT,
            "must run as root to change the host (run it with sudo, or use --check to only read)",
        );
    }
    // Every key file is parsed before anything is read or written: a private key given by
    // mistake stops the run here, and is never copied.
    let (root_keys, stack_keys) = match (
        sshkey::read_key_files(&inv.root_keys),
        sshkey::read_key_files(&inv.stack_keys),
    ) {
        (Ok(r), Ok(s)) => (r, s),
        (Err(e), _) | (_, Err(e)) => return fail(exit::USAGE, format!("{e:#}")),
    };
    let platform = match Facts::platform(root, inv.os_family) {
        Ok(Ok(p)) => p,
        Ok(Err(unsupported)) => return fail(exit::UNSUPPORTED, unsupported),
        Err(e) => return fail(exit::FAILED, format!("reading os-release: {e:#}")),
    };
    let db = SystemPackageDb::new(platform.family, root.clone(), mode == Mode::Apply);
    let facts = match Facts::gather(root, platform, &db) {
        Ok(f) => f,
        Err(e) => return fail(exit::FAILED, format!("reading the host: {e:#}")),
    };
    let opts = Options {
        user: inv.user,
        sudo: inv.sudo,
        root_keys,
        stack_keys,
    };
    let json = inv.report == ReportFormat::Json;
    let human = Human::new(mode, json);
    if !json {
        println!(
            "{} ({}, {}): {} on {}",
            facts.platform.os.pretty_name,
            facts.platform.family,
            facts.platform.support,
            if mode == Mode::Check {
                "checking"
            } else {
                "converging"
            },
            if facts.hostname.is_empty() {
                "this host"
            } else {
                &facts.hostname
            },
        );
    }
    let virsh = SystemVirsh::new(desired::LIBVIRT_URI);
    let steps = plan::plan(&facts, &opts, &db, &virsh);
    let outcomes = step::run(&steps, root, mode, &human, |o| human.outcome(o));
    human.summary(&outcomes);
    if json {
        println!("{}", Report::new(mode, &facts, &outcomes).to_json());
    }
    let s = Summary::of(&outcomes);
    if s.failed > 0 {
        exit::FAILED
    } else if mode == Mode::Check && s.changed > 0 {
        exit::PENDING
    } else {
        exit::OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Invocation {
        Invocation {
            check: true,
            root_keys: vec![],
            stack_keys: vec![],
            user: "stack".into(),
            sudo: false,
            report: ReportFormat::Json,
            os_family: None,
        }
    }

    #[test]
    fn an_unsupported_os_exits_5_and_a_bad_key_exits_2_before_anything() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/os-release"),
            "ID=arch\nPRETTY_NAME=\"Arch Linux\"\n",
        )
        .unwrap();
        let root = HostRoot::at(d.path());
        assert_eq!(run_code(inv(), &root), exit::UNSUPPORTED);
        let key = d.path().join("id_rsa");
        std::fs::write(
            &key,
            "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        )
        .unwrap();
        let mut bad = inv();
        bad.root_keys = vec![key];
        // The key is refused before the OS is even read.
        assert_eq!(run_code(bad, &root), exit::USAGE);
        let mut missing = inv();
        missing.stack_keys = vec![d.path().join("nope.pub")];
        assert_eq!(run_code(missing, &root), exit::USAGE);
    }
}
