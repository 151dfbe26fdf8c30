//! `bootstrap`: converges this host into a libvirt hypervisor. Parses the command line and
//! hands it to `bootstrap::cli::run`.

use std::path::PathBuf;
use std::process::ExitCode;

use bootstrap::cli::{self, Invocation, ReportFormat};
use bootstrap::desired;
use bootstrap::hostlock;
use bootstrap::os::Family;
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Report {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OsFamily {
    Auto,
    Yum,
    Dnf,
    Apt,
}

/// Converges this host into a libvirt hypervisor for virtual bare metal: packages, iPXE
/// ROMs, KVM and nesting, /dev/kvm, the VM user with polkit rights, SSH keys, libvirt
/// running, its storage pool `default`. Idempotent: run it again at any time.
#[derive(Debug, Parser)]
#[command(name = "bootstrap", version, after_help = EXIT_CODES)]
struct Cli {
    /// Read everything, change nothing, print the plan; exit 4 when changes are pending.
    #[arg(long)]
    check: bool,
    /// Add the OpenSSH public key(s) in FILE to root's authorized_keys (repeatable).
    #[arg(long = "root-key", value_name = "FILE")]
    root_key: Vec<PathBuf>,
    /// Add the OpenSSH public key(s) in FILE to the VM user's authorized_keys (repeatable).
    #[arg(long = "stack-key", value_name = "FILE")]
    stack_key: Vec<PathBuf>,
    /// The user that manages libvirt VMs.
    #[arg(long, value_name = "NAME", default_value = desired::DEFAULT_USER)]
    user: String,
    /// Give that user passwordless sudo (/etc/sudoers.d/).
    #[arg(long)]
    sudo: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    report: Report,
    /// Package-manager family; anything but auto drives an unsupported OS, best effort.
    #[arg(long = "os-family", value_enum, default_value = "auto")]
    os_family: OsFamily,
    /// Seconds to wait while another bootstrap holds this host's lock (0-86400); then exit 6.
    #[arg(long = "lock-wait", value_name = "SECONDS", default_value_t = hostlock::DEFAULT_WAIT.as_secs(), value_parser = clap::value_parser!(u64).range(0..=86400))]
    lock_wait: u64,
}

const EXIT_CODES: &str = "Exit codes: 0 ok (apply: converged; --check: nothing pending), \
1 a step failed, 2 usage error (bad flag, user name or key file; nothing was changed), 3 not \
root (apply only), 4 --check: changes pending, 5 unsupported OS without --os-family, 6 another \
bootstrap held the host lock for all of --lock-wait (nothing was changed).";

fn main() -> ExitCode {
    let c = Cli::parse();
    cli::run(Invocation {
        check: c.check,
        root_keys: c.root_key,
        stack_keys: c.stack_key,
        user: c.user,
        sudo: c.sudo,
        report: match c.report {
            Report::Human => ReportFormat::Human,
            Report::Json => ReportFormat::Json,
        },
        os_family: match c.os_family {
            OsFamily::Auto => None,
            OsFamily::Yum => Some(Family::Yum),
            OsFamily::Dnf => Some(Family::Dnf),
            OsFamily::Apt => Some(Family::Apt),
        },
        lock_wait: std::time::Duration::from_secs(c.lock_wait),
    })
}
