//! The command line: argv to [`Options`]. Every usage error (clap's, a bad `--nodes`, an
//! unreadable or invalid key file, an unknown NIC model) exits 2 with a message.

use std::path::PathBuf;

use clap::Parser;
use virthost_model::desired::{DEFAULT_USER, NIC_ROMS};
use virthost_model::username::UserName;

use crate::options::{
    check_connect, parse_nodes, BootMode, DomainType, NodeGroup, NodesError, Options, ReportFormat,
    UriError, BOOT_TIMEOUT_RANGE_S, DEFAULT_BOOT_TIMEOUT_S, DEFAULT_CONNECT, NODES_HELP,
};

#[derive(Debug, Parser)]
#[command(
    name = "validate",
    version,
    about = "Proves this host is ready to run libvirt VMs as iPXE-booted virtual bare metal",
    long_about = "Proves this host is ready to run libvirt VMs as iPXE-booted virtual bare metal.\n\n\
        Checks the OS, CPU, hardware virtualization, capacity for the planned VMs, packages and \
        iPXE ROMs, libvirt, the stack user, SSH access, and boots a throwaway test domain over \
        iPXE. Exit status: 0 nothing FAILed, 1 something FAILed, 2 usage error."
)]
pub struct Cli {
    /// Output format: human (aligned lines) or json (docs/validate-report.md).
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = ReportFormat::Human)]
    report: ReportFormat,
    /// libvirt URI to check and to boot the test domain on.
    #[arg(long, value_name = "URI", default_value = DEFAULT_CONNECT, value_parser = connect_uri)]
    connect: String,
    #[arg(long, value_name = "SPEC", help = NODES_HELP, value_parser = parse_nodes_arg)]
    nodes: Option<Nodes>,
    /// Memory or disk beyond what is free WARNs instead of FAILs (default: FAIL when the need
    /// is more than 20% above what is available, WARN within 20%).
    #[arg(long)]
    overcommit: bool,
    /// Missing hardware virtualization (no vmx/svm, no KVM) WARNs instead of FAILs: guests
    /// run under TCG emulation.
    #[arg(long)]
    allow_emulation: bool,
    /// Skip the iPXE boot proof.
    #[arg(long)]
    skip_boot: bool,
    /// Skip the power proof (define, boot device, start, reset, stop, undefine as --user)
    #[arg(long)]
    skip_power: bool,
    /// Run the boot modes and the power proof one after the other
    ///
    /// By default, where the host has a CPU and the memory for a test domain per boot mode,
    /// the modes boot side by side (a network each) and the power proof runs beside the
    /// UEFI boot; one after the other each step's seconds are measured undisturbed.
    #[arg(long)]
    sequential: bool,
    /// The libvirt domain type the boot proof boots
    ///
    /// The type your deployment will use. Default: kvm where hardware virtualization works,
    /// else qemu. A type that cannot run here FAILs the proof; it is never swapped for the
    /// other.
    #[arg(long, value_name = "TYPE", conflicts_with = "skip_boot", value_enum)]
    domain_type: Option<DomainType>,
    /// Seconds each NIC model's boot proof may take, domain start to callback (10-3600)
    ///
    /// Raise it on slow hosts (TCG, loaded or nested ones). A hung domain is still reported
    /// after 15 s (kvm) or 45 s (qemu) of console silence, whatever the timeout.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_BOOT_TIMEOUT_S, conflicts_with = "skip_boot", value_parser = boot_timeout)]
    boot_timeout: u64,
    /// Firmware of the boot proof's test domains: bios, uefi or both (each boots every --nic)
    #[arg(
        long = "boot-mode",
        value_name = "MODES",
        value_delimiter = ',',
        value_enum,
        default_value = "bios,uefi",
        conflicts_with = "skip_boot"
    )]
    boot_modes: Vec<BootMode>,
    /// NIC models whose iPXE ROMs must be present and that the boot proof boots.
    #[arg(long = "nic", value_name = "MODELS", value_delimiter = ',', default_value = "virtio", value_parser = parse_nic)]
    nics: Vec<String>,
    /// The user that manages libvirt VMs.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_USER, value_parser = user_name)]
    user: UserName,
    /// Public key file whose keys root's authorized_keys must hold (repeatable).
    #[arg(long = "root-key", value_name = "FILE", value_parser = key_file)]
    root_keys: Vec<PathBuf>,
    /// Public key file whose keys the user's authorized_keys must hold (repeatable).
    #[arg(long = "stack-key", value_name = "FILE", value_parser = key_file)]
    stack_keys: Vec<PathBuf>,
    /// For tests: read a captured host (fixtures/validate/CASE) instead of this one; only the
    /// host checks run (no libvirt, no boot proof). Not in the shipped binary.
    #[cfg(feature = "fixtures")]
    #[arg(long, value_name = "DIR", hide = true)]
    pub fixture: Option<PathBuf>,
}

/// A parsed `--nodes` (a newtype: clap gives `Vec` fields a meaning of their own).
#[derive(Debug, Clone)]
struct Nodes(Vec<NodeGroup>);

/// A value clap's parsers refuse (clap shows it after `invalid value '...' for '--opt'`).
#[derive(Debug, thiserror::Error)]
enum ArgError {
    #[error("'{0}' holds a control character")]
    ControlCharacter(String),
    #[error(transparent)]
    Nodes(#[from] NodesError),
    #[error("unknown NIC model '{nic}' (known: {})", .known.join(", "))]
    UnknownNic {
        nic: String,
        known: Vec<&'static str>,
    },
    #[error("expected whole seconds, {lo}-{hi}")]
    BootTimeout { lo: u64, hi: u64 },
    /// `sshkey::read_key_file`'s error chain, in full.
    #[error("{0:#}")]
    KeyFile(anyhow::Error),
}

/// `Err` when `s` holds a control character.
fn printable(s: &str) -> Result<(), ArgError> {
    if s.chars().any(char::is_control) {
        return Err(ArgError::ControlCharacter(s.escape_default().to_string()));
    }
    Ok(())
}

fn parse_nodes_arg(s: &str) -> Result<Nodes, ArgError> {
    printable(s)?;
    Ok(Nodes(parse_nodes(s)?))
}

fn connect_uri(s: &str) -> Result<String, UriError> {
    check_connect(s).map(|()| s.to_string())
}

/// An account name either family's tools accept (`virthost_model::username`).
fn user_name(s: &str) -> Result<UserName, virthost_model::username::NameError> {
    s.parse::<UserName>()
}

fn parse_nic(s: &str) -> Result<String, ArgError> {
    let known: Vec<&'static str> = NIC_ROMS.iter().map(|(m, _)| *m).collect();
    if known.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(ArgError::UnknownNic {
            nic: s.to_string(),
            known,
        })
    }
}

fn boot_timeout(s: &str) -> Result<u64, ArgError> {
    let (lo, hi) = (*BOOT_TIMEOUT_RANGE_S.start(), *BOOT_TIMEOUT_RANGE_S.end());
    match s.parse::<u64>() {
        Ok(n) if BOOT_TIMEOUT_RANGE_S.contains(&n) => Ok(n),
        _ => Err(ArgError::BootTimeout { lo, hi }),
    }
}

fn key_file(s: &str) -> Result<PathBuf, ArgError> {
    printable(s)?;
    let p = PathBuf::from(s);
    virthost_model::sshkey::read_key_file(&p).map_err(ArgError::KeyFile)?;
    Ok(p)
}

impl Cli {
    pub fn options(&self) -> Options {
        Options {
            connect: self.connect.clone(),
            nodes: self.nodes.clone().map(|n| n.0).unwrap_or_default(),
            overcommit: self.overcommit,
            allow_emulation: self.allow_emulation,
            skip_boot: self.skip_boot,
            skip_power: self.skip_power,
            sequential: self.sequential,
            domain_type: self.domain_type,
            boot_timeout: std::time::Duration::from_secs(self.boot_timeout),
            boot_modes: {
                let mut m = self.boot_modes.clone();
                m.sort();
                m.dedup();
                m
            },
            nics: self.nics.clone(),
            user: self.user.clone(),
            root_keys: self.root_keys.clone(),
            stack_keys: self.stack_keys.clone(),
            report: self.report,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn argv_to_options() {
        let cli = Cli::try_parse_from([
            "validate",
            "--nodes",
            "undercloud:1,compute:2",
            "--nic",
            "virtio,e1000",
            "--report",
            "json",
            "--allow-emulation",
            "--domain-type",
            "qemu",
            "--boot-timeout",
            "180",
        ])
        .unwrap();
        let o = cli.options();
        assert_eq!(o.nodes.len(), 2);
        assert_eq!(o.nics, vec!["virtio", "e1000"]);
        assert_eq!(o.report, ReportFormat::Json);
        assert!(o.allow_emulation && !o.overcommit);
        assert_eq!(o.domain_type, Some(DomainType::Qemu));
        assert_eq!(o.boot_timeout.as_secs(), 180);
        let d = Cli::try_parse_from(["validate"]).unwrap().options();
        assert_eq!(d, Options::default());
        assert!(Cli::try_parse_from(["validate", "--nic", "ne2k"]).is_err());
        assert!(Cli::try_parse_from(["validate", "--domain-type", "xen"]).is_err());
        assert!(Cli::try_parse_from(["validate", "--skip-boot", "--domain-type", "kvm"]).is_err());
        assert!(Cli::try_parse_from(["validate", "--skip-boot", "--boot-timeout", "90"]).is_err());
        assert_eq!(
            Cli::try_parse_from(["validate", "--domain-type", "kvm"])
                .unwrap()
                .options()
                .domain_type,
            Some(DomainType::Kvm)
        );
        for bad in ["9", "3601", "1m", "-5", "99999999999999999999"] {
            assert!(
                Cli::try_parse_from(["validate", "--boot-timeout", bad]).is_err(),
                "{bad}"
            );
        }
    }
}
