//! Hardware virtualization: the CPU extension, the KVM modules, `/dev/kvm` and whether it
//! really works, whether the user QEMU runs as can open it, nested virtualization, and the
//! `/dev/vhost-net` and `/dev/net/tun` devices.
//!
//! Ids: `kvm.extension`, `kvm.module`, `kvm.device`, `kvm.usable`, `kvm.access`,
//! `kvm.nested`, `dev.vhost-net`, `dev.tun`. `--allow-emulation` turns the FAILs of the
//! first four (no hardware virtualization) into WARNs: such a host runs guests under TCG
//! (`<domain type='qemu'>`).

use virthost_model::assess::{kvm, Assessment};
use virthost_model::cpu::VirtExtension;
use virthost_model::facts::{KvmModules, QemuIdentity};

use super::Host;
use crate::assessed::{self, Severity};
use crate::check::{CheckResult, Status};
use crate::options::Options;
use crate::probe::{FileKind, KvmAnswer};

/// `KVM_GET_API_VERSION` of every stable KVM since Linux 2.6.22.
pub const KVM_API_VERSION: i32 = 12;

const EMULATION_HINT: &str = "guests would run under TCG emulation (10-50x slower)";

pub fn run(opts: &Options, host: &Host) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let ext = host.cpu.virt;
    let hw = |r: CheckResult| soften(r, opts.allow_emulation);

    // The CPU extension.
    out.push(hw(match ext {
        Some(e) => CheckResult::pass("kvm.extension", format!("{} in /proc/cpuinfo", e.label())),
        None => CheckResult::fail(
            "kvm.extension",
            "no vmx or svm flag in /proc/cpuinfo: no hardware virtualization",
            format!("enable VT-x/AMD-V in the firmware setup, or on a VM enable nested virtualization on its host; {EMULATION_HINT}"),
        ),
    }));

    // The modules.
    // The shared reader of /sys/module (virthost_model::facts), as bootstrap sees the modules.
    let mods = KvmModules::read(host.probe.root(), ext);
    let kvm_loaded = mods.kvm_loaded;
    out.push(hw(match ext {
        // The shared assessment, as bootstrap's `kvm` step sees it.
        Some(e) => assessed::result(
            "kvm.module",
            Severity::Fail,
            BY_KVM,
            &kvm::modules(e, &mods),
        ),
        // No extension: nothing bootstrap can load; say what is there.
        None if !kvm_loaded => CheckResult::fail(
            "kvm.module",
            "no module: /sys/module/kvm is absent",
            format!("the CPU has no vmx/svm, so KVM cannot load; {EMULATION_HINT}"),
        ),
        None => CheckResult::fail(
            "kvm.module",
            format!(
                "kvm is loaded ({}) but the CPU has no vmx/svm for kvm_intel or kvm_amd",
                loaded_kvm_modules(host).join(", ")
            ),
            EMULATION_HINT,
        ),
    }));

    // The device node, and what the shared assessments judge of it (read once).
    let dev = host.probe.meta("/dev/kvm");
    let facts = dev
        .as_ref()
        .ok()
        .map(|m| kvm::DevKvmFacts::read(host.probe.root(), Some(m.node())));
    out.push(match (&dev, &facts) {
        (Ok(m), Some(f)) if m.kind == FileKind::Char => device_owner(f),
        (Ok(_), _) => hw(CheckResult::fail("kvm.device", "/dev/kvm is not a character device", "remove it and reload the kvm module")),
        (Err(_), _) => hw(CheckResult::fail(
            "kvm.device",
            "/dev/kvm is absent",
            if kvm_loaded { "the kvm module is loaded but udev did not create /dev/kvm; check udev (or mknod /dev/kvm c 10 232)".to_string() } else { format!("load the KVM module; {EMULATION_HINT}") },
        )),
    });

    // Does it work?
    if let Some(f) = &facts {
        out.push(hw(usable(host.probe.kvm(), ext.is_some())));
        out.push(access(host, f));
    } else {
        out.push(hw(CheckResult::fail(
            "kvm.usable",
            "no /dev/kvm to ask",
            EMULATION_HINT,
        )));
    }

    out.push(nested(host, ext, &mods));
    out.push(device(
        host,
        "dev.vhost-net",
        "/dev/vhost-net",
        Status::Warn,
        "modprobe vhost_net: without it virtio networking runs in QEMU's userspace (slower)",
    ));
    out.push(device(
        host,
        "dev.tun",
        "/dev/net/tun",
        Status::Fail,
        "modprobe tun: libvirt needs tap devices for every VM network interface",
    ));
    out
}

/// Missing hardware virtualization is a FAIL, or a WARN with `--allow-emulation`; the hint
/// says which.
fn soften(mut r: CheckResult, allow_emulation: bool) -> CheckResult {
    if r.status != Status::Fail {
        return r;
    }
    if allow_emulation {
        r.status = Status::Warn;
        r.hint = r
            .hint
            .map(|h| format!("{h} (accepted with --allow-emulation)"));
    } else {
        r.hint = r
            .hint
            .map(|h| format!("{h}; pass --allow-emulation if TCG is intended"));
    }
    r
}

fn loaded_kvm_modules(host: &Host) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(host.probe.root().path("/sys/module")) else {
        return vec!["kvm".into()];
    };
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("kvm"))
        .collect();
    v.sort();
    v
}

fn usable(answer: KvmAnswer, has_extension: bool) -> CheckResult {
    let id = "kvm.usable";
    match answer {
        KvmAnswer::OpenFailed { error } => CheckResult::fail(
            id,
            format!("device present but unusable: open /dev/kvm failed: {error}"),
            "run validate as root, or check that nothing (a container, SELinux) blocks /dev/kvm",
        ),
        KvmAnswer::Answered {
            api_version,
            create_vm_error,
        } => {
            let api = match api_version {
                Some(v) => v.to_string(),
                None => "no answer".to_string(),
            };
            if api_version != Some(KVM_API_VERSION) {
                return CheckResult::fail(
                    id,
                    format!("device present but unusable: KVM_GET_API_VERSION = {api}, expected {KVM_API_VERSION}"),
                    "the kvm module is broken or foreign; reload it, check dmesg",
                );
            }
            if let Some(e) = create_vm_error {
                return CheckResult::fail(
                    id,
                    format!("device present but unusable: API {api}, but KVM_CREATE_VM failed: {e}"),
                    "check dmesg; virtualization may be disabled in the firmware or taken by another hypervisor",
                );
            }
            if !has_extension {
                return CheckResult::fail(
                    id,
                    format!("device present but unusable: /dev/kvm answers (API {api}, KVM_CREATE_VM ok) but the CPU has no vmx/svm, so this is no hardware KVM (a paravirtual one such as PVM); ordinary BIOS guests do not boot under it"),
                    format!("run domains as type 'qemu' (TCG); {EMULATION_HINT}"),
                );
            }
            CheckResult::pass(id, format!("API {api}, KVM_CREATE_VM ok"))
        }
    }
}

/// Who QEMU runs as (the shared reader, `virthost_model::facts::QemuIdentity`).
pub(crate) fn qemu_identity(host: &Host) -> QemuIdentity {
    QemuIdentity::read(host.probe.root(), host.platform.as_ref().map(|p| p.family))
}

/// The hint of a check that needs QEMU's user where `/etc/passwd` has none.
pub(crate) const NO_QEMU_USER_HINT: &str =
    "install the hypervisor packages (they create it) or fix qemu.conf";

/// `kvm.access`: the shared assessment of bootstrap's `devkvm` step (QEMU's user can open
/// `/dev/kvm`), over the facts of a node that is there. QEMU's user missing from
/// `/etc/passwd` is a FAIL here (the shared assessment's Unknown): the host cannot run QEMU
/// as configured.
fn access(host: &Host, facts: &anyhow::Result<kvm::DevKvmFacts>) -> CheckResult {
    let id = "kvm.access";
    let qemu = qemu_identity(host);
    if qemu.account(&host.accounts).is_none() {
        return CheckResult::fail(
            id,
            format!(
                "QEMU's user {} ({}) is not in /etc/passwd",
                qemu.user, qemu.source
            ),
            NO_QEMU_USER_HINT,
        )
        .by_step(BY_DEVKVM.1);
    }
    let a = match facts {
        // The facts have a node (the caller read its metadata), so there is an assessment.
        Ok(f) => kvm::access(f, &qemu, &host.accounts)
            .unwrap_or_else(|| Assessment::Unknown("no /dev/kvm".into())),
        Err(e) => Assessment::Unknown(format!("{e:#}")),
    };
    assessed::result(id, Severity::Fail, BY_DEVKVM, &a)
}

/// `kvm.device` of a device node that is there: the shared assessment of bootstrap's
/// `devkvm` step (group kvm, read-write for it, kept so at boot by a udev rule). A missing
/// rule alone is a WARN: the node is right until the next boot.
fn device_owner(facts: &anyhow::Result<kvm::DevKvmFacts>) -> CheckResult {
    let f = match facts {
        Ok(f) => f,
        Err(e) => {
            let u = Assessment::<kvm::DevKvmAction>::Unknown(format!("{e:#}"));
            return assessed::result("kvm.device", Severity::Fail, BY_DEVKVM, &u);
        }
    };
    let assessment = kvm::device(f);
    let severity = match &assessment {
        Assessment::NotMet { actions, .. }
            if actions
                .iter()
                .all(|x| *x == kvm::DevKvmAction::WriteUdevRule) =>
        {
            Severity::Warn
        }
        _ => Severity::Fail,
    };
    assessed::result("kvm.device", severity, BY_DEVKVM, &assessment)
}

/// bootstrap's command line and the step that owns `kvm.device`.
const BY_DEVKVM: (&str, &str) = ("bootstrap", "devkvm");

/// bootstrap's command line and the step that owns `kvm.module` and `kvm.nested`.
const BY_KVM: (&str, &str) = ("bootstrap", "kvm");

fn nested(host: &Host, ext: Option<VirtExtension>, mods: &KvmModules) -> CheckResult {
    let id = "kvm.nested";
    let Some(ext) = ext else {
        return CheckResult::warn(
            id,
            "not applicable: no hardware virtualization, so no nested virtualization either",
            "VMs on this host cannot run KVM guests of their own",
        );
    };
    let a = kvm::nested_of(host.probe.root(), ext, mods, None);
    assessed::result(id, Severity::Warn, BY_KVM, &a)
}

fn device(host: &Host, id: &str, path: &str, missing: Status, hint: &str) -> CheckResult {
    match host.probe.meta(path) {
        Ok(m) if m.kind == FileKind::Char => CheckResult::pass(id, format!("{path} present")),
        Ok(_) => CheckResult::fail(id, format!("{path} is not a character device"), hint),
        Err(_) if missing == Status::Warn => {
            CheckResult::warn(id, format!("{path} is absent"), hint)
        }
        Err(_) => CheckResult::fail(id, format!("{path} is absent"), hint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Host;
    use crate::probe::testing::TestHost;
    use virthost_model::desired::{self, NESTED_CONF_PATH};

    const VMX: &str = "processor : 0\nvendor_id : GenuineIntel\nflags : fpu vmx ept\n";
    const NONE: &str = "processor : 0\nvendor_id : AuthenticAMD\nflags : fpu hypervisor\n";
    const OK: KvmAnswer = KvmAnswer::Answered {
        api_version: Some(12),
        create_vm_error: None,
    };

    fn base(cpuinfo: &str) -> TestHost {
        TestHost::new()
            .file("/etc/os-release", "ID=debian\nVERSION_ID=12\n")
            .file("/proc/cpuinfo", cpuinfo)
            .file(
                "/etc/passwd",
                "root:x:0:0::/root:/bin/bash\nlibvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin\n",
            )
            .file("/etc/group", "kvm:x:107:libvirt-qemu\nlibvirt-qemu:x:64055:\n")
    }

    fn ready(cpuinfo: &str) -> TestHost {
        base(cpuinfo)
            .dir("/sys/module/kvm")
            .file("/sys/module/kvm_intel/parameters/nested", "Y\n")
            .file(NESTED_CONF_PATH, &desired::nested_conf(VirtExtension::Vmx))
            .file(
                "/usr/lib/udev/rules.d/50-udev-default.rules",
                "KERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0660\"\n",
            )
            .meta("/dev/kvm", 0, 107, 0o660, FileKind::Char)
            .meta("/dev/vhost-net", 0, 0, 0o600, FileKind::Char)
            .meta("/dev/net/tun", 0, 0, 0o666, FileKind::Char)
            .kvm(OK)
    }

    fn results(t: &TestHost, allow_emulation: bool) -> Vec<CheckResult> {
        let probe = t.probe();
        let host = Host::load(&probe);
        let opts = Options {
            allow_emulation,
            ..Options::default()
        };
        run(&opts, &host)
    }

    fn get<'a>(r: &'a [CheckResult], id: &str) -> &'a CheckResult {
        r.iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no {id}"))
    }

    #[test]
    fn a_ready_intel_host_passes() {
        let r = results(&ready(VMX), false);
        assert!(r.iter().all(|c| c.status == Status::Pass), "{r:#?}");
    }

    #[test]
    fn tells_no_flags_no_module_and_unusable_device_apart() {
        // No flags, no module, no device.
        let r = results(&base(NONE), false);
        assert!(get(&r, "kvm.extension").detail.contains("no vmx or svm"));
        assert!(get(&r, "kvm.module").detail.contains("no module"));
        assert!(get(&r, "kvm.device").detail.contains("absent"));
        assert_eq!(get(&r, "kvm.usable").status, Status::Fail);
        // Flags, but the module is not loaded.
        let r = results(&base(VMX), false);
        assert_eq!(get(&r, "kvm.extension").status, Status::Pass);
        let m = get(&r, "kvm.module");
        assert_eq!(m.status, Status::Fail);
        assert!(m.hint.as_ref().unwrap().contains("modprobe kvm_intel"));
        // The device answers but there are no flags (PVM, this CI machine).
        let r = results(&ready(NONE).dir("/sys/module/kvm_pvm"), false);
        let u = get(&r, "kvm.usable");
        assert_eq!(u.status, Status::Fail);
        assert!(
            u.detail.contains("device present but unusable") && u.detail.contains("no vmx/svm")
        );
        assert!(get(&r, "kvm.module").detail.contains("kvm_pvm"));
    }

    #[test]
    fn each_broken_kvm_answer_fails_with_its_reason() {
        let cases = [
            (
                KvmAnswer::OpenFailed {
                    error: "Permission denied (os error 13)".into(),
                },
                "Permission denied",
            ),
            (
                KvmAnswer::Answered {
                    api_version: Some(11),
                    create_vm_error: None,
                },
                "= 11, expected 12",
            ),
            (
                KvmAnswer::Answered {
                    api_version: None,
                    create_vm_error: None,
                },
                "no answer",
            ),
            (
                KvmAnswer::Answered {
                    api_version: Some(12),
                    create_vm_error: Some("Device or resource busy".into()),
                },
                "KVM_CREATE_VM failed: Device or resource busy",
            ),
        ];
        for (answer, needle) in cases {
            let r = results(&ready(VMX).kvm(answer), false);
            let u = get(&r, "kvm.usable");
            assert_eq!(u.status, Status::Fail, "{needle}");
            assert!(u.detail.contains(needle), "{}", u.detail);
        }
    }

    #[test]
    fn allow_emulation_softens_only_hardware_checks() {
        let r = results(
            &base(NONE).meta("/dev/net/tun", 0, 0, 0o666, FileKind::Char),
            true,
        );
        for id in ["kvm.extension", "kvm.module", "kvm.device", "kvm.usable"] {
            assert_eq!(get(&r, id).status, Status::Warn, "{id}");
        }
        // /dev/net/tun is not about hardware virtualization.
        let r = results(&base(NONE), true);
        assert_eq!(get(&r, "dev.tun").status, Status::Fail);
    }

    #[test]
    fn access_follows_qemu_conf_user_groups_and_mode() {
        // Debian default user, in group kvm: PASS.
        let r = results(&ready(VMX), false);
        assert!(get(&r, "kvm.access")
            .detail
            .contains("libvirt-qemu (Debian's default)"));
        // root:root 0600: the re-probe trap.
        let r = results(
            &ready(VMX).meta("/dev/kvm", 0, 0, 0o600, FileKind::Char),
            false,
        );
        let a = get(&r, "kvm.access");
        assert_eq!(a.status, Status::Fail);
        assert!(a.detail.contains("re-probes"), "{}", a.detail);
        assert!(a.hint.as_ref().unwrap().contains("`devkvm` step"));
        // qemu.conf says root: fine whatever the mode.
        let t = ready(VMX)
            .meta("/dev/kvm", 0, 0, 0o600, FileKind::Char)
            .file(
                "/etc/libvirt/qemu.conf",
                "#user = \"nobody\"\nuser = \"root\"\n",
            );
        let r = results(&t, false);
        assert_eq!(get(&r, "kvm.access").status, Status::Pass);
        // qemu.conf names a user that does not exist.
        let t = ready(VMX).file("/etc/libvirt/qemu.conf", "user = \"ghost\"\n");
        assert!(get(&results(&t, false), "kvm.access")
            .detail
            .contains("ghost"));
        // qemu.conf `group` gives QEMU that group too.
        let groups = "kvm:x:107:\nlibvirt-qemu:x:64055:\nvirt:x:500:\n";
        let t = ready(VMX)
            .meta("/dev/kvm", 0, 500, 0o660, FileKind::Char)
            .file("/etc/group", groups);
        assert_eq!(get(&results(&t, false), "kvm.access").status, Status::Fail);
        let t = t.file(
            "/etc/libvirt/qemu.conf",
            "#group = \"root\"\ngroup = \"virt\"\n",
        );
        assert_eq!(get(&results(&t, false), "kvm.access").status, Status::Pass);
    }

    #[test]
    fn nested_and_devices() {
        let t = ready(VMX).file("/sys/module/kvm_intel/parameters/nested", "N\n");
        let r = results(&t, false);
        assert_eq!(get(&r, "kvm.nested").status, Status::Warn);
        let t = ready(VMX).file("/sys/module/kvm_intel/parameters/nested", "1\n");
        assert_eq!(get(&results(&t, false), "kvm.nested").status, Status::Pass);
        // Active by the kernel's default, but not configured as bootstrap configures it.
        let t = ready(VMX).file(NESTED_CONF_PATH, "options kvm_intel nested=0\n");
        let n = get(&results(&t, false), "kvm.nested").clone();
        assert_eq!(
            (n.status, n.bootstrap_step.as_deref()),
            (Status::Warn, Some("kvm"))
        );
        assert!(
            n.hint
                .as_deref()
                .unwrap()
                .contains(&format!("write {NESTED_CONF_PATH}")),
            "{n:?}"
        );
        let r = results(&base(VMX), false);
        assert_eq!(get(&r, "dev.vhost-net").status, Status::Warn);
        assert_eq!(get(&r, "dev.tun").status, Status::Fail);
    }
}
