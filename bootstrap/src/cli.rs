//! What `bootstrap` does once its command line is parsed (`main.rs` only parses): every
//! input checked before anything else (the user name, the key files, that the files to
//! write can name the user), the host lock, platform, facts, plan, run, report, exit code.
//! Invalid input exits [`exit::USAGE`] with the host exactly as it was.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::accounts::{self, Accounts};
use crate::cmd;
use crate::desired;
use crate::facts::Facts;
use crate::hostlock::{self, Access, LockError};
use crate::hostroot::HostRoot;
use crate::os::Family;
use crate::pkg::SystemPackageDb;
use crate::plan::{self, Options};
use crate::report::{Human, Report};
use crate::sshkey;
use crate::step::{self, Mode, Summary};
use crate::username::{Rules, UserName};
use crate::virsh::SystemVirsh;

/// Exit codes (README).
pub mod exit {
    /// Apply: converged. `--check`: nothing pending.
    pub const OK: u8 = 0;
    /// A step failed.
    pub const FAILED: u8 = 1;
    /// Bad flag or input: user name, key file, a name the files cannot hold.
    pub const USAGE: u8 = 2;
    /// Apply needs root.
    pub const NOT_ROOT: u8 = 3;
    /// `--check`: changes pending.
    pub const PENDING: u8 = 4;
    /// Unsupported OS without `--os-family`.
    pub const UNSUPPORTED: u8 = 5;
    /// Another bootstrap held the host lock for all of `--lock-wait`; nothing was changed.
    pub const LOCKED: u8 = 6;
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
    /// As given: checked here, against the host family's rules once that is known.
    pub user: String,
    pub sudo: bool,
    pub report: ReportFormat,
    /// `None` for `auto`.
    pub os_family: Option<Family>,
    /// How long to wait for another bootstrap's host lock.
    pub lock_wait: Duration,
}

pub fn run(inv: Invocation) -> ExitCode {
    ExitCode::from(run_at(inv, &HostRoot::system(), &cmd::System))
}

fn fail(code: u8, msg: impl std::fmt::Display) -> u8 {
    eprintln!("bootstrap: {msg}");
    code
}

/// [`run`] on the host laid out under `root`, its commands run by `run` (a test's temporary
/// root and fixture world; `/` and the system in the binary).
#[doc(hidden)]
pub fn run_at(inv: Invocation, root: &HostRoot, run: &dyn cmd::Runner) -> u8 {
    let mode = if inv.check { Mode::Check } else { Mode::Apply };
    // Inputs first, before the host is read or locked: a bad name or a private key given
    // by mistake stops the run here, and is never copied.
    if let Err(e) = UserName::parse(&inv.user, Rules::Any) {
        return fail(exit::USAGE, format!("--user: {e}"));
    }
    let (root_keys, stack_keys) = match (
        sshkey::read_key_files(&inv.root_keys),
        sshkey::read_key_files(&inv.stack_keys),
    ) {
        (Ok(r), Ok(s)) => (r, s),
        (Err(e), _) | (_, Err(e)) => return fail(exit::USAGE, format!("{e:#}")),
    };
    if mode == Mode::Apply && root.is_system() && !nix::unistd::geteuid().is_root() {
        return fail(
            exit::NOT_ROOT,
            "must run as root to change the host (run it with sudo, or use --check to only read)",
        );
    }
    let access = match mode {
        Mode::Apply => Access::Exclusive,
        Mode::Check => Access::Shared,
    };
    let tell = |m: &str| eprintln!("bootstrap: {m}");
    let _lock = match hostlock::acquire(root, access, inv.lock_wait, &tell) {
        Ok(l) => l,
        Err(e @ LockError::Timeout { .. }) => return fail(exit::LOCKED, e),
        // A reader that may not open the lock file reads without it (it changes nothing).
        Err(LockError::Io { source, .. })
            if mode == Mode::Check && source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            None
        }
        Err(e) => return fail(exit::FAILED, e),
    };
    let platform = match Facts::platform(root, inv.os_family) {
        Ok(Ok(p)) => p,
        Ok(Err(unsupported)) => return fail(exit::UNSUPPORTED, unsupported),
        Err(e) => return fail(exit::FAILED, format!("reading os-release: {e:#}")),
    };
    let user = match UserName::parse(&inv.user, Rules::of(platform.family)) {
        Ok(u) => u,
        Err(e) => return fail(exit::USAGE, format!("--user: {e}")),
    };
    if let Err(why) = account_in_reach(root, &user) {
        return fail(exit::USAGE, format!("--user: {why}"));
    }
    let db = SystemPackageDb::new(platform.family, root.clone(), mode == Mode::Apply);
    let facts = match Facts::gather(root, platform, &db) {
        Ok(f) => f,
        Err(e) => return fail(exit::FAILED, format!("reading the host: {e:#}")),
    };
    // Every file that names the user can name it, before any step writes anything.
    let rendered = plan::polkit_backend(&facts)
        .content(&user)
        .and_then(|_| match inv.sudo {
            true => desired::sudoers_content(&user).map(drop),
            false => Ok(()),
        });
    if let Err(e) = rendered {
        return fail(exit::USAGE, format!("--user: {e:#}"));
    }
    let opts = Options {
        user,
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
    let tools = plan::Tools {
        packages: &db,
        virsh: &virsh,
        run,
    };
    let steps = plan::plan(&facts, &opts, tools);
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

/// The VM user is a regular account or a new one: never root, never a system account
/// (uid below login.defs' `UID_MIN`), whose shell, keys and rights bootstrap would change.
fn account_in_reach(root: &HostRoot, user: &UserName) -> Result<(), String> {
    if user.is_root() {
        return Err("the VM user cannot be root (use --root-key for root's keys)".into());
    }
    let Ok(accounts) = Accounts::read(root) else {
        return Ok(()); // the user step reports an unreadable user database
    };
    let min = accounts::read_uid_min(root);
    match accounts.user(user.as_str()) {
        Some(u) if u.uid < min => Err(format!(
            "'{user}' is a system account (uid {}, below UID_MIN {min}): bootstrap would give it \
             a login shell, SSH keys and libvirt rights; choose another name",
            u.uid
        )),
        _ => Ok(()),
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
            lock_wait: Duration::ZERO,
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
        assert_eq!(run_at(inv(), &root, &cmd::System), exit::UNSUPPORTED);
        let key = d.path().join("id_rsa");
        std::fs::write(
            &key,
            "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        )
        .unwrap();
        let mut bad = inv();
        bad.root_keys = vec![key];
        // The key is refused before the OS is even read.
        assert_eq!(run_at(bad, &root, &cmd::System), exit::USAGE);
        let mut missing = inv();
        missing.stack_keys = vec![d.path().join("nope.pub")];
        assert_eq!(run_at(missing, &root, &cmd::System), exit::USAGE);
    }
}
