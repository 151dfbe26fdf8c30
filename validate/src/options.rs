//! What the engineer asked `validate` to check: the parsed command line, shared by every
//! check module (host checks, `checks::libvirt`, `boot`). Plain data: building it from
//! argv (and the usage errors that come with that) is `cli.rs`'s job, so tests construct
//! it directly (`Options { nics: vec!["e1000".into()], ..Options::default() }`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Serialize;

/// The libvirt URI checked when `--connect` is not given.
pub const DEFAULT_CONNECT: &str = "qemu:///system";

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
    /// `--nic virtio,e1000`: NIC models whose ROMs must be present and that the boot proof
    /// boots, each a key of `bootstrap::desired::NIC_ROMS`. Never empty (default `virtio`).
    pub nics: Vec<String>,
    /// `--user NAME`: the stack user (default `bootstrap::desired::DEFAULT_USER`).
    pub user: String,
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
            nics: vec!["virtio".to_string()],
            user: bootstrap::desired::DEFAULT_USER.to_string(),
            root_keys: Vec::new(),
            stack_keys: Vec::new(),
            report: ReportFormat::Human,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportFormat {
    #[default]
    Human,
    Json,
}

impl FromStr for ReportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "human" => Ok(ReportFormat::Human),
            "json" => Ok(ReportFormat::Json),
            o => Err(format!(
                "unknown report format '{o}' (expected human or json)"
            )),
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

    /// All disks of one VM, GB.
    pub fn total_disk_gb(&self) -> u64 {
        self.disk_gb + self.extra_disks_gb.iter().sum::<u64>()
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

/// The `--nodes` syntax, for `--help` and error messages.
pub const NODES_HELP: &str = "Planned VMs: comma-separated NAME:COUNT[:VCPUS/MEM_GIB/DISK_GB[+DATA_GB...]]. \
Known roles use infrared's default sizes: undercloud 8/24/100, controller 8/32/64, compute 4/8/65, \
ceph 2/6/46+47+47+47+47+47, networker 2/6/40, ironic 4/4/40, aio 8/16/64. \
Any name with an explicit size is accepted (e.g. `undercloud:1,controller:3,compute:2,edge:2:4/16/80+100`); \
a known role with a size overrides the default. \
Default: one VM of the spec's minimum size, 2 vCPU/8 GiB/40 GB.";

/// Parses a `--nodes` value ([`NODES_HELP`]).
pub fn parse_nodes(spec: &str) -> Result<Vec<NodeGroup>, String> {
    let mut groups = Vec::new();
    for item in spec.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!("--nodes '{spec}': empty entry"));
        }
        let mut parts = item.splitn(3, ':');
        let name = parts.next().unwrap_or_default().trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "--nodes: '{item}': the name must be letters, digits, '-' or '_'"
            ));
        }
        let count: u32 = match parts.next() {
            Some(c) => c
                .trim()
                .parse()
                .map_err(|_| format!("--nodes: '{item}': the count '{c}' is not a whole number"))?,
            None => {
                return Err(format!(
                    "--nodes: '{item}': expected NAME:COUNT (e.g. compute:2)"
                ))
            }
        };
        let size = match parts.next() {
            Some(s) => parse_size(s.trim()).map_err(|e| format!("--nodes: '{item}': {e}"))?,
            None => NodeSize::infrared_default(name).ok_or_else(|| {
                format!(
                    "--nodes: '{item}': '{name}' is not a role with a default size \
                     (undercloud, controller, compute, ceph, networker, ironic, aio); \
                     give a size: {name}:{count}:VCPUS/MEM_GIB/DISK_GB"
                )
            })?,
        };
        if count == 0 {
            continue;
        }
        groups.push(NodeGroup {
            name: name.to_string(),
            count,
            size,
        });
    }
    Ok(groups)
}

fn parse_size(s: &str) -> Result<NodeSize, String> {
    let fields: Vec<&str> = s.split('/').collect();
    let [vcpus, mem, disks] = fields[..] else {
        return Err(format!("size '{s}' is not VCPUS/MEM_GIB/DISK_GB"));
    };
    let num = |what: &str, v: &str| -> Result<u64, String> {
        match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{what} '{v}' is not a positive whole number")),
        }
    };
    let vcpus = num("vCPU count", vcpus)?;
    let vcpus = u32::try_from(vcpus).map_err(|_| format!("vCPU count {vcpus} is too large"))?;
    let memory_gib = num("memory (GiB)", mem)?;
    let mut disk_iter = disks.split('+');
    let disk_gb = num("disk (GB)", disk_iter.next().unwrap_or_default())?;
    let extra_disks_gb = disk_iter
        .map(|d| num("data disk (GB)", d))
        .collect::<Result<Vec<_>, _>>()?;
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
        assert!(parse_nodes("compute:0").unwrap().is_empty());
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
        ] {
            let e = parse_nodes(spec).unwrap_err();
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }
}
