//! libvirt: reachable at `--connect`, its and the hypervisor's version, the default storage
//! pool, the domain type it can run (kvm or qemu), and whether polkit really lets the stack
//! user manage `qemu:///system` (connect as that user's uid and list domains).
//!
//! What libvirt answers is judged by pure functions over its XML (`offered_types`,
//! `domain_types_from`, `domain_type_result`, `pool_target_path`, `pool_result`), tested on
//! documents captured from a real libvirt (`fixtures/validate/libvirt-9.0/`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use virt::connect::Connect;
use virthost_model::assess::pool::{self, PoolFacts};
use virthost_model::desired::{self, IMAGES_DIR, POOL_NAME};
use virthost_model::virsh::{PoolInfo, PoolState};

use super::{firmware, Host};
use crate::accounts::{lookup_account, Account};
use crate::assessed::{self, Severity};
use crate::check::{timed, CheckResult};
use crate::connection::{Libvirt, LibvirtError};
use crate::options::{DomainType, Options};

/// The URI the stack (and polkit's rule) is about.
pub const SYSTEM_URI: &str = desired::LIBVIRT_URI;

const START_HINT: &str = "start libvirt: `systemctl enable --now libvirtd` (modular daemons: \
     `systemctl enable --now virtqemud.socket virtnetworkd.socket virtstoraged.socket`); \
     without systemd: `virtlogd -d && libvirtd -d`; check --connect";

/// The libvirt checks: `libvirt.connect` (the attempt `libvirt` made), then on its
/// connection `libvirt.pool`, `libvirt.domain_type`, `firmware.efi`, `firmware.secure_boot`;
/// and `libvirt.polkit` (a connection of its own, in a child that is the stack user).
pub fn run(opts: &Options, host: &Host, libvirt: &Libvirt) -> Vec<CheckResult> {
    let mut out = vec![connect_result(libvirt)];
    if let Some(conn) = libvirt.conn() {
        out.extend(timed(|| vec![pool_check(conn)]));
        out.extend(timed(|| vec![domain_type_check(conn)]));
        out.extend(timed(|| firmware_checks(conn, host, libvirt.uri())));
    }
    out.extend(timed(|| {
        vec![polkit_check(SYSTEM_URI, opts.user.as_str(), Path::new("/"))]
    }));
    out
}

/// The URI validate connects to: `--connect`, or [`SYSTEM_URI`] when it is empty.
pub fn uri_of(opts: &Options) -> &str {
    if opts.connect.is_empty() {
        SYSTEM_URI
    } else {
        &opts.connect
    }
}

/// `1009000` -> `9.9.0`.
pub fn version_string(v: u32) -> String {
    format!("{}.{}.{}", v / 1_000_000, (v / 1000) % 1000, v % 1000)
}

/// `libvirt.connect`: the run's attempt to connect, with the versions on the connection;
/// its duration is the attempt's and the version queries'.
fn connect_result(libvirt: &Libvirt) -> CheckResult {
    let asked = Instant::now();
    let uri = libvirt.uri();
    let r = match libvirt.get() {
        Err(e) => CheckResult::fail("libvirt.connect", e.to_string(), START_HINT),
        Ok(conn) => {
            let lib = conn
                .lib_version()
                .map(version_string)
                .unwrap_or_else(|_| "?".into());
            let driver = conn.driver_type().unwrap_or_else(|_| "hypervisor".into());
            let hyp = conn
                .hyp_version()
                .map(version_string)
                .unwrap_or_else(|_| "?".into());
            CheckResult::pass(
                "libvirt.connect",
                format!("{uri}: libvirt {lib}, {driver} {hyp}"),
            )
        }
    };
    r.took(libvirt.took() + asked.elapsed())
}

/// The target path of the storage pool `default`, when it exists.
pub fn default_pool_path(conn: &Connect) -> Option<PathBuf> {
    let pool = conn.lookup_storage_pool_by_name(POOL_NAME).ok()?;
    pool_target_path(&pool.xml_desc(0).ok()?)
}

/// `<target><path>` of a storage pool's XML: the live description (`virsh pool-dumpxml`)
/// or the persistent definition (`/etc/libvirt/storage/<name>.xml`), read by the one pool
/// XML reader, `virthost_model::virsh::parse_pool_xml`.
pub fn pool_target_path(xml: &str) -> Option<PathBuf> {
    virthost_model::virsh::parse_pool_xml(xml)
        .ok()?
        .path
        .map(PathBuf::from)
}

fn pool_check(conn: &Connect) -> CheckResult {
    pool_result(&pool_facts(conn), Path::new(IMAGES_DIR).is_dir())
}

/// libvirt's pool states (`virStoragePoolState`) as `virsh pool-info` words them.
pub fn pool_state(state: u32) -> PoolState {
    match state {
        0 => PoolState::Inactive,
        2 => PoolState::Running,
        1 => PoolState::Other("building".into()),
        3 => PoolState::Other("degraded".into()),
        4 => PoolState::Other("inaccessible".into()),
        n => PoolState::Other(format!("in state {n}")),
    }
}

/// What libvirt's API says of the pool `default`, in the terms bootstrap reads from virsh.
pub fn pool_facts(conn: &Connect) -> PoolFacts {
    let Ok(pool) = conn.lookup_storage_pool_by_name(POOL_NAME) else {
        return PoolFacts::Missing;
    };
    // Only displayed (in the pool's Unknown): libvirt's message, or the XML reader's chain.
    let read = || -> anyhow::Result<PoolFacts> {
        let info = pool.info().map_err(LibvirtError::from)?;
        let xml = pool.xml_desc(0).map_err(LibvirtError::from)?;
        let def = virthost_model::virsh::parse_pool_xml(&xml)?;
        Ok(PoolFacts::Pool(
            PoolInfo {
                name: POOL_NAME.into(),
                state: pool_state(info.state),
                persistent: pool.is_persistent().map_err(LibvirtError::from)?,
                autostart: pool.autostart().map_err(LibvirtError::from)?,
            },
            def,
        ))
    };
    read().unwrap_or_else(|e| PoolFacts::Unknown(format!("pool '{POOL_NAME}': {e:#}")))
}

/// `libvirt.pool`: bootstrap's `pool` requirement (`virthost_model::assess::pool`), where the
/// pool is `facts` and the images directory exists or not. A WARN when not met: deployment
/// tooling (virt-install) defines a pool itself when it needs one.
pub fn pool_result(facts: &PoolFacts, dir_exists: bool) -> CheckResult {
    let a = pool::assess(&pool::Want::model(), facts, dir_exists);
    assessed::result("libvirt.pool", Severity::Warn, ("bootstrap", "pool"), &a)
}

/// `firmware.efi` from libvirt's domain capabilities for each of [`firmware::MACHINES`]
/// (with the domain type the boot proof would use), `firmware.secure_boot` from the firmware
/// descriptors on this host.
fn firmware_checks(conn: &Connect, host: &Host, uri: &str) -> Vec<CheckResult> {
    let arch = std::env::consts::ARCH;
    let virttype = domain_types(conn)
        .ok()
        .and_then(|t| t.best())
        .map(|t| t.as_str());
    let per_machine: Vec<(&str, Option<Result<String, LibvirtError>>)> = firmware::MACHINES
        .iter()
        .map(|m| {
            let caps = conn
                .domain_capabilities(None, Some(arch), Some(m), virttype, 0)
                .map_err(LibvirtError::from);
            (*m, Some(caps))
        })
        .collect();
    let family = host.platform.as_ref().map(|p| p.family);
    let descriptors: Vec<(String, String)> = firmware::DESCRIPTOR_DIRS
        .iter()
        .flat_map(|d| host.probe.root().list_dir(d).unwrap_or_default())
        .filter(|(name, _)| name.ends_with(".json"))
        .filter_map(|(name, path)| Some((name, host.read(&path)?)))
        .collect();
    let secure_boot = match crate::options::uri_host(uri) {
        // The descriptors are files on the hypervisor, not here.
        Some(h) => CheckResult::warn(
            "firmware.secure_boot",
            format!("not checked: the firmware descriptors are files on {h}"),
            format!("run validate on {h} to check them"),
        )
        .by_step("packages"),
        None => firmware::secure_boot_result(family, &descriptors),
    };
    vec![firmware::efi_result(family, &per_machine), secure_boot]
}

/// Describing domain types takes milliseconds; seconds mean libvirt re-probes QEMU.
const SLOW_CAPABILITIES: Duration = Duration::from_secs(5);

/// What libvirt offers for the host's architecture, and what really works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainTypes {
    pub arch: String,
    /// libvirt lists `kvm` for the architecture and its domain capabilities answer.
    pub kvm_offered: bool,
    /// libvirt lists `qemu` (TCG).
    pub qemu_offered: bool,
    /// `/proc/cpuinfo` shows VT-x or AMD-V: without it `/dev/kvm` is no hardware
    /// virtualization (ENVIRONMENT.md: a paravirtual KVM where BIOS guests never boot).
    pub hw_virt: bool,
}

impl DomainTypes {
    /// kvm where it really works, else qemu; `None` when nothing can run.
    pub fn best(&self) -> Option<DomainType> {
        if self.kvm_offered && self.hw_virt {
            Some(DomainType::Kvm)
        } else if self.qemu_offered {
            Some(DomainType::Qemu)
        } else {
            None
        }
    }
}

/// Why the boot proof cannot use a domain type: a detail and a hint.
pub type Unusable = (String, &'static str);

impl DomainTypes {
    /// The domain type the boot proof boots: `wanted` (`--domain-type`) when it can run
    /// here, else [`DomainTypes::best`]. A `wanted` type that cannot run is an error, never
    /// quietly swapped for the other one.
    pub fn choose(&self, wanted: Option<DomainType>) -> Result<DomainType, Unusable> {
        const NO_KVM_HINT: &str = "load kvm_intel or kvm_amd on a CPU with VT-x/AMD-V (see the \
             kvm.* checks and libvirt.domain_type), or leave out --domain-type kvm to boot a \
             qemu (TCG) domain";
        match wanted {
            None => self.best().ok_or_else(|| {
                (
                    "libvirt can run neither kvm nor qemu domains".to_string(),
                    "see libvirt.domain_type",
                )
            }),
            Some(DomainType::Kvm) if !self.kvm_offered => Err((
                format!(
                    "--domain-type kvm: libvirt offers no kvm domains for {}",
                    self.arch
                ),
                NO_KVM_HINT,
            )),
            Some(DomainType::Kvm) if !self.hw_virt => Err((
                format!(
                    "--domain-type kvm: libvirt offers kvm for {} but the CPU shows no \
                     VT-x/AMD-V flag, so a kvm domain's firmware would never run",
                    self.arch
                ),
                NO_KVM_HINT,
            )),
            Some(DomainType::Qemu) if !self.qemu_offered => Err((
                format!(
                    "--domain-type qemu: libvirt offers no qemu (TCG) domains for {}",
                    self.arch
                ),
                "install QEMU's system emulator for this architecture (qemu-system-x86 / \
                 qemu-kvm) and restart libvirtd",
            )),
            Some(t) => Ok(t),
        }
    }
}

/// The domain types offered in a capabilities document for `arch` (hvm guests); none from a
/// document that is no XML.
pub fn offered_types(caps: &str, arch: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let Ok(doc) = roxmltree::Document::parse(caps) else {
        return out;
    };
    for guest in doc.descendants().filter(|n| n.has_tag_name("guest")) {
        let hvm = guest
            .descendants()
            .any(|n| n.has_tag_name("os_type") && n.text().map(str::trim) == Some("hvm"));
        if !hvm {
            continue;
        }
        for a in guest
            .descendants()
            .filter(|n| n.has_tag_name("arch") && n.attribute("name") == Some(arch))
        {
            for ty in a
                .descendants()
                .filter(|n| n.has_tag_name("domain"))
                .filter_map(|n| n.attribute("type"))
            {
                if !out.iter().any(|o| o == ty) {
                    out.push(ty.to_string());
                }
            }
        }
    }
    out
}

/// Whether domain capabilities say `<domain>kvm</domain>`.
fn domcaps_domain_is_kvm(domcaps: &str) -> bool {
    roxmltree::Document::parse(domcaps).is_ok_and(|d| {
        d.descendants()
            .any(|n| n.has_tag_name("domain") && n.text().map(str::trim) == Some("kvm"))
    })
}

/// Asks libvirt which domain types it can run here (capabilities, then domain capabilities
/// for kvm) and reads the CPU flags.
pub fn domain_types(conn: &Connect) -> Result<DomainTypes, virt::error::Error> {
    let arch = std::env::consts::ARCH;
    let caps = conn.capabilities()?;
    let kvm_domcaps = if offered_types(&caps, arch).iter().any(|t| t == "kvm") {
        conn.domain_capabilities(None, Some(arch), None, Some("kvm"), 0)
            .ok()
    } else {
        None
    };
    let hw_virt = std::fs::read_to_string("/proc/cpuinfo")
        .map(|t| virthost_model::cpu::CpuInfo::parse(&t).virt.is_some())
        .unwrap_or(false);
    Ok(domain_types_from(
        &caps,
        kvm_domcaps.as_deref(),
        arch,
        hw_virt,
    ))
}

/// [`DomainTypes`] from the capabilities document, the domain capabilities libvirt gave for
/// `kvm` (`None`: it refused, as it does where KVM cannot run), the architecture and
/// whether the CPU shows VT-x/AMD-V.
pub fn domain_types_from(
    caps: &str,
    kvm_domcaps: Option<&str>,
    arch: &str,
    hw_virt: bool,
) -> DomainTypes {
    let offered = offered_types(caps, arch);
    let kvm_offered =
        offered.iter().any(|t| t == "kvm") && kvm_domcaps.is_some_and(domcaps_domain_is_kvm);
    DomainTypes {
        arch: arch.to_string(),
        kvm_offered,
        qemu_offered: offered.iter().any(|t| t == "qemu"),
        hw_virt,
    }
}

fn domain_type_check(conn: &Connect) -> CheckResult {
    let asked = Instant::now();
    match domain_types(conn) {
        Ok(t) => domain_type_result(&t, asked.elapsed()),
        Err(e) => CheckResult::fail(
            "libvirt.domain_type",
            format!("cannot read libvirt capabilities: {}", e.message()),
            "check that QEMU is installed and libvirtd can run it (`virsh capabilities`)",
        ),
    }
}

/// `libvirt.domain_type` from what libvirt offers and how long it `took` to say so.
pub fn domain_type_result(types: &DomainTypes, took: Duration) -> CheckResult {
    const ID: &str = "libvirt.domain_type";
    if took > SLOW_CAPABILITIES {
        // ENVIRONMENT.md: /dev/kvm the QEMU user cannot open makes libvirt re-probe QEMU
        // on every call ("KVM was enabled when probing, but it is not available now").
        return CheckResult::warn(
            ID,
            format!(
                "{}: libvirt took {:.1} s to describe its domain types: it re-probes QEMU on \
                 every call",
                types.arch,
                took.as_secs_f64()
            ),
            "make /dev/kvm usable by the user QEMU runs as (`chown root:kvm /dev/kvm && chmod 0660 \
             /dev/kvm`, as the udev rule does), then restart libvirtd",
        );
    }
    let emulate_hint = "VMs run emulated (TCG), several times slower: enable VT-x/AMD-V \
         (firmware setting, or nested virtualization on the parent hypervisor) and load kvm_intel \
         or kvm_amd; for CI-only hosts this is expected";
    match types.best() {
        Some(DomainType::Kvm) => {
            CheckResult::pass(ID, format!("{}: kvm (hardware virtualization)", types.arch))
        }
        Some(DomainType::Qemu) if types.kvm_offered => CheckResult::warn(
            ID,
            format!(
                "{}: qemu (TCG); libvirt offers kvm but the CPU shows no VT-x/AMD-V flag, so \
                 /dev/kvm is no hardware virtualization",
                types.arch
            ),
            emulate_hint,
        ),
        Some(DomainType::Qemu) => CheckResult::warn(
            ID,
            format!("{}: qemu (TCG) only; kvm unavailable", types.arch),
            emulate_hint,
        ),
        None => CheckResult::fail(
            ID,
            format!("{}: libvirt can run no hvm domain type", types.arch),
            "install QEMU for this architecture (qemu-system-x86 / qemu-kvm) and restart libvirtd",
        ),
    }
}

fn polkit_hint(user: &str) -> String {
    use virthost_model::desired::{LIBVIRT_MANAGE_ACTION, POLKIT_PKLA_PATH, POLKIT_RULE_PATH};
    format!(
        "polkit must grant {LIBVIRT_MANAGE_ACTION} to '{user}': run `bootstrap --user {user}`, which \
         writes the polkit rule {POLKIT_RULE_PATH} (polkit < 0.106: {POLKIT_PKLA_PATH}); or add \
         '{user}' to the group that the distribution's libvirt rule trusts (`libvirt`)"
    )
}

/// `libvirt.polkit`: a child process takes `user`'s uid, gids and groups, connects to
/// `uri` and lists domains. PASS only when that works. `root` is where `etc/passwd` is read.
pub fn polkit_check(uri: &str, user: &str, root: &Path) -> CheckResult {
    const ID: &str = "libvirt.polkit";
    let Some(account) = lookup_account(root, user) else {
        return CheckResult::fail(
            ID,
            format!("user '{user}' does not exist, so it cannot manage libvirt"),
            format!("create it and its polkit rule: `bootstrap --user {user}`"),
        );
    };
    let euid = nix::unistd::geteuid().as_raw();
    if euid != 0 && euid != account.uid {
        return CheckResult::warn(
            ID,
            format!("not checked: acting as '{user}' needs root"),
            "run validate as root",
        );
    }
    match list_domains_as(uri, &account, Duration::from_secs(20)) {
        Ok(n) => CheckResult::pass(
            ID,
            format!(
                "'{user}' (uid {}) manages {uri}: listed {n} domain(s)",
                account.uid
            ),
        ),
        Err(e) => {
            let msg = e.to_string();
            let auth = [
                "polkit",
                "authentication",
                "access denied",
                "not authorized",
                "Authorization",
            ]
            .iter()
            .any(|k| msg.contains(k));
            let hint = if auth {
                polkit_hint(user)
            } else {
                format!("{START_HINT}; then: {}", polkit_hint(user))
            };
            CheckResult::fail(
                ID,
                format!("'{user}' (uid {}) cannot manage {uri}: {msg}", account.uid),
                hint,
            )
        }
    }
}

/// A child process with `account`'s identity lists the domains at `uri`: the number of
/// domains or the child's error.
fn list_domains_as(
    uri: &str,
    account: &Account,
    timeout: Duration,
) -> Result<usize, crate::asuser::AsUserError> {
    let answer = crate::asuser::run_as(account, timeout, || {
        virt::error::clear_error_callback();
        let conn = Connect::open(Some(uri)).map_err(LibvirtError::from)?;
        let n = conn.list_all_domains(0).map_err(LibvirtError::from)?.len();
        // Leaked on purpose: the child ends with _exit; the daemon sees the socket close.
        std::mem::forget(conn);
        Ok::<_, LibvirtError>(n.to_string())
    })?;
    Ok(answer.trim().parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(version_string(9_000_000), "9.0.0");
        assert_eq!(version_string(10_000_002), "10.0.2");
    }

    #[test]
    fn offered_types_per_arch() {
        let caps = "<capabilities><guest><os_type>hvm</os_type><arch name='i686'>\
            <domain type='qemu'/></arch></guest><guest><os_type>hvm</os_type>\
            <arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch></guest>\
            </capabilities>";
        assert_eq!(offered_types(caps, "x86_64"), ["qemu", "kvm"]);
        assert_eq!(offered_types(caps, "aarch64"), Vec::<String>::new());
        let t = DomainTypes {
            arch: "x86_64".into(),
            kvm_offered: true,
            qemu_offered: true,
            hw_virt: false,
        };
        assert_eq!(t.best(), Some(DomainType::Qemu));
        assert_eq!(
            DomainTypes {
                hw_virt: true,
                ..t.clone()
            }
            .best(),
            Some(DomainType::Kvm)
        );
    }

    #[test]
    fn domain_type_choice_honours_domain_type_or_says_why_not() {
        let t = |kvm_offered, qemu_offered, hw_virt| DomainTypes {
            arch: "x86_64".into(),
            kvm_offered,
            qemu_offered,
            hw_virt,
        };
        let (kvm, qemu) = (Some(DomainType::Kvm), Some(DomainType::Qemu));
        // A KVM host: either type on request, kvm by default.
        let full = t(true, true, true);
        assert_eq!(full.choose(None), Ok(DomainType::Kvm));
        assert_eq!(full.choose(qemu), Ok(DomainType::Qemu));
        assert_eq!(full.choose(kvm), Ok(DomainType::Kvm));
        // TCG only: asking for kvm is an error that says so, never a silent qemu.
        let tcg = t(false, true, false);
        assert_eq!(tcg.choose(None), Ok(DomainType::Qemu));
        let (detail, hint) = tcg.choose(kvm).unwrap_err();
        assert!(
            detail.contains("offers no kvm domains for x86_64"),
            "{detail}"
        );
        assert!(hint.contains("leave out --domain-type kvm"), "{hint}");
        // The PVM case: libvirt offers kvm, the CPU has no vmx/svm.
        let pvm = t(true, true, false);
        assert_eq!(pvm.choose(None), Ok(DomainType::Qemu));
        let (detail, _) = pvm.choose(kvm).unwrap_err();
        assert!(detail.contains("no VT-x/AMD-V"), "{detail}");
        // No TCG: qemu on request fails; nothing at all fails either way.
        let (detail, hint) = t(true, false, true).choose(qemu).unwrap_err();
        assert!(detail.contains("no qemu (TCG) domains"), "{detail}");
        assert!(hint.contains("qemu-system-x86"), "{hint}");
        assert!(t(false, false, false).choose(None).is_err());
        assert_eq!("qemu".parse(), Ok(DomainType::Qemu));
        assert!("xen".parse::<DomainType>().is_err());
    }
}
