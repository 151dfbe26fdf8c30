//! Everything `bootstrap` (and `validate`) reads about a host, gathered in one [`Facts`]
//! from a [`HostRoot`] and a [`PackageDb`]. Each fact also has its own reader function, so
//! a step can read the one it needs again after changing the host.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use serde::Serialize;

use crate::accounts::{parse_group, GROUP_PATH};
use crate::cpu::{CpuInfo, VirtExtension};
use crate::desired::{self, PolkitBackend};
use crate::hostroot::HostRoot;
use crate::ipxe::{self, BuildDate};
use crate::os::{Family, OsRelease, Platform, Unsupported};
use crate::pkg::{Installed, PackageDb};

/// What bootstrap knows about a host before it changes anything.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    /// `/proc/sys/kernel/hostname`.
    pub hostname: String,
    pub platform: Platform,
    pub cpu: CpuInfo,
    /// The installed packages of the desired set, polkit and the iPXE ROMs (name ->
    /// version).
    pub installed: Installed,
    pub kvm: KvmModules,
    /// QEMU processes: guests that a module reload would kill.
    pub guests: Vec<Process>,
    pub dev_kvm: Option<DevNode>,
    /// gid of the `kvm` group, when it exists.
    pub kvm_gid: Option<u32>,
    /// A distribution udev rule that sets the group of `/dev/kvm` (its path).
    pub kvm_udev_rule: Option<String>,
    pub systemd: bool,
    pub libvirt: LibvirtDaemons,
    pub polkit_version: Option<String>,
    pub polkit_backend: Option<PolkitBackend>,
    pub selinux: Selinux,
    pub ipxe: Option<IpxeRom>,
}

/// The installed iPXE ROM package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpxeRom {
    pub package: String,
    pub version: String,
    /// The build date in the version (`2020-08-23`).
    #[serde(serialize_with = "date_string")]
    pub build: Option<BuildDate>,
}

fn date_string<S: serde::Serializer>(d: &Option<BuildDate>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&d.to_string()),
        None => s.serialize_none(),
    }
}

fn octal<S: serde::Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{mode:04o}"))
}

impl Facts {
    /// Reads `/etc/os-release` and classifies it (`--os-family` overrides the family).
    pub fn platform(
        root: &HostRoot,
        family_override: Option<Family>,
    ) -> anyhow::Result<Result<Platform, Unsupported>> {
        let text = root.read_optional("/etc/os-release")?;
        let text = match text {
            Some(t) => t,
            None => root
                .read_optional("/usr/lib/os-release")?
                .unwrap_or_default(),
        };
        Ok(Platform::detect(&OsRelease::parse(&text), family_override))
    }

    pub fn gather(
        root: &HostRoot,
        platform: Platform,
        db: &dyn PackageDb,
    ) -> anyhow::Result<Facts> {
        let cpu = CpuInfo::parse(&root.read_optional("/proc/cpuinfo")?.unwrap_or_default());
        let mut names: Vec<&str> = desired::packages(&platform)
            .iter()
            .map(|p| p.name)
            .collect();
        names.extend(["polkitd", "policykit-1", "polkit"]);
        names.sort_unstable();
        names.dedup();
        let installed = db.installed(&names)?;
        let polkit_version = ["polkitd", "policykit-1", "polkit"]
            .iter()
            .find_map(|n| installed.get(*n).cloned());
        let ipxe_pkg = desired::ipxe_package(platform.family);
        let ipxe = installed.get(ipxe_pkg).map(|v| IpxeRom {
            package: ipxe_pkg.to_string(),
            version: v.clone(),
            build: ipxe::build_date(v),
        });
        let hostname = root
            .read_optional("/proc/sys/kernel/hostname")?
            .or(root.read_optional("/etc/hostname")?)
            .unwrap_or_default()
            .trim()
            .to_string();
        Ok(Facts {
            hostname,
            kvm: KvmModules::read(root, cpu.virt),
            guests: running_guests(root),
            dev_kvm: DevNode::read(root, "/dev/kvm")?,
            kvm_gid: group_gid(root, desired::KVM_GROUP)?,
            kvm_udev_rule: distro_kvm_udev_rule(root),
            systemd: systemd_is_pid1(root),
            libvirt: LibvirtDaemons::read(root),
            polkit_backend: polkit_version.as_deref().map(PolkitBackend::for_version),
            polkit_version,
            selinux: Selinux::read(root),
            ipxe,
            platform,
            cpu,
            installed,
        })
    }
}

/// KVM kernel modules as `/sys/module` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvmModules {
    pub kvm_loaded: bool,
    /// The vendor module for the CPU's extension (`kvm_intel`, `kvm_amd`).
    pub vendor_module: Option<&'static str>,
    pub vendor_loaded: bool,
    /// `/sys/module/<vendor>/parameters/nested`: `Some(true)` for `Y`/`1`.
    pub nested: Option<bool>,
}

impl KvmModules {
    pub fn read(root: &HostRoot, ext: Option<VirtExtension>) -> KvmModules {
        let vendor_module = ext.map(VirtExtension::kvm_module);
        KvmModules {
            kvm_loaded: root.exists("/sys/module/kvm"),
            vendor_module,
            vendor_loaded: vendor_module.is_some_and(|m| root.exists(format!("/sys/module/{m}"))),
            nested: vendor_module.and_then(|m| nested_param(root, m)),
        }
    }
}

/// The `nested` parameter of a loaded KVM vendor module.
pub fn nested_param(root: &HostRoot, module: &str) -> Option<bool> {
    module_flag(root, module, "nested")
}

/// A boolean parameter of a loaded kernel module (`/sys/module/<module>/parameters/<param>`):
/// `Some(true)` for `Y`/`1`, `Some(false)` for anything else, `None` when absent.
pub fn module_flag(root: &HostRoot, module: &str, param: &str) -> Option<bool> {
    let v = root
        .read_optional(format!("/sys/module/{module}/parameters/{param}"))
        .ok()??;
    Some(matches!(v.trim(), "Y" | "y" | "1"))
}

/// A process found in `/proc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    pub pid: u32,
    pub comm: String,
}

/// Processes whose `comm` satisfies `pred`, in pid order (procfs lists the pids of the
/// root's `/proc`; one that is gone by the time it is read is left out).
pub fn processes(root: &HostRoot, pred: impl Fn(&str) -> bool) -> Vec<Process> {
    let Ok(all) = procfs::process::all_processes_with_root(root.path("/proc")) else {
        return vec![];
    };
    let mut out: Vec<Process> = all
        .flatten()
        .filter_map(|p| {
            let pid = u32::try_from(p.pid).ok()?;
            let comm = process_name(root, pid)?;
            pred(&comm).then_some(Process { pid, comm })
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

/// The `comm` of process `pid`, if it runs (and `/proc` is readable).
pub fn process_name(root: &HostRoot, pid: u32) -> Option<String> {
    std::fs::read_to_string(root.path(format!("/proc/{pid}/comm")))
        .ok()
        .map(|c| c.trim_end().to_string())
}

/// Running QEMU guests (`qemu-kvm`, `qemu-system-x86_64`: `comm` is cut at 15 bytes).
pub fn running_guests(root: &HostRoot) -> Vec<Process> {
    processes(root, |c| {
        c.starts_with("qemu-kvm") || c.starts_with("qemu-system-")
    })
}

/// Whether a process named `name` runs.
pub fn is_running(root: &HostRoot, name: &str) -> bool {
    !processes(root, |c| c == name).is_empty()
}

/// Whether the host path `path` is a file bootstrap owns, in place: a regular file with
/// exactly `content`, `root:root`, `mode` (what `steps::files` writes). A symlink or
/// anything but a regular file is an error.
pub fn owned_file_in_place(
    root: &HostRoot,
    path: &str,
    content: &str,
    mode: u32,
) -> anyhow::Result<bool> {
    let want = crate::atomic::Wanted {
        content: content.as_bytes(),
        mode,
        owner: crate::atomic::Owner::ROOT,
    };
    Ok(crate::atomic::diff(&root.path(path), &want)?.is_empty())
}

/// Owner, group and permission bits of a device node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DevNode {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (`0o660`; `"0660"` in JSON).
    #[serde(serialize_with = "octal")]
    pub mode: u32,
}

impl DevNode {
    /// Stats a device node (in a fixture host, built for tests only, the captured stat line
    /// that stands for it: `captured_stat_line`).
    pub fn read(root: &HostRoot, host_path: &str) -> anyhow::Result<Option<DevNode>> {
        let p = root.path(host_path);
        let md = match std::fs::metadata(&p) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", p.display())),
        };
        if md.file_type().is_char_device() || md.file_type().is_block_device() {
            return Ok(Some(DevNode {
                uid: md.uid(),
                gid: md.gid(),
                mode: md.mode() & 0o7777,
            }));
        }
        captured_stat_line(&p)
    }

    /// Whether root owns it and members of `gid` can read and write it.
    pub fn usable_by_group(&self, gid: u32) -> bool {
        self.uid == 0 && self.gid == gid && self.mode & 0o060 == 0o060
    }
}

/// A fixture host's `/dev/...`: git stores no device nodes, so the file holds the captured
/// `stat -c '%u %g %a'` line. Tests only (the `fixtures` feature).
#[cfg(any(test, feature = "fixtures"))]
fn captured_stat_line(p: &std::path::Path) -> anyhow::Result<Option<DevNode>> {
    let text = anyhow::Context::with_context(std::fs::read_to_string(p), || {
        format!("{}: cannot read", p.display())
    })?;
    let f: Vec<&str> = text.split_whitespace().collect();
    let node = match f[..] {
        [uid, gid, mode, ..] => (|| {
            Some(DevNode {
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
                mode: u32::from_str_radix(mode, 8).ok()?,
            })
        })(),
        _ => None,
    };
    match node {
        Some(n) => Ok(Some(n)),
        None => anyhow::bail!(
            "{}: not a device node nor a captured stat line (`uid gid octal-mode`)",
            p.display()
        ),
    }
}

#[cfg(any(test, feature = "fixtures"))]
impl DevNode {
    /// The line a fixture host's `/dev/...` file holds for this node (what
    /// `captured_stat_line` reads back).
    pub fn captured_line(&self) -> String {
        format!("{} {} {:o}\n", self.uid, self.gid, self.mode)
    }
}

/// The shipped binary reads real device nodes only.
#[cfg(not(any(test, feature = "fixtures")))]
fn captured_stat_line(p: &std::path::Path) -> anyhow::Result<Option<DevNode>> {
    anyhow::bail!("{}: exists and is not a device node", p.display())
}

/// The gid of a group, read from `/etc/group` by the one group-file reader
/// ([`crate::accounts::parse_group`]; no NSS: a static binary must not use it).
pub fn group_gid(root: &HostRoot, name: &str) -> anyhow::Result<Option<u32>> {
    let text = root.read_optional(GROUP_PATH)?.unwrap_or_default();
    Ok(parse_group(&text)
        .into_iter()
        .find(|g| g.name == name)
        .map(|g| g.gid))
}

/// The name of a gid, read from `/etc/group` the same way.
pub fn group_name(root: &HostRoot, gid: u32) -> Option<String> {
    let text = root.read_optional(GROUP_PATH).ok()??;
    parse_group(&text)
        .into_iter()
        .find(|g| g.gid == gid)
        .map(|g| g.name)
}

const UDEV_RULE_DIRS: &[&str] = &[
    "/etc/udev/rules.d",
    "/usr/lib/udev/rules.d",
    "/lib/udev/rules.d",
];

/// A udev rule of the distribution (not virthost's own) that gives `/dev/kvm` to the kvm
/// group: systemd's `50-udev-default.rules` on most, `80-kvm.rules` from qemu-kvm on EL7.
pub fn distro_kvm_udev_rule(root: &HostRoot) -> Option<String> {
    for dir in UDEV_RULE_DIRS {
        let Ok(rd) = std::fs::read_dir(root.path(dir)) else {
            continue;
        };
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".rules"))
            .collect();
        names.sort();
        for name in names {
            let host_path = format!("{dir}/{name}");
            if host_path == desired::KVM_UDEV_RULE_PATH {
                continue;
            }
            let Ok(Some(text)) = root.read_optional(&host_path) else {
                continue;
            };
            let sets_group = text.lines().any(|l| {
                let l = l.trim();
                !l.starts_with('#') && l.contains("KERNEL==\"kvm\"") && l.contains("GROUP=\"kvm\"")
            });
            if sets_group {
                return Some(host_path);
            }
        }
    }
    None
}

/// Whether systemd runs as PID 1 (sd_booted(3): `/run/systemd/system` exists).
pub fn systemd_is_pid1(root: &HostRoot) -> bool {
    root.path("/run/systemd/system").is_dir()
}

/// Whether a unit is enabled: a symlink to it in a `/etc/systemd/system/*.wants/` directory.
pub fn unit_enabled(root: &HostRoot, unit: &str) -> bool {
    let Ok(rd) = std::fs::read_dir(root.path("/etc/systemd/system")) else {
        return false;
    };
    rd.filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".wants"))
        .any(|e| e.path().join(unit).symlink_metadata().is_ok())
}

/// Who QEMU runs as on a host: qemu.conf's `user` (and `group`), else the distribution's
/// default (`libvirt-qemu` on Debian and Ubuntu, `qemu` elsewhere). QEMU also gets the user's
/// supplementary groups (libvirt calls initgroups for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuIdentity {
    /// A name, or a uid (`107`, `+107`).
    pub user: String,
    /// qemu.conf's `group` (a name, or `+gid`), which replaces the primary group.
    pub group: Option<String>,
    /// Where `user` comes from, for messages.
    pub source: &'static str,
}

/// Where qemu.conf is.
pub const QEMU_CONF: &str = "/etc/libvirt/qemu.conf";

impl QemuIdentity {
    /// Read from `root` (`family`: the distribution's default user; `None`: RHEL's).
    pub fn read(root: &HostRoot, family: Option<Family>) -> QemuIdentity {
        let default = match family {
            Some(Family::Apt) => ("libvirt-qemu", "Debian's default"),
            _ => ("qemu", "the RHEL default"),
        };
        match root.read_optional(QEMU_CONF) {
            // Debian keeps qemu.conf 0600: without root the distribution default is assumed.
            Err(_) => QemuIdentity {
                user: default.0.into(),
                group: None,
                source: "assumed: /etc/libvirt/qemu.conf is unreadable, run as root",
            },
            Ok(conf) => {
                let conf = conf.unwrap_or_default();
                let group = qemu_conf_value(&conf, "group");
                match qemu_conf_value(&conf, "user") {
                    Some(user) => QemuIdentity {
                        user,
                        group,
                        source: "user in /etc/libvirt/qemu.conf",
                    },
                    None => QemuIdentity {
                        user: default.0.into(),
                        group,
                        source: default.1,
                    },
                }
            }
        }
    }

    /// Its account in `accounts` and the gids QEMU runs with (qemu.conf's `group` among
    /// them); `None` when the user is not in `/etc/passwd`.
    pub fn account<'a>(
        &self,
        accounts: &'a crate::accounts::Accounts,
    ) -> Option<(&'a crate::accounts::User, Vec<u32>)> {
        let user = match self.user.parse::<u32>() {
            Ok(uid) => accounts.user_by_uid(uid),
            Err(_) => accounts.user(&self.user),
        }?;
        let mut gids = accounts.gids_of(user);
        gids.extend(self.group_gid(accounts));
        Some((user, gids))
    }

    /// The gid of qemu.conf's `group` (a name, or `+gid`), which replaces QEMU's primary
    /// group; `None` without one, or when the name is no group.
    pub fn group_gid(&self, accounts: &crate::accounts::Accounts) -> Option<u32> {
        let g = self.group.as_ref()?;
        // `+107` parses as 107.
        match g.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => accounts.group(g).map(|g| g.gid),
        }
    }
}

/// `key = "value"` of qemu.conf (the last uncommented setting wins, as libvirt reads it).
fn qemu_conf_value(conf: &str, key: &str) -> Option<String> {
    conf.lines().rev().find_map(|l| {
        let rest = l.trim().strip_prefix(key)?;
        let v = rest.trim_start().strip_prefix('=')?;
        let v = v.trim().trim_matches('"');
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// How libvirt runs on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LibvirtMode {
    /// One `libvirtd` for every driver.
    Monolithic,
    /// One daemon per driver (`virtqemud`, `virtnetworkd`, ...), socket-activated.
    Modular,
}

/// The modular daemons bootstrap starts, in order (QEMU, networks, storage, host devices,
/// secrets).
pub const MODULAR_DAEMONS: &[&str] = &[
    "virtqemud",
    "virtnetworkd",
    "virtstoraged",
    "virtnodedevd",
    "virtsecretd",
];

/// Which libvirt daemons the installed packages ship.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LibvirtDaemons {
    pub libvirtd: bool,
    pub virtlogd: bool,
    /// Present members of [`MODULAR_DAEMONS`].
    pub modular: Vec<&'static str>,
}

/// Whether the packages ship the daemon `name` (in `/usr/sbin`, `/sbin` or `/usr/bin`).
pub fn daemon_installed(root: &HostRoot, name: &str) -> bool {
    ["/usr/sbin", "/sbin", "/usr/bin"]
        .iter()
        .any(|dir| root.exists(format!("{dir}/{name}")))
}

/// Where a libvirt daemon listens: `/run/libvirt/libvirt-sock` for `libvirtd`,
/// `/run/libvirt/<daemon>-sock` for the others (`virtqemud-sock`, `virtlogd-sock`, ...).
pub fn libvirt_socket(daemon: &str) -> String {
    match daemon {
        "libvirtd" => "/run/libvirt/libvirt-sock".into(),
        d => format!("/run/libvirt/{d}-sock"),
    }
}

impl LibvirtDaemons {
    pub fn read(root: &HostRoot) -> LibvirtDaemons {
        let has = |d: &str| daemon_installed(root, d);
        LibvirtDaemons {
            libvirtd: has("libvirtd"),
            virtlogd: has("virtlogd"),
            modular: MODULAR_DAEMONS.iter().copied().filter(|d| has(d)).collect(),
        }
    }

    pub fn any(&self) -> bool {
        self.libvirtd || !self.modular.is_empty()
    }

    /// The mode to run: what already runs or is enabled; else the distribution's default
    /// (modular on Fedora and EL 9+, monolithic elsewhere), among what is installed.
    pub fn mode(&self, root: &HostRoot, platform: &Platform) -> Option<LibvirtMode> {
        let has_modular = self.modular.contains(&"virtqemud");
        if self.libvirtd && is_running(root, "libvirtd") {
            return Some(LibvirtMode::Monolithic);
        }
        if has_modular && is_running(root, "virtqemud") {
            return Some(LibvirtMode::Modular);
        }
        if systemd_is_pid1(root) {
            if self.libvirtd
                && (unit_enabled(root, "libvirtd.service") || unit_enabled(root, "libvirtd.socket"))
            {
                return Some(LibvirtMode::Monolithic);
            }
            if has_modular
                && (unit_enabled(root, "virtqemud.service")
                    || unit_enabled(root, "virtqemud.socket"))
            {
                return Some(LibvirtMode::Modular);
            }
        }
        let modular_default = match platform.distro {
            crate::os::Distro::Fedora => true,
            crate::os::Distro::Debian | crate::os::Distro::Ubuntu => false,
            _ => platform.family == Family::Dnf && platform.major >= 9,
        };
        match (self.libvirtd, has_modular) {
            (_, true) if modular_default => Some(LibvirtMode::Modular),
            (true, _) => Some(LibvirtMode::Monolithic),
            (false, true) => Some(LibvirtMode::Modular),
            (false, false) => None,
        }
    }
}

/// SELinux state from `/sys/fs/selinux/enforce`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Selinux {
    Disabled,
    Permissive,
    Enforcing,
}

impl Selinux {
    pub fn read(root: &HostRoot) -> Selinux {
        match root.read_optional("/sys/fs/selinux/enforce") {
            Ok(Some(v)) if v.trim() == "1" => Selinux::Enforcing,
            Ok(Some(_)) => Selinux::Permissive,
            _ => Selinux::Disabled,
        }
    }

    pub fn enabled(self) -> bool {
        self != Selinux::Disabled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` at `rel` under `dir`, parents created.
    fn write(dir: &std::path::Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn module_flags_as_the_kernel_writes_them() {
        let d = tempfile::tempdir().unwrap();
        let r = HostRoot::at(d.path());
        // kvm_amd in the e2e VM (TCG's SVM has no NRIP-save): nrips 0, nested 1.
        write(d.path(), "sys/module/kvm_amd/parameters/nrips", "0\n");
        write(d.path(), "sys/module/kvm_amd/parameters/nested", "1\n");
        write(d.path(), "sys/module/kvm_intel/parameters/nested", "Y\n");
        assert_eq!(module_flag(&r, "kvm_amd", "nrips"), Some(false));
        assert_eq!(module_flag(&r, "kvm_amd", "nested"), Some(true));
        assert_eq!(nested_param(&r, "kvm_intel"), Some(true));
        assert_eq!(module_flag(&r, "kvm_amd", "avic"), None);
        assert_eq!(module_flag(&r, "kvm_hygon", "nrips"), None);
    }

    #[test]
    fn reads_processes_modules_nodes_and_groups() {
        let d = tempfile::tempdir().unwrap();
        let r = HostRoot::at(d.path());
        write(d.path(), "proc/812/comm", "qemu-system-x86\n");
        write(d.path(), "proc/77/comm", "libvirtd\n");
        write(d.path(), "proc/1/comm", "systemd\n");
        write(d.path(), "sys/module/kvm_amd/parameters/nested", "1\n");
        write(
            d.path(),
            "sys/module/kvm/parameters/halt_poll_ns",
            "200000\n",
        );
        write(d.path(), "dev/kvm", "0 36 660\n");
        write(d.path(), "etc/group", "root:x:0:\nkvm:x:36:qemu\n");
        write(
            d.path(),
            "usr/lib/udev/rules.d/50-udev-default.rules",
            "# x\nKERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0666\", OPTIONS+=\"static_node=kvm\"\n",
        );
        write(
            d.path(),
            "etc/udev/rules.d/65-virthost-kvm.rules",
            &desired::kvm_udev_rule(),
        );
        assert_eq!(
            running_guests(&r),
            [Process {
                pid: 812,
                comm: "qemu-system-x86".into()
            }]
        );
        assert!(is_running(&r, "libvirtd") && !is_running(&r, "virtqemud"));
        let m = KvmModules::read(&r, Some(VirtExtension::Svm));
        assert!(m.kvm_loaded && m.vendor_loaded && m.nested == Some(true));
        let node = DevNode::read(&r, "/dev/kvm").unwrap().unwrap();
        assert_eq!((node.uid, node.gid, node.mode), (0, 36, 0o660));
        assert_eq!(group_gid(&r, "kvm").unwrap(), Some(36));
        assert_eq!(group_name(&r, 36).as_deref(), Some("kvm"));
        assert!(node.usable_by_group(36));
        assert_eq!(
            distro_kvm_udev_rule(&r).as_deref(),
            Some("/usr/lib/udev/rules.d/50-udev-default.rules")
        );
        assert_eq!(Selinux::read(&r), Selinux::Disabled);
        assert!(DevNode::read(&r, "/dev/nope").unwrap().is_none());
        // A bad captured line names the file, whichever field is wrong.
        for bad in ["0 kvm 660\n", "0 36 rw\n", "0 36\n"] {
            write(d.path(), "dev/vhost-net", bad);
            let err = format!("{:#}", DevNode::read(&r, "/dev/vhost-net").unwrap_err());
            assert!(err.contains("dev/vhost-net: not a device node"), "{err}");
        }
    }

    #[test]
    fn libvirt_mode_follows_what_runs_then_the_distro_default() {
        let d = tempfile::tempdir().unwrap();
        let r = HostRoot::at(d.path());
        let p = |t| Platform::detect(&OsRelease::parse(t), None).unwrap();
        write(d.path(), "usr/sbin/libvirtd", "");
        write(d.path(), "usr/sbin/virtqemud", "");
        write(d.path(), "usr/sbin/virtnetworkd", "");
        let l = LibvirtDaemons::read(&r);
        assert_eq!(l.modular, ["virtqemud", "virtnetworkd"]);
        assert_eq!(
            l.mode(&r, &p("ID=rhel\nVERSION_ID=9.4")),
            Some(LibvirtMode::Modular)
        );
        assert_eq!(
            l.mode(&r, &p("ID=rhel\nVERSION_ID=8.10")),
            Some(LibvirtMode::Monolithic)
        );
        assert_eq!(
            l.mode(&r, &p("ID=debian\nVERSION_ID=12")),
            Some(LibvirtMode::Monolithic)
        );
        write(d.path(), "proc/9/comm", "libvirtd\n");
        assert_eq!(
            l.mode(&r, &p("ID=fedora\nVERSION_ID=40")),
            Some(LibvirtMode::Monolithic)
        );
    }
}
