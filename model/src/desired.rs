//! The one definition of a ready hypervisor (spec: `hypervisor.rst`). `bootstrap` converges
//! a host to it, `validate` checks a host against it; neither keeps a list of its own.

use serde::Serialize;

use crate::cpu::VirtExtension;
use crate::ipxe::BuildDate;
use crate::os::{Distro, Family, Platform};
use crate::render;
use crate::username::UserName;

/// The `apiVersion` of every machine-readable report.
pub const API_VERSION: &str = "virthost.dev/v1";

/// Why a package is wanted; `validate` and `bootstrap` name packages by their role in
/// messages that are not distribution-specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Libvirt,
    LibvirtClient,
    Qemu,
    QemuTools,
    LibguestfsTools,
    LibguestfsXfs,
    Wget,
    VirtInstall,
    IpxeRoms,
    /// iPXE's EFI images (`/usr/lib/ipxe/snponly.efi`), apt hosts only. Debian 13's
    /// `efi-*.rom` carry a network driver but no iPXE, so a UEFI node reaches iPXE only by
    /// chaining `snponly.efi` from the firmware's own PXE client, as Ironic does; the
    /// UEFI boot proof serves the host's copy over TFTP (docs/uefi-debian13.md). RPM
    /// hosts' `ipxe-roms-qemu` ROMs carry iPXE for both firmwares.
    IpxeEfi,
    /// OVMF, the UEFI firmware libvirt's `<os firmware='efi'>` selects through QEMU's
    /// firmware descriptors (`/usr/share/qemu/firmware/*.json`).
    UefiFirmware,
    Dnsmasq,
    Polkit,
    /// libvirt's Python bindings: the deployers' Ansible modules that run on the hypervisor
    /// (`virt`, `virt_net`, `virt_pool`) and virtualbmc / sushy-tools `import libvirt`.
    PythonLibvirt,
    /// lxml, which the same Ansible modules use to edit libvirt's XML.
    PythonLxml,
}

/// A package the host needs, named as its distribution names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    pub name: &'static str,
    pub role: Role,
    /// The repository to configure when the package manager cannot find it.
    pub repo_hint: String,
}

/// The virtualization package set of a platform, in install order.
///
/// Every RPM name is a package name in that release's repositories, checked against the
/// distributions' spec files per release (docs/packages.md has the table and the evidence),
/// except `wget` on Fedora 40 and later, a `Provides:` of `wget2-wget` there that dnf resolves
/// (bootstrap asks rpm and dnf what provides each name, so it counts as installed whichever
/// package provides it). The Python bindings (`python3-libvirt`, `python3-lxml`; EL7's
/// Python 2 `libvirt-python`, `python-lxml`) are there for the deployers: their Ansible
/// modules run on the hypervisor and import them (docs/packages.md). Debian 12 and Ubuntu (`apt-cache policy` on bookworm:
/// `libvirt-daemon-system`, `libvirt-clients`, `qemu-system-x86`, `qemu-utils`,
/// `libguestfs-tools`, `libguestfs-xfs`, `wget`, `virtinst`, `ipxe-qemu`, `ipxe`,
/// `dnsmasq-base`, `polkitd`). On apt hosts `bootstrap` installs without recommends, so what libvirt only
/// recommends but needs for networks (dnsmasq) and for polkit rules (polkitd) is named.
pub fn packages(platform: &Platform) -> Vec<Package> {
    use Role::*;
    let names: Vec<(&'static str, Role)> = match platform.family {
        Family::Yum | Family::Dnf => vec![
            ("libvirt", Libvirt),
            ("qemu-kvm", Qemu),
            (guestfs_tools_package(platform), LibguestfsTools),
            ("libguestfs-xfs", LibguestfsXfs),
            ("virt-install", VirtInstall),
            ("wget", Wget),
            ("ipxe-roms-qemu", IpxeRoms),
            (uefi_package(platform.family), UefiFirmware),
            (python_libvirt_package(platform.family), PythonLibvirt),
            (python_lxml_package(platform.family), PythonLxml),
        ],
        Family::Apt => vec![
            ("libvirt-daemon-system", Libvirt),
            ("libvirt-clients", LibvirtClient),
            ("qemu-system-x86", Qemu),
            ("qemu-utils", QemuTools),
            ("libguestfs-tools", LibguestfsTools),
            ("libguestfs-xfs", LibguestfsXfs),
            ("virtinst", VirtInstall),
            ("wget", Wget),
            ("ipxe-qemu", IpxeRoms),
            ("ipxe", IpxeEfi),
            (uefi_package(platform.family), UefiFirmware),
            ("dnsmasq-base", Dnsmasq),
            (polkit_package(platform), Polkit),
            (python_libvirt_package(platform.family), PythonLibvirt),
            (python_lxml_package(platform.family), PythonLxml),
        ],
    };
    names
        .into_iter()
        .map(|(name, role)| Package {
            name,
            role,
            repo_hint: repo_hint(platform, role),
        })
        .collect()
}

/// The package of the `virt-*` tools (virt-customize, virt-sysprep, virt-resize, ...) on an
/// RPM platform. libguestfs 1.45.3 (2021) moved them into their own source package,
/// `guestfs-tools`; since then `libguestfs-tools` is only a `Provides:` of `virt-win-reg`,
/// the Windows-registry tool (guestfs-tools.spec), so asking for it installs the wrong thing.
/// Fedora has the split since 35 (bootstrap supports 38 and later), RHEL and its rebuilds
/// since 9; EL7 (libguestfs 1.40) and EL8 (1.44) still build `libguestfs-tools` from
/// libguestfs. An unknown dnf OS (`--os-family dnf`) is judged by its major version alone.
pub fn guestfs_tools_package(platform: &Platform) -> &'static str {
    match (platform.family, platform.distro) {
        (Family::Apt, _) | (Family::Yum, _) => "libguestfs-tools",
        (Family::Dnf, Distro::Fedora) => "guestfs-tools",
        (Family::Dnf, _) if platform.major >= 9 => "guestfs-tools",
        (Family::Dnf, _) => "libguestfs-tools",
    }
}

/// Whether the distribution's polkit is 0.105, which reads local-authority `.pkla` files
/// only: Ubuntu before 24.04 (22.04 ships 0.105-33). Everything else bootstrap supports has
/// polkit >= 0.106 with JavaScript rules (RHEL 7's 0.112 included).
fn has_polkit_0105(platform: &Platform) -> bool {
    matches!((platform.distro, platform.major), (Distro::Ubuntu, m) if m < 24)
}

/// The package that carries polkit's daemon on apt hosts: Ubuntu 22.04 still calls it
/// `policykit-1`.
fn polkit_package(platform: &Platform) -> &'static str {
    if has_polkit_0105(platform) {
        "policykit-1"
    } else {
        "polkitd"
    }
}

/// The backend of the polkit the platform's packages install (before they are installed,
/// and where the installed version cannot be read).
pub fn polkit_backend_of(platform: &Platform) -> PolkitBackend {
    if has_polkit_0105(platform) {
        PolkitBackend::LocalAuthority
    } else {
        PolkitBackend::Rules
    }
}

/// The UEFI firmware package of a family: Debian and Ubuntu `ovmf` (bookworm 2022.11,
/// checked with `apt-cache policy`); EL8+ and Fedora `edk2-ovmf` (the `ovmf` subpackage of
/// edk2.spec, which also `Provides: OVMF` and obsoletes RHEL 7's package); EL7 `OVMF`
/// (RHEL 7's build of the same firmware, in the server channel since 7.3, CentOS 7 `os`).
pub fn uefi_package(family: Family) -> &'static str {
    match family {
        Family::Apt => "ovmf",
        Family::Dnf => "edk2-ovmf",
        Family::Yum => "OVMF",
    }
}

/// libvirt's Python bindings for the Python the host's Ansible runs modules with: EL7's
/// Python 2 `libvirt-python` (infrared's `vars/hypervisor.yml`), `python3-libvirt` everywhere
/// else (libvirt-python.spec's subpackage on EL8+ and Fedora; Debian and Ubuntu).
pub fn python_libvirt_package(family: Family) -> &'static str {
    match family {
        Family::Yum => "libvirt-python",
        Family::Dnf | Family::Apt => "python3-libvirt",
    }
}

/// lxml for the same Python: EL7 `python-lxml`, elsewhere `python3-lxml`.
pub fn python_lxml_package(family: Family) -> &'static str {
    match family {
        Family::Yum => "python-lxml",
        Family::Dnf | Family::Apt => "python3-lxml",
    }
}

/// The iPXE ROM package of a family.
pub fn ipxe_package(family: Family) -> &'static str {
    match family {
        Family::Yum | Family::Dnf => "ipxe-roms-qemu",
        Family::Apt => "ipxe-qemu",
    }
}

/// The iPXE ROM package of `platform`'s set, with its repository.
pub fn ipxe_roms(platform: &Platform) -> Package {
    packages(platform)
        .into_iter()
        .find(|p| p.role == Role::IpxeRoms)
        .expect("every package set names the iPXE ROMs")
}

/// The oldest acceptable iPXE ROM build: "at least version 2016xxyy". Older (2013) builds
/// made PXE boots time out.
pub const IPXE_MIN_BUILD: BuildDate = BuildDate::new(2016, 1, 1);

fn repo_hint(platform: &Platform, role: Role) -> String {
    match (platform.distro, platform.family) {
        (Distro::Rhel, Family::Yum) => {
            "the RHEL 7 server channel (rhel-7-server-rpms; `subscription-manager repos --enable=rhel-7-server-rpms`)".into()
        }
        (Distro::CentOs, Family::Yum) => "the CentOS 7 'base' and 'updates' repositories".into(),
        (Distro::Rhel, Family::Dnf) => format!(
            "the RHEL {m} AppStream repository (rhel-{m}-for-x86_64-appstream-rpms)",
            m = platform.major
        ),
        (Distro::CentOsStream | Distro::Rocky | Distro::Alma, _) => {
            if role == Role::LibguestfsXfs || role == Role::LibguestfsTools {
                "the AppStream repository (and CRB where libguestfs needs it)".into()
            } else {
                "the AppStream repository".into()
            }
        }
        (Distro::Fedora, _) => "the 'fedora' and 'updates' repositories".into(),
        (Distro::Debian, _) => "the Debian 'main' component of this release (see /etc/apt/sources.list.d/)".into(),
        (Distro::Ubuntu, _) => "the Ubuntu 'main' and 'universe' components (see /etc/apt/sources.list.d/)".into(),
        _ => format!("a {} repository that provides it", platform.family),
    }
}

/// The user that manages libvirt VMs for the deployment tooling.
pub const DEFAULT_USER: &str = "stack";
pub const USER_SHELL: &str = "/bin/bash";
/// Mode of a home bootstrap creates itself (useradd applies the distribution's own; an
/// existing home keeps its mode).
pub const USER_HOME_MODE: u32 = 0o700;

pub fn user_home(user: &UserName) -> String {
    format!("/home/{user}")
}

/// The libvirt URI the VM user manages and `bootstrap` configures (polkit's rule, the pool).
pub const LIBVIRT_URI: &str = "qemu:///system";

/// The storage pool deployment tooling (infrared, TripleO quickstart) puts VM images in,
/// and libvirt's own default for images; Debian's libvirt ships no pool, and on RHEL
/// virt-install defines it only on first use, so `bootstrap` defines it.
pub const POOL_NAME: &str = "default";
/// The pool's libvirt type: a plain directory.
pub const POOL_TYPE: &str = "dir";
/// Where images go: the pool's target, and where they go when there is no pool.
pub const IMAGES_DIR: &str = "/var/lib/libvirt/images";
/// libvirt's own dnsmasq files, which dnsmasq may read: validate's UEFI boot proof puts its
/// networks' TFTP roots (`<network>.tftp`) beside them, and the sweeps look there.
pub const LIBVIRT_DNSMASQ_DIR: &str = "/var/lib/libvirt/dnsmasq";

/// The polkit action that lets a user manage libvirt on `qemu:///system`.
pub const LIBVIRT_MANAGE_ACTION: &str = "org.libvirt.unix.manage";

/// Where a JavaScript polkit rule (polkit >= 0.106) goes.
pub const POLKIT_RULE_PATH: &str = "/etc/polkit-1/rules.d/50-virthost-libvirt.rules";
/// Where a local-authority file goes (polkit 0.105, e.g. Ubuntu 22.04).
pub const POLKIT_PKLA_PATH: &str =
    "/etc/polkit-1/localauthority/50-local.d/50-virthost-libvirt.pkla";

/// Which polkit configuration the installed polkit reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolkitBackend {
    /// JavaScript rules in `/etc/polkit-1/rules.d/` (polkit >= 0.106).
    Rules,
    /// `.pkla` files of the local-authority backend (polkit 0.105 and older).
    LocalAuthority,
}

impl PolkitBackend {
    /// The backend of a polkit version such as `0.112`, `0.105-33`, `122-3`, `124-2ubuntu1`.
    pub fn for_version(version: &str) -> PolkitBackend {
        let v = version.split_once(':').map(|(_, r)| r).unwrap_or(version);
        let mut parts = v.split(|c: char| !c.is_ascii_digit());
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if major == 0 && minor < 106 {
            PolkitBackend::LocalAuthority
        } else {
            PolkitBackend::Rules
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            PolkitBackend::Rules => POLKIT_RULE_PATH,
            PolkitBackend::LocalAuthority => POLKIT_PKLA_PATH,
        }
    }

    /// The file content that grants [`LIBVIRT_MANAGE_ACTION`] to `user` alone, rendered
    /// with the language's quoting ([`render`]); an error when the file's language cannot
    /// hold the name literally (a `.pkla` cannot match `*` or `?`).
    pub fn content(self, user: &UserName) -> anyhow::Result<String> {
        match self {
            PolkitBackend::Rules => Ok(render::polkit_rule(LIBVIRT_MANAGE_ACTION, user.as_str())),
            PolkitBackend::LocalAuthority => render::pkla(LIBVIRT_MANAGE_ACTION, user.as_str()),
        }
    }
}

/// Mode of the files the `kvm` and `devkvm` steps own (the nested config, the udev rule),
/// `root:root`.
pub const KVM_FILES_MODE: u32 = 0o644;

/// Where `nested=1` for the vendor KVM module is configured.
pub const NESTED_CONF_PATH: &str = "/etc/modprobe.d/virthost-kvm-nested.conf";

pub fn nested_conf(ext: VirtExtension) -> String {
    render::modprobe_options(
        "Managed by virthost bootstrap: nested virtualization for the VMs' own guests.",
        ext.kvm_module(),
        &[("nested", "1")],
    )
    .expect("the KVM module names are modprobe tokens")
}

/// `/dev/kvm` must be `root:kvm 0660` so the user QEMU runs as can open it (ENVIRONMENT.md:
/// without it libvirt re-probes QEMU on every call). Installed where the distribution's
/// udev rules do not already set it.
pub const KVM_UDEV_RULE_PATH: &str = "/etc/udev/rules.d/65-virthost-kvm.rules";
pub const KVM_GROUP: &str = "kvm";
pub const KVM_MODE: u32 = 0o660;

/// The udev rule that gives `/dev/kvm` to [`KVM_GROUP`] with [`KVM_MODE`].
pub fn kvm_udev_rule() -> String {
    render::udev_rule(
        "Managed by virthost bootstrap: /dev/kvm for the kvm group.",
        &[("KERNEL", "kvm")],
        &[("GROUP", KVM_GROUP), ("MODE", &format!("{KVM_MODE:04o}"))],
    )
    .expect("the rule's values are constants")
}

/// Optional passwordless sudo for the user (`bootstrap --sudo`).
/// The file lives in `/etc/sudoers.d/`; its name says whose it is, in the characters sudo
/// reads there ([`render::sudoers_file_name`]).
pub fn sudoers_path(user: &UserName) -> String {
    format!(
        "/etc/sudoers.d/{}",
        render::sudoers_file_name("virthost-", user.as_str())
    )
}

/// An error when sudoers cannot name the user (its reserved `ALL`).
pub fn sudoers_content(user: &UserName) -> anyhow::Result<String> {
    render::sudoers_nopasswd_all(user.as_str())
}

/// Directories where QEMU finds iPXE ROMs, per family. On RPM hosts (their spec files,
/// fixtures/packages/README.md): EL7's qemu-kvm links `pxe-*.rom` and EL8's `efi-*.rom` in
/// `/usr/share/qemu-kvm` to ipxe-roms-qemu's PCI-id ROMs in `/usr/share/ipxe` and
/// `/usr/share/ipxe.efi`; on EL9 and Fedora ipxe-roms-qemu links both kinds in
/// `/usr/share/ipxe/qemu`, which is on QEMU's firmware path.
pub fn rom_dirs(family: Family) -> &'static [&'static str] {
    match family {
        Family::Apt => &["/usr/lib/ipxe/qemu", "/usr/share/qemu"],
        Family::Yum | Family::Dnf => &[
            "/usr/share/qemu-kvm",
            "/usr/share/ipxe/qemu",
            "/usr/share/qemu",
            "/usr/share/ipxe",
        ],
    }
}

/// The NIC models a test domain may boot, and the ROM file names QEMU loads for each
/// (QEMU's `efi-*.rom` / `pxe-*.rom`, or the PCI-id names RHEL's ipxe-roms-qemu ships).
pub const NIC_ROMS: &[(&str, &[&str])] = &[
    (
        "virtio",
        &["efi-virtio.rom", "pxe-virtio.rom", "1af41000.rom"],
    ),
    ("e1000", &["efi-e1000.rom", "pxe-e1000.rom", "8086100e.rom"]),
    (
        "rtl8139",
        &["efi-rtl8139.rom", "pxe-rtl8139.rom", "10ec8139.rom"],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::OsRelease;

    fn platform(text: &str) -> Platform {
        Platform::detect(&OsRelease::parse(text), None).unwrap()
    }

    #[test]
    fn package_sets_follow_the_family() {
        let names = |t| {
            packages(&platform(t))
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
        };
        let el7 = names("ID=rhel\nVERSION_ID=7.4");
        assert_eq!(
            el7,
            [
                "libvirt",
                "qemu-kvm",
                "libguestfs-tools",
                "libguestfs-xfs",
                "virt-install",
                "wget",
                "ipxe-roms-qemu",
                "OVMF",
                "libvirt-python",
                "python-lxml"
            ]
        );
        assert!(names("ID=rocky\nVERSION_ID=9.5").contains(&"edk2-ovmf"));
        let deb = names("ID=debian\nVERSION_ID=12");
        assert!(
            deb.contains(&"ipxe-qemu")
                && deb.contains(&"virtinst")
                && deb.contains(&"polkitd")
                && deb.contains(&"ovmf")
        );
        assert!(names("ID=ubuntu\nVERSION_ID=22.04").contains(&"policykit-1"));
        // Every set names exactly one iPXE package, the one `ipxe_package` names.
        for t in [
            "ID=rhel\nVERSION_ID=7.4",
            "ID=fedora\nVERSION_ID=40",
            "ID=debian\nVERSION_ID=12",
        ] {
            let p = platform(t);
            let set = packages(&p);
            let ipxe: Vec<_> = set.iter().filter(|p| p.role == Role::IpxeRoms).collect();
            assert_eq!(ipxe.len(), 1);
            assert_eq!(ipxe[0].name, ipxe_package(p.family));
        }
    }

    /// Since the guestfs-tools split (libguestfs 1.45.3) `libguestfs-tools` is only a
    /// `Provides:` of `virt-win-reg` on Fedora and EL9+: the virt-* tools are
    /// `guestfs-tools` there; EL7 and EL8 still have `libguestfs-tools`.
    #[test]
    fn the_virt_tools_package_follows_the_guestfs_tools_split() {
        let tools = |t| {
            let set = packages(&platform(t));
            let tools: Vec<_> = set
                .iter()
                .filter(|p| p.role == Role::LibguestfsTools)
                .map(|p| p.name)
                .collect();
            assert_eq!(tools.len(), 1, "{t}: {tools:?}");
            assert!(
                set.iter()
                    .all(|p| p.role == Role::LibguestfsTools || !p.name.contains("guestfs-tools")),
                "{t}"
            );
            tools[0]
        };
        for t in [
            "ID=fedora\nVERSION_ID=38",
            "ID=fedora\nVERSION_ID=40",
            "ID=fedora\nVERSION_ID=42",
            "ID=rocky\nVERSION_ID=9.5",
            "ID=centos\nNAME=\"CentOS Stream\"\nVERSION_ID=9",
            "ID=rhel\nVERSION_ID=9.4",
            "ID=almalinux\nVERSION_ID=10.0",
            "ID=centos\nNAME=\"CentOS Stream\"\nVERSION_ID=10",
        ] {
            assert_eq!(tools(t), "guestfs-tools", "{t}");
        }
        for t in [
            "ID=rhel\nVERSION_ID=7.4",
            "ID=centos\nNAME=\"CentOS Linux\"\nVERSION_ID=7",
            "ID=rhel\nVERSION_ID=8.9",
            "ID=rocky\nVERSION_ID=8.10",
            "ID=debian\nVERSION_ID=12",
            "ID=ubuntu\nVERSION_ID=24.04",
        ] {
            assert_eq!(tools(t), "libguestfs-tools", "{t}");
        }
    }

    #[test]
    fn python_bindings_follow_the_family_python() {
        let names = |t| {
            packages(&platform(t))
                .into_iter()
                .filter(|p| matches!(p.role, Role::PythonLibvirt | Role::PythonLxml))
                .map(|p| p.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names("ID=rhel\nVERSION_ID=7.4"),
            ["libvirt-python", "python-lxml"]
        );
        for t in [
            "ID=rhel\nVERSION_ID=8.9",
            "ID=fedora\nVERSION_ID=40",
            "ID=debian\nVERSION_ID=12",
        ] {
            assert_eq!(names(t), ["python3-libvirt", "python3-lxml"], "{t}");
        }
    }

    #[test]
    fn rhel7_ipxe_hint_names_the_server_channel() {
        let p = platform("ID=rhel\nVERSION_ID=7.3");
        let set = packages(&p);
        let ipxe = set.iter().find(|p| p.name == "ipxe-roms-qemu").unwrap();
        assert!(
            ipxe.repo_hint.contains("rhel-7-server-rpms"),
            "{}",
            ipxe.repo_hint
        );
    }

    #[test]
    fn polkit_backend_follows_the_version() {
        assert_eq!(
            PolkitBackend::for_version("0.105-33"),
            PolkitBackend::LocalAuthority
        );
        assert_eq!(
            PolkitBackend::for_version("0.112-26.el7"),
            PolkitBackend::Rules
        );
        assert_eq!(PolkitBackend::for_version("122-3"), PolkitBackend::Rules);
        assert_eq!(
            PolkitBackend::for_version("124-2ubuntu1"),
            PolkitBackend::Rules
        );
        let name = |n| UserName::parse(n, crate::username::Rules::Any).unwrap();
        let rule = PolkitBackend::Rules.content(&name("stack")).unwrap();
        assert!(
            rule.contains("subject.user == \"stack\"")
                && rule.contains("\"org.libvirt.unix.manage\"")
        );
        let pkla = PolkitBackend::LocalAuthority.content(&name("ops")).unwrap();
        assert!(pkla.contains("Identity=unix-user:ops"));
    }

    #[test]
    fn nested_conf_names_the_vendor_module() {
        assert!(nested_conf(VirtExtension::Vmx).contains("options kvm_intel nested=1"));
        assert!(nested_conf(VirtExtension::Svm).contains("options kvm_amd nested=1"));
    }
}
