//! What the engineer asked `validate` to check: the parsed command line, shared by every
//! check module (host checks, `checks::libvirt`, `boot`). Plain data: building it from
//! argv (and the usage errors that come with that) is `cli.rs`'s job, so tests construct
//! it directly (`Options { nics: vec!["e1000".into()], ..Options::default() }`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use virthost_model::username::UserName;

/// `--boot-timeout`'s default: seconds one NIC model's boot proof may take from domain
/// start to callback (TCG here: 3-4 s; a test domain emulated inside an emulated host: 27 s
/// quiet, up to 58 s loaded, docs/e2e.md).
pub const DEFAULT_BOOT_TIMEOUT_S: u64 = 60;
/// `--boot-timeout`'s bounds, seconds.
pub const BOOT_TIMEOUT_RANGE_S: std::ops::RangeInclusive<u64> = 10..=3600;

/// The libvirt URI checked when `--connect` is not given.
pub const DEFAULT_CONNECT: &str = virthost_model::desired::LIBVIRT_URI;

/// The host part of a libvirt URI (`driver[+transport]://[user@][host][:port]/[path][?params]`),
/// IPv6 addresses with their brackets; `None` when it is empty, which means a daemon on this
/// machine (`qemu:///system`, `qemu:///session`, `test:///default`, `qemu+unix:///system`).
/// A value without `://` (empty: the default URI; or an alias from libvirt.conf's
/// `uri_aliases`, which validate does not resolve) also counts as local. Pure: nothing is
/// resolved or connected.
pub fn uri_host(uri: &str) -> Option<&str> {
    let (_, rest) = uri.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.find(']') {
        Some(end) if host_port.starts_with('[') => &host_port[..=end],
        _ => host_port.split(':').next().unwrap_or_default(),
    };
    (!host.is_empty()).then_some(host)
}

/// The longest `--connect` URI accepted.
pub const MAX_URI_LEN: usize = 2048;
/// The transports of libvirt's remote driver that validate connects through. `ext` is not
/// among them: it runs whatever local command the URI names.
pub const TRANSPORTS: &[&str] = &["unix", "ssh", "libssh", "libssh2", "tls", "tcp"];

/// A `--connect` value [`check_connect`] refuses (`shown`: the value, escaped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("--connect: an empty URI")]
    Empty,
    #[error("--connect: the URI is {len} bytes, at most {MAX_URI_LEN}")]
    TooLong { len: usize },
    #[error("--connect: '{shown}' holds a space or control character")]
    Unprintable { shown: String },
    #[error(
        "--connect: '{shown}' is neither a libvirt URI (driver[+transport]://host/path) nor an \
         alias"
    )]
    Neither { shown: String },
    #[error("--connect: '{shown}': '{scheme}' is not a libvirt URI scheme")]
    Scheme { shown: String, scheme: String },
    #[error(
        "--connect: '{shown}': the transport '{transport}' is not accepted (known: {}{})",
        TRANSPORTS.join(", "),
        if .transport == "ext" { "; ext runs a local command the URI names" } else { "" }
    )]
    Transport { shown: String, transport: String },
    #[error(
        "--connect: '{shown}': the 'command' parameter makes libvirt run a local command of the \
         URI's choosing; put the ssh you want first on PATH instead"
    )]
    Command { shown: String },
}

/// Checks a `--connect` value: a libvirt URI `driver[+transport]://...` (or a libvirt.conf
/// alias, a plain word). Refused: control characters or spaces, a scheme that is not one,
/// the `ext` transport and a `command=` parameter (both make libvirt run a local command of
/// the URI's choosing, as root when validate runs as root). Pure: nothing is resolved.
pub fn check_connect(uri: &str) -> Result<(), UriError> {
    let shown = || uri.escape_default().to_string();
    if uri.is_empty() {
        return Err(UriError::Empty);
    }
    if uri.len() > MAX_URI_LEN {
        return Err(UriError::TooLong { len: uri.len() });
    }
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(UriError::Unprintable { shown: shown() });
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        let alias = uri
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        return if alias {
            Ok(())
        } else {
            Err(UriError::Neither { shown: shown() })
        };
    };
    let (driver, transport) = scheme.split_once('+').unwrap_or((scheme, ""));
    let word = |s: &str| {
        s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if !word(driver) || (scheme.contains('+') && !word(transport)) {
        return Err(UriError::Scheme {
            shown: shown(),
            scheme: scheme.to_string(),
        });
    }
    if !transport.is_empty() && !TRANSPORTS.contains(&transport) {
        return Err(UriError::Transport {
            shown: shown(),
            transport: transport.to_string(),
        });
    }
    let query = rest.split_once('?').map_or("", |(_, q)| q);
    for param in query.split('&') {
        let key = param.split_once('=').map_or(param, |(k, _)| k);
        if key.eq_ignore_ascii_case("command") {
            return Err(UriError::Command { shown: shown() });
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `--connect URI`: the libvirt daemon to check and boot the test domain on.
    pub connect: String,
    /// `--nodes SPEC`: the planned VMs. Empty means the spec's minimum VM
    /// ([`NodeSize::SPEC_MINIMUM`], one of it).
    pub nodes: Vec<NodeGroup>,
    /// `--overcommit`: memory and disk shortfalls WARN instead of FAIL.
    pub overcommit: bool,
    /// `--allow-emulation`: missing hardware virtualization WARNs instead of FAILs (TCG hosts).
    pub allow_emulation: bool,
    /// `--skip-boot`: do not run the iPXE boot proof.
    pub skip_boot: bool,
    /// `--skip-power`: do not run the power proof (`validate::power`).
    pub skip_power: bool,
    /// `--sequential`: the boot modes (and the power proof) one after the other even where
    /// the host has a CPU and the memory for each (`boot::schedule`).
    pub sequential: bool,
    /// `--domain-type kvm|qemu`: the libvirt domain type the boot proof boots (the one the
    /// deployment will use); `None`: kvm where it really works, else qemu.
    pub domain_type: Option<DomainType>,
    /// `--boot-timeout SECONDS`: how long one NIC model's boot may take, domain start to
    /// callback ([`DEFAULT_BOOT_TIMEOUT_S`]).
    pub boot_timeout: Duration,
    /// `--boot-mode bios,uefi`: the firmware the boot proof's domains start with, each with
    /// every NIC model. Never empty (default both).
    pub boot_modes: Vec<BootMode>,
    /// `--nic virtio,e1000`: NIC models whose ROMs must be present and that the boot proof
    /// boots, each a key of `virthost_model::desired::NIC_ROMS`. Never empty (default `virtio`).
    pub nics: Vec<String>,
    /// `--user NAME`: the stack user (default `virthost_model::desired::DEFAULT_USER`).
    pub user: UserName,
    /// `--root-key FILE`...: public-key files whose keys root's authorized_keys must hold.
    /// `cli` has already checked that each is readable and holds at least one valid key.
    pub root_keys: Vec<PathBuf>,
    /// `--stack-key FILE`...: the same for the stack user.
    pub stack_keys: Vec<PathBuf>,
    /// `--report human|json`.
    pub report: ReportFormat,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect: DEFAULT_CONNECT.to_string(),
            nodes: Vec::new(),
            overcommit: false,
            allow_emulation: false,
            skip_boot: false,
            skip_power: false,
            sequential: false,
            domain_type: None,
            boot_timeout: Duration::from_secs(DEFAULT_BOOT_TIMEOUT_S),
            boot_modes: vec![BootMode::Bios, BootMode::Uefi],
            nics: vec!["virtio".to_string()],
            user: virthost_model::desired::DEFAULT_USER
                .parse()
                .expect("the default user name is valid"),
            root_keys: Vec::new(),
            stack_keys: Vec::new(),
            report: ReportFormat::Human,
        }
    }
}

/// `--boot-mode`: how the boot proof's test domains start. Ironic boots UEFI by default
/// since Yoga; BIOS (SeaBIOS) is what older deployments and infrared's default use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum BootMode {
    /// SeaBIOS, `pc` machine, the NIC's legacy iPXE ROM: checks `boot.ipxe.<nic>`.
    Bios,
    /// OVMF through libvirt's `<os firmware='efi'>` (Secure Boot off), `q35` machine, the
    /// NIC's EFI iPXE ROM: checks `boot.uefi.<nic>`.
    Uefi,
}

impl BootMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BootMode::Bios => "bios",
            BootMode::Uefi => "uefi",
        }
    }
}

/// `--report`: aligned lines for people, or one JSON document (docs/validate-report.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReportFormat {
    #[default]
    Human,
    Json,
}

/// The libvirt domain type test domains use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DomainType {
    Kvm,
    Qemu,
}

impl DomainType {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainType::Kvm => "kvm",
            DomainType::Qemu => "qemu",
        }
    }
}

/// A domain type validate does not boot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown domain type '{0}' (expected kvm or qemu)")]
pub struct UnknownDomainType(pub String);

impl std::str::FromStr for DomainType {
    type Err = UnknownDomainType;
    fn from_str(s: &str) -> Result<Self, UnknownDomainType> {
        match s {
            "kvm" => Ok(DomainType::Kvm),
            "qemu" => Ok(DomainType::Qemu),
            o => Err(UnknownDomainType(o.to_string())),
        }
    }
}

/// The size of one planned VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeSize {
    pub vcpus: u32,
    pub memory_gib: u64,
    /// The system disk, in GB (10^9 bytes, as infrared sizes them).
    pub disk_gb: u64,
    /// Further data disks, in GB (ceph: 5 x 47 GB).
    pub extra_disks_gb: Vec<u64>,
}

impl NodeSize {
    /// The spec's minimum VM: 2 vCPU, 8 GiB, 40 GB.
    pub const SPEC_MINIMUM: NodeSize = NodeSize::new(2, 8, 40);

    pub const fn new(vcpus: u32, memory_gib: u64, disk_gb: u64) -> Self {
        NodeSize {
            vcpus,
            memory_gib,
            disk_gb,
            extra_disks_gb: Vec::new(),
        }
    }

    /// All disks of one VM, GB (saturating: a size built by hand past [`MAX_DISK_GB`] per
    /// disk cannot wrap around).
    pub fn total_disk_gb(&self) -> u64 {
        self.extra_disks_gb
            .iter()
            .fold(self.disk_gb, |sum, d| sum.saturating_add(*d))
    }

    /// infrared's default size of a node role, if it has one.
    pub fn infrared_default(role: &str) -> Option<NodeSize> {
        Some(match role {
            "undercloud" => NodeSize::new(8, 24, 100),
            "controller" => NodeSize::new(8, 32, 64),
            "compute" => NodeSize::new(4, 8, 65),
            "ceph" => NodeSize {
                extra_disks_gb: vec![47; 5],
                ..NodeSize::new(2, 6, 46)
            },
            "networker" => NodeSize::new(2, 6, 40),
            "ironic" => NodeSize::new(4, 4, 40),
            "aio" => NodeSize::new(8, 16, 64),
            _ => return None,
        })
    }
}

impl fmt::Display for NodeSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} vCPU/{} GiB/{} GB",
            self.vcpus, self.memory_gib, self.disk_gb
        )?;
        if !self.extra_disks_gb.is_empty() {
            let all_same = self.extra_disks_gb.windows(2).all(|w| w[0] == w[1]);
            if all_same {
                write!(
                    f,
                    " + {} x {} GB",
                    self.extra_disks_gb.len(),
                    self.extra_disks_gb[0]
                )?;
            } else {
                let list: Vec<String> = self.extra_disks_gb.iter().map(|d| d.to_string()).collect();
                write!(f, " + {} GB", list.join("+"))?;
            }
        }
        Ok(())
    }
}

/// `count` VMs of one role and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeGroup {
    pub name: String,
    pub count: u32,
    pub size: NodeSize,
}

/// Most VMs of one group `--nodes` accepts.
pub const MAX_COUNT: u64 = 10_000;
/// Most vCPUs of one VM (QEMU's x86 limit).
pub const MAX_VCPUS: u64 = 4096;
/// Most memory of one VM, GiB (64 TiB).
pub const MAX_MEMORY_GIB: u64 = 64 * 1024;
/// Largest disk of one VM, GB (1 PB).
pub const MAX_DISK_GB: u64 = 1_000_000;
/// Most data disks of one VM.
pub const MAX_DATA_DISKS: usize = 64;

/// The `--nodes` syntax, for `--help` and error messages.
pub const NODES_HELP: &str = "Planned VMs: comma-separated NAME:COUNT[:VCPUS/MEM_GIB/DISK_GB[+DATA_GB...]]. \
Known roles use infrared's default sizes: undercloud 8/24/100, controller 8/32/64, compute 4/8/65, \
ceph 2/6/46+47+47+47+47+47, networker 2/6/40, ironic 4/4/40, aio 8/16/64. \
Any name with an explicit size is accepted (e.g. `undercloud:1,controller:3,compute:2,edge:2:4/16/80+100`); \
a known role with a size overrides the default. \
Limits: COUNT 1-10000 (a count of 0 is an error: leave the role out), up to 4096 vCPUs, 64 TiB (65536 GiB) \
of memory, 1 PB (1000000 GB) per disk and 64 data disks per VM. \
Default: one VM of the spec's minimum size, 2 vCPU/8 GiB/40 GB.";

/// A `--nodes` value [`parse_nodes`] refuses: the entry (`item`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodesError {
    #[error("--nodes '{spec}': empty entry")]
    EmptyEntry { spec: String },
    #[error("--nodes: '{item}': the name must be letters, digits, '-' or '_'")]
    Name { item: String },
    #[error("--nodes: '{item}': the count '{count}' is not a whole number")]
    Count { item: String, count: String },
    #[error("--nodes: '{item}': expected NAME:COUNT (e.g. compute:2)")]
    NoCount { item: String },
    // A zero used to drop the group silently; `compute:0` alone then fell back to the
    // spec-minimum VM, checking something the engineer never asked for.
    #[error(
        "--nodes: '{item}': a count of 0 plans no '{name}' VM; leave the role out (without \
         --nodes, the spec's minimum VM is checked)"
    )]
    Zero { item: String, name: String },
    #[error("--nodes: '{item}': the count {count} is more than {MAX_COUNT} VMs")]
    TooMany { item: String, count: u64 },
    #[error("--nodes: '{item}': {error}")]
    Size { item: String, error: SizeError },
    #[error(
        "--nodes: '{item}': '{name}' is not a role with a default size (undercloud, controller, \
         compute, ceph, networker, ironic, aio); give a size: {name}:{count}:VCPUS/MEM_GIB/DISK_GB"
    )]
    NoDefaultSize {
        item: String,
        name: String,
        count: u32,
    },
}

/// A `VCPUS/MEM_GIB/DISK_GB[+DATA_GB...]` size that is not one, or beyond the limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("size '{0}' is not VCPUS/MEM_GIB/DISK_GB")]
    Shape(String),
    #[error("{what} '{value}' is not a positive whole number")]
    NotPositive { what: &'static str, value: String },
    /// `unit`: what follows the number ("", " GiB"); `also`: the rest of the message.
    #[error("{what} {n}{unit} is more than {max}{unit}{also}")]
    TooBig {
        what: &'static str,
        n: u64,
        max: u64,
        unit: &'static str,
        also: &'static str,
    },
    #[error("{0} data disks are more than {MAX_DATA_DISKS} per VM")]
    TooManyDisks(usize),
}

/// Parses a `--nodes` value ([`NODES_HELP`]).
pub fn parse_nodes(spec: &str) -> Result<Vec<NodeGroup>, NodesError> {
    let mut groups = Vec::new();
    for item in spec.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(NodesError::EmptyEntry { spec: spec.into() });
        }
        let mut parts = item.splitn(3, ':');
        let name = parts.next().unwrap_or_default().trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(NodesError::Name { item: item.into() });
        }
        let count: u64 = match parts.next() {
            Some(c) => c.trim().parse().map_err(|_| NodesError::Count {
                item: item.into(),
                count: c.into(),
            })?,
            None => return Err(NodesError::NoCount { item: item.into() }),
        };
        if count == 0 {
            return Err(NodesError::Zero {
                item: item.into(),
                name: name.into(),
            });
        }
        if count > MAX_COUNT {
            return Err(NodesError::TooMany {
                item: item.into(),
                count,
            });
        }
        let count = u32::try_from(count).expect("bounded by MAX_COUNT");
        let size = match parts.next() {
            Some(s) => parse_size(s.trim()).map_err(|error| NodesError::Size {
                item: item.into(),
                error,
            })?,
            None => NodeSize::infrared_default(name).ok_or_else(|| NodesError::NoDefaultSize {
                item: item.into(),
                name: name.into(),
                count,
            })?,
        };
        groups.push(NodeGroup {
            name: name.to_string(),
            count,
            size,
        });
    }
    Ok(groups)
}

fn parse_size(s: &str) -> Result<NodeSize, SizeError> {
    let fields: Vec<&str> = s.split('/').collect();
    let [vcpus, mem, disks] = fields[..] else {
        return Err(SizeError::Shape(s.into()));
    };
    let num = |what: &'static str, v: &str| -> Result<u64, SizeError> {
        match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(SizeError::NotPositive {
                what,
                value: v.into(),
            }),
        }
    };
    let at_most = |what: &'static str,
                   n: u64,
                   max: u64,
                   unit: &'static str,
                   also: &'static str|
     -> Result<u64, SizeError> {
        if n > max {
            Err(SizeError::TooBig {
                what,
                n,
                max,
                unit,
                also,
            })
        } else {
            Ok(n)
        }
    };
    let vcpus = at_most(
        "vCPU count",
        num("vCPU count", vcpus)?,
        MAX_VCPUS,
        "",
        " per VM",
    )?;
    let vcpus = u32::try_from(vcpus).expect("bounded by MAX_VCPUS");
    let memory_gib = at_most(
        "memory",
        num("memory (GiB)", mem)?,
        MAX_MEMORY_GIB,
        " GiB",
        " (64 TiB) per VM",
    )?;
    let mut disk_iter = disks.split('+');
    let disk_gb = at_most(
        "disk",
        num("disk (GB)", disk_iter.next().unwrap_or_default())?,
        MAX_DISK_GB,
        " GB",
        " (1 PB) per disk",
    )?;
    let extra_disks_gb = disk_iter
        .map(|d| {
            at_most(
                "data disk",
                num("data disk (GB)", d)?,
                MAX_DISK_GB,
                " GB",
                " (1 PB) per disk",
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    if extra_disks_gb.len() > MAX_DATA_DISKS {
        return Err(SizeError::TooManyDisks(extra_disks_gb.len()));
    }
    Ok(NodeSize {
        vcpus,
        memory_gib,
        disk_gb,
        extra_disks_gb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_uris_are_checked_before_libvirt_sees_them() {
        for ok in [
            "qemu:///system",
            "qemu+ssh://stack@hv.example:2222/system?keyfile=/k&no_verify=1",
            "qemu+unix:///system?socket=/run/x.sock",
            "test:///default",
            "qemu+tls://[2001:db8::1]/system",
            "myalias",
        ] {
            assert_eq!(check_connect(ok), Ok(()), "{ok}");
        }
        let cases = [
            ("", "empty"),
            (
                "qemu+ext:///system?command=/tmp/x",
                "ext runs a local command",
            ),
            (
                "qemu+ssh://h/system?command=/tmp/evil",
                "'command' parameter",
            ),
            (
                "qemu+ssh://h/system?no_tty=1&COMMAND=x",
                "'command' parameter",
            ),
            ("qemu:///system\n--x", "space or control character"),
            ("qemu:///sys tem", "space or control character"),
            ("QEMU:///system", "not a libvirt URI scheme"),
            ("qemu+:///system", "not a libvirt URI scheme"),
            ("qemu+foo:///system", "transport 'foo' is not accepted"),
            ("../etc/passwd", "neither a libvirt URI"),
        ];
        for (uri, want) in cases {
            let e = check_connect(uri).unwrap_err().to_string();
            assert!(e.contains(want), "{uri}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        assert!(check_connect(&format!("qemu:///{}", "a".repeat(3000))).is_err());
    }

    #[test]
    fn uri_host_tells_local_from_remote_daemons() {
        let cases: &[(&str, Option<&str>)] = &[
            // A daemon on this machine: no host part.
            ("qemu:///system", None),
            ("qemu:///session", None),
            ("test:///default", None),
            ("qemu+unix:///system?socket=/run/libvirt/libvirt-sock", None),
            ("qemu+tcp:///system", None),
            ("qemu+ssh://user@/system", None),
            ("", None),
            ("hv01", None), // an alias: not resolved
            // Another machine.
            (
                "qemu+ssh://nonexistent.invalid/system",
                Some("nonexistent.invalid"),
            ),
            ("qemu+ssh://root@hv01.lab:2222/system", Some("hv01.lab")),
            ("qemu+tls://hv02/system?pkipath=/etc/pki", Some("hv02")),
            ("qemu://192.0.2.7/system", Some("192.0.2.7")),
            (
                "qemu+tcp://[2001:db8::7]:16509/system",
                Some("[2001:db8::7]"),
            ),
            ("xen+ssh://admin@xen1", Some("xen1")),
            ("qemu+ssh://localhost/system", Some("localhost")),
        ];
        for (uri, want) in cases {
            assert_eq!(uri_host(uri), *want, "{uri}");
        }
    }

    #[test]
    fn parses_roles_with_infrared_defaults() {
        let g = parse_nodes("undercloud:1,controller:3,compute:2").unwrap();
        assert_eq!(g.len(), 3);
        assert_eq!(
            (g[1].name.as_str(), g[1].count, &g[1].size),
            ("controller", 3, &NodeSize::new(8, 32, 64))
        );
        let ceph = &parse_nodes("ceph:3").unwrap()[0].size;
        assert_eq!(ceph.total_disk_gb(), 46 + 5 * 47);
        assert_eq!(ceph.to_string(), "2 vCPU/6 GiB/46 GB + 5 x 47 GB");
    }

    #[test]
    fn parses_custom_sizes_and_overrides() {
        let g = parse_nodes("edge:2:4/16/80+100+200, compute:1:2/4/20").unwrap();
        assert_eq!(g[0].size.extra_disks_gb, vec![100, 200]);
        assert_eq!(g[0].size.to_string(), "4 vCPU/16 GiB/80 GB + 100+200 GB");
        assert_eq!(g[1].size, NodeSize::new(2, 4, 20));
    }

    #[test]
    fn accepts_sizes_up_to_the_limits() {
        let spec =
            format!("edge:{MAX_COUNT}:{MAX_VCPUS}/{MAX_MEMORY_GIB}/{MAX_DISK_GB}+{MAX_DISK_GB}");
        let g = parse_nodes(&spec).unwrap();
        assert_eq!(g[0].count as u64, MAX_COUNT);
        assert_eq!(g[0].size.total_disk_gb(), 2 * MAX_DISK_GB);
        let many = format!("edge:1:1/1/1{}", "+1".repeat(MAX_DATA_DISKS + 1));
        assert!(parse_nodes(&many)
            .unwrap_err()
            .to_string()
            .contains("data disks"));
        let most = format!("edge:1:1/1/1{}", "+1".repeat(MAX_DATA_DISKS));
        assert_eq!(
            parse_nodes(&most).unwrap()[0].size.extra_disks_gb.len(),
            MAX_DATA_DISKS
        );
    }

    #[test]
    fn rejects_bad_specs_with_a_message() {
        for (spec, needle) in [
            ("compute", "NAME:COUNT"),
            ("compute:x", "not a whole number"),
            ("edge:1", "give a size"),
            ("edge:1:4/16", "VCPUS/MEM_GIB/DISK_GB"),
            ("edge:1:0/16/40", "positive"),
            ("compute:1,,", "empty entry"),
            ("c d:1", "name must be"),
            ("", "empty entry"),
            // A zero count is refused, alone or next to other roles.
            ("compute:0", "count of 0"),
            ("controller:3,compute:0", "leave the role out"),
            ("compute:10001", "more than 10000 VMs"),
            ("compute:99999999999999999999", "not a whole number"),
            // 17179869185 GiB * 2^30 wraps u64 to 1 GiB: refused before any arithmetic.
            (
                "edge:1:1/17179869185/1",
                "memory 17179869185 GiB is more than 65536 GiB (64 TiB)",
            ),
            ("edge:1:1/65537/1", "more than 65536 GiB"),
            ("edge:1:4097/8/40", "more than 4096"),
            ("edge:1:1/1/1000001", "1 PB"),
            ("edge:1:1/1/1+18446744073709551615", "data disk"),
            ("edge:1:1/1/1+18446744073709551616", "positive whole number"),
        ] {
            let e = parse_nodes(spec).unwrap_err().to_string();
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }
}
