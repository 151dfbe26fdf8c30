//! The power proof: what Ironic's BMC emulators (virtualbmc for IPMI, sushy-tools for
//! Redfish) do to a node, done the same way. As the VM user (`--user`: a child process
//! with its uid and groups, for a local `--connect`; for a URI with a host, as validate's
//! own user, the URI naming whom to log in as, `qemu+ssh://stack@host/system`), each step
//! on a connection of its own as virtualbmc opens one per IPMI command:
//!
//! 1. define a persistent test domain (`defineXML`; BIOS: `pc`; UEFI: `q35` with
//!    `<os firmware='efi'>`, which gives it an NVRAM file),
//! 2. set its boot device to network (read its XML, replace `<os><boot>`, define it again:
//!    virtualbmc's `set_boot_device`),
//! 3. start it (`create`), 4. see it running (`isActive`), 5. reset it (`reset`),
//! 6. stop it (`destroy`), 7. undefine it with its NVRAM (`undefineFlags(NVRAM)`).
//!
//! Checks `power.bios` and `power.uefi` (one per `--boot-mode`), each with the seconds of
//! every step. The domain is diskless and NIC-less: it boots nothing, which does not matter
//! to power control. Whatever the child leaves (it failed or was killed midway), validate
//! (root) destroys and undefines by name; after a SIGKILL of validate, `boot::sweep` does.

use std::time::{Duration, Instant};

use virt::connect::Connect;

use crate::accounts::{lookup_account, Account};
use crate::check::CheckResult;
use crate::connection::LibvirtError;
use crate::options::{uri_host, BootMode, DomainType, Options};

/// `power.bios` / `power.uefi`.
pub fn check_id(mode: BootMode) -> String {
    format!("power.{}", mode.as_str())
}

/// The steps, in order, as reported.
pub const STEPS: &[&str] = &[
    "define",
    "boot device",
    "start",
    "running",
    "reset",
    "stop",
    "undefine",
];

/// The persistent test domain of `mode`, booting from `boot` (`hd` or `network`).
pub fn domain_xml(name: &str, dtype: DomainType, mode: BootMode, boot: &str) -> String {
    let os = match mode {
        BootMode::Bios => format!(
            "<os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n    <boot dev='{boot}'/>\n  </os>"
        ),
        BootMode::Uefi => format!(
            "<os firmware='efi'>\n    <type arch='x86_64' machine='q35'>hvm</type>\n    \
             <firmware>\n      <feature enabled='no' name='secure-boot'/>\n    </firmware>\n    \
             <boot dev='{boot}'/>\n  </os>"
        ),
    };
    format!(
        "<domain type='{ty}'>\n  <name>{name}</name>\n  <memory unit='MiB'>64</memory>\n  \
         <vcpu>1</vcpu>\n  {os}\n  <features><acpi/></features>\n  <devices>\n    \
         <memballoon model='none'/>\n  </devices>\n</domain>\n",
        ty = dtype.as_str(),
    )
}

/// A domain XML whose boot device cannot be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootDeviceError {
    #[error("the domain's XML: {0}")]
    Xml(#[from] roxmltree::Error),
    #[error("the domain's XML has no <os>")]
    NoOs,
}

/// virtualbmc's `set_boot_device`: the domain's XML with every `<boot>` under `<os>`
/// replaced by `<boot dev='DEV'/>` (and none left on devices).
pub fn with_boot_device(xml: &str, dev: &str) -> Result<String, BootDeviceError> {
    let doc = roxmltree::Document::parse(xml)?;
    let mut out = String::with_capacity(xml.len());
    let mut last = 0;
    let mut inserted = false;
    for n in doc.descendants().filter(|n| n.has_tag_name("boot")) {
        let r = n.range();
        out.push_str(&xml[last..r.start]);
        let under_os = n.parent().is_some_and(|p| p.has_tag_name("os"));
        if under_os && !inserted {
            out.push_str(&format!("<boot dev='{dev}'/>"));
            inserted = true;
        }
        last = r.end;
    }
    out.push_str(&xml[last..]);
    if !inserted {
        let Some(i) = out.find("</os>") else {
            return Err(BootDeviceError::NoOs);
        };
        out.insert_str(i, &format!("<boot dev='{dev}'/>"));
    }
    Ok(out)
}

/// What went wrong in one step of the sequence.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("connect: {0}")]
    Connect(LibvirtError),
    #[error("lookup: {0}")]
    Lookup(LibvirtError),
    #[error(transparent)]
    Libvirt(#[from] LibvirtError),
    #[error(transparent)]
    BootDevice(#[from] BootDeviceError),
    #[error("the boot device did not change to network")]
    NotChanged,
    #[error("started, but not running")]
    NotRunning,
}

impl From<virt::error::Error> for StepError {
    fn from(e: virt::error::Error) -> Self {
        StepError::Libvirt(e.into())
    }
}

/// The step of the sequence that failed ([`STEPS`]' words), and why.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {error}")]
pub struct StepFailed {
    pub step: &'static str,
    pub error: StepError,
}

/// Why a mode's power check FAILs: its sequence (in this process or in the user's child),
/// the child, or the child's answer.
#[derive(Debug, thiserror::Error)]
enum PowerError {
    #[error(transparent)]
    Step(#[from] StepFailed),
    #[error(transparent)]
    Child(#[from] crate::asuser::AsUserError),
    #[error(transparent)]
    Answer(#[from] std::num::ParseFloatError),
}

/// Runs the sequence on `uri` (in this process): the seconds of each step, or the step that
/// failed and libvirt's message.
pub fn sequence(
    uri: &str,
    name: &str,
    dtype: DomainType,
    mode: BootMode,
) -> Result<Vec<f64>, StepFailed> {
    let mut times = Vec::new();
    let open = || Connect::open(Some(uri)).map_err(|e| StepError::Connect(e.into()));
    let lookup = |c: &Connect| {
        c.lookup_domain_by_name(name)
            .map_err(|e| StepError::Lookup(e.into()))
    };
    let mut step = |step: &'static str,
                    f: &mut dyn FnMut() -> Result<(), StepError>|
     -> Result<(), StepFailed> {
        let t = Instant::now();
        f().map_err(|error| StepFailed { step, error })?;
        times.push(t.elapsed().as_secs_f64());
        Ok(())
    };
    step("define", &mut || {
        let c = open()?;
        c.define_domain_xml(&domain_xml(name, dtype, mode, "hd"))?;
        Ok(())
    })?;
    step("boot device", &mut || {
        let c = open()?;
        let d = lookup(&c)?;
        let xml = d.xml_desc(0)?;
        let new = with_boot_device(&xml, "network")?;
        c.define_domain_xml(&new)?;
        let back = lookup(&c)?.xml_desc(0)?;
        back.contains("<boot dev='network'/>")
            .then_some(())
            .ok_or(StepError::NotChanged)
    })?;
    step("start", &mut || {
        let c = open()?;
        lookup(&c)?.create()?;
        Ok(())
    })?;
    step("running", &mut || {
        let c = open()?;
        match lookup(&c)?.is_active()? {
            true => Ok(()),
            false => Err(StepError::NotRunning),
        }
    })?;
    step("reset", &mut || {
        let c = open()?;
        lookup(&c)?.reset()?;
        Ok(())
    })?;
    step("stop", &mut || {
        let c = open()?;
        lookup(&c)?.destroy()?;
        Ok(())
    })?;
    step("undefine", &mut || {
        let c = open()?;
        lookup(&c)?.undefine_flags(virt::sys::VIR_DOMAIN_UNDEFINE_NVRAM)?;
        Ok(())
    })?;
    Ok(times)
}

/// Destroys and undefines `name` (with its NVRAM) on validate's own connection, if it is
/// there.
fn remove(conn: &Connect, name: &str) {
    if let Ok(d) = conn.lookup_domain_by_name(name) {
        let _ = d.destroy();
        let _ = d.undefine_flags(virt::sys::VIR_DOMAIN_UNDEFINE_NVRAM);
    }
}

/// The power checks, one per `--boot-mode`, for `dtype` domains, named after `run_name`
/// (`virthost-validate-<pid>-<random>`); `conn` is validate's own connection to
/// `--connect`, which removes what the sequences leave.
pub fn run(opts: &Options, conn: &Connect, dtype: DomainType, run_name: &str) -> Vec<CheckResult> {
    prepare(opts, conn, dtype, run_name).run()
}

/// The power proof made ready by [`prepare`]: as another user, its children are forked
/// (waiting to be let go); [`Prepared::run`] runs the sequences, one mode after the other.
pub struct Prepared {
    /// The checks' results when the proof cannot run at all.
    now: Option<Vec<CheckResult>>,
    /// validate's own connection (a clone of the run's): removes what the sequences leave.
    /// The sequences never use it: each step opens its own, as the BMC emulators do.
    conn: Connect,
    uri: String,
    user: String,
    who: String,
    dtype: DomainType,
    /// Per mode: the domain's name, and the child that runs the sequence as the user
    /// (`None`: in this process).
    modes: Vec<(BootMode, String, Option<Child>)>,
}

/// The child that runs one mode's sequence as the user, or why it could not be forked.
type Child = Result<crate::asuser::Waiting, crate::asuser::AsUserError>;

/// Everything [`run`] does before the first step. Forks (as another user) here, so call it
/// while the process has one thread: the boot proof's lanes are threads. `conn` (validate's
/// own, idle at the fork) stays in this process; the children open their own as the user.
pub fn prepare(opts: &Options, conn: &Connect, dtype: DomainType, run_name: &str) -> Prepared {
    let local = uri_host(&opts.connect).is_none();
    let uri = opts.connect.clone();
    let who = if local {
        format!("as '{}' on {uri}", opts.user)
    } else {
        format!("on {uri}")
    };
    let mut prepared = Prepared {
        now: None,
        conn: conn.clone(),
        uri: uri.clone(),
        user: opts.user.to_string(),
        who,
        dtype,
        modes: Vec::new(),
    };
    let account: Option<Account> = if local {
        match lookup_account(std::path::Path::new("/"), opts.user.as_str()) {
            Some(a) => Some(a),
            None => {
                prepared.now = Some(
                    opts.boot_modes
                        .iter()
                        .map(|m| {
                            CheckResult::fail(
                                check_id(*m),
                                format!(
                                    "user '{}' does not exist: no BMC emulator can log in as it",
                                    opts.user
                                ),
                                format!("run bootstrap --user {}", opts.user),
                            )
                        })
                        .collect(),
                );
                return prepared;
            }
        }
    } else {
        None
    };
    let as_self = match &account {
        Some(a) => nix::unistd::geteuid().as_raw() == a.uid,
        None => true,
    };
    if !as_self && !nix::unistd::geteuid().is_root() {
        prepared.now = Some(
            opts.boot_modes
                .iter()
                .map(|m| {
                    CheckResult::warn(
                        check_id(*m),
                        format!("not run: acting as '{}' needs root", opts.user),
                        "run validate as root (or as that user)",
                    )
                })
                .collect(),
        );
        return prepared;
    }
    for &mode in &opts.boot_modes {
        let name = format!("{run_name}-power-{}", mode.as_str());
        let child = match (&account, as_self) {
            (Some(a), false) => {
                let (u, n) = (uri.clone(), name.clone());
                Some(crate::asuser::spawn_as(a, move || {
                    virt::error::clear_error_callback();
                    sequence(&u, &n, dtype, mode).map(|t| {
                        t.iter()
                            .map(|s| format!("{s}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                }))
            }
            _ => None,
        };
        prepared.modes.push((mode, name, child));
    }
    prepared
}

impl Prepared {
    /// Runs the sequences, one mode after the other, and removes what they leave.
    pub fn run(mut self) -> Vec<CheckResult> {
        if let Some(now) = self.now.take() {
            return now;
        }
        // A SIGINT/SIGTERM during the boot proof beside: define nothing (the waiting
        // children go with `self`).
        if let Some(sig) = crate::boot::interrupted() {
            return self
                .modes
                .iter()
                .map(|(mode, _, _)| {
                    CheckResult::fail(
                        check_id(*mode),
                        format!("interrupted by {sig}"),
                        "run validate again",
                    )
                })
                .collect();
        }
        let (uri, who, dtype) = (self.uri.clone(), self.who.clone(), self.dtype);
        let conn = self.conn.clone();
        let user = self.user.clone();
        self.modes
            .drain(..)
            .map(|(mode, name, child)| {
                let id = check_id(mode);
                let began = Instant::now();
                let result: Result<Vec<f64>, PowerError> = match child {
                    Some(waiting) => waiting
                        .and_then(|w| w.go(Duration::from_secs(120)))
                        .map_err(PowerError::from)
                        .and_then(|s| {
                            s.split_whitespace()
                                .map(|x| x.parse::<f64>().map_err(PowerError::from))
                                .collect()
                        }),
                    None => sequence(&uri, &name, dtype, mode).map_err(PowerError::from),
                };
                // Whatever happened, nothing stays (validate is root here, or the user itself).
                remove(&conn, &name);
                let r = match result {
                    Ok(times) => CheckResult::pass(
                        &id,
                        format!(
                            "{} {} domain {who}: {}",
                            dtype.as_str(),
                            mode.as_str().to_uppercase(),
                            STEPS
                                .iter()
                                .zip(&times)
                                .map(|(s, t)| format!("{s} {t:.2} s"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                    Err(e) => {
                        let e = e.to_string();
                        let hint = if e.contains("authentication") || e.contains("polkit") || e.contains("access denied") {
                            format!(
                                "the BMC emulators cannot manage domains as '{user}': see libvirt.polkit, run bootstrap",
                            )
                        } else if mode == BootMode::Uefi && (e.contains("firmware") || e.contains("nvram")) {
                            "see firmware.efi: run bootstrap (its `packages` step installs OVMF)".into()
                        } else {
                            "see libvirtd's log (and /var/log/libvirt/qemu/) for the failing step".into()
                        };
                        CheckResult::fail(&id, format!("{} {} domain {who}: {e}", dtype.as_str(), mode.as_str().to_uppercase()), hint)
                    }
                };
                r.took(began.elapsed())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_device_is_replaced_as_virtualbmc_does() {
        let x = domain_xml("n", DomainType::Qemu, BootMode::Bios, "hd");
        let y = with_boot_device(&x, "network").unwrap();
        assert!(
            y.contains("<boot dev='network'/>") && !y.contains("dev='hd'"),
            "{y}"
        );
        assert!(roxmltree::Document::parse(&y).is_ok());
        let two = "<domain><os><type>hvm</type><boot dev='hd'/><boot dev='cdrom'/></os></domain>";
        let z = with_boot_device(two, "network").unwrap();
        assert_eq!(z.matches("<boot").count(), 1, "{z}");
        let none =
            with_boot_device("<domain><os><type>hvm</type></os></domain>", "network").unwrap();
        assert!(none.contains("<boot dev='network'/></os>"), "{none}");
        assert!(with_boot_device("<domain/>", "network").is_err());
        let u = domain_xml("n", DomainType::Qemu, BootMode::Uefi, "hd");
        assert!(u.contains("firmware='efi'") && u.contains("machine='q35'"));
        assert_eq!(check_id(BootMode::Uefi), "power.uefi");
    }

    #[test]
    fn a_failed_step_is_worded_as_before_the_types() {
        let msg = |m: &str| LibvirtError(m.into());
        let e = StepFailed {
            step: "define",
            error: StepError::Connect(msg("Failed to connect socket")),
        };
        assert_eq!(e.to_string(), "define: connect: Failed to connect socket");
        let e = StepFailed {
            step: "boot device",
            error: StepError::BootDevice(BootDeviceError::NoOs),
        };
        assert_eq!(e.to_string(), "boot device: the domain's XML has no <os>");
        let e = StepFailed {
            step: "running",
            error: StepError::NotRunning,
        };
        assert_eq!(e.to_string(), "running: started, but not running");
        let e = PowerError::from(crate::asuser::AsUserError::Timeout(Duration::from_secs(
            120,
        )));
        assert_eq!(
            e.to_string(),
            "no answer within 120 s (libvirtd or polkitd hanging?)"
        );
    }
}
