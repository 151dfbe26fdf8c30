//! The KVM requirements of a host with hardware virtualization (a host without it has
//! none: its guests are emulated, and both binaries say so):
//!
//! - [`modules`]: `kvm` and the vendor module (`kvm_intel`, `kvm_amd`) loaded (validate's
//!   `kvm.module`);
//! - [`nested`]: nested virtualization configured for every boot
//!   ([`desired::NESTED_CONF_PATH`]) and active now (`kvm.nested`). Activating it reloads
//!   the vendor module, which only happens while no guest runs: with guests running it is
//!   [`Assessment::Blocked`], the operator's to finish (bootstrap reports it and goes on).
//!
//! bootstrap's `kvm` step owns both.

use super::{Action, Assessment};
use crate::cpu::VirtExtension;
use crate::desired::NESTED_CONF_PATH;
use crate::facts::KvmModules;

/// What the `kvm` step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvmAction {
    /// Write [`NESTED_CONF_PATH`] (`options kvm_intel nested=1`).
    WriteNestedConf { module: &'static str },
    /// `modprobe <vendor module>` (which loads `kvm` and reads the nested option).
    Load { module: &'static str },
    /// `modprobe -r` then `modprobe` of the vendor module, so `nested=1` takes effect.
    Reload { module: &'static str },
}

impl Action for KvmAction {
    fn describe(&self) -> String {
        match self {
            KvmAction::WriteNestedConf { module } => {
                format!("write {NESTED_CONF_PATH}: options {module} nested=1")
            }
            KvmAction::Load { module } => format!(
                "load kvm and {module} (modprobe {module}; if that fails, see dmesg: \
                 virtualization disabled in the firmware?)"
            ),
            KvmAction::Reload { module } => {
                format!("reload {module} to activate nested=1 (no guest is running)")
            }
        }
    }
}

/// The modules of `ext` loaded, as `mods` (read from `/sys/module`) has them.
pub fn modules(ext: VirtExtension, mods: &KvmModules) -> Assessment<KvmAction> {
    let module = ext.kvm_module();
    let load = || vec![KvmAction::Load { module }];
    match (mods.kvm_loaded, mods.vendor_loaded) {
        (true, true) => Assessment::Met(format!("kvm and {module} loaded")),
        (false, _) => Assessment::NotMet {
            detail: "no module: /sys/module/kvm is absent".into(),
            actions: load(),
        },
        (true, false) => Assessment::NotMet {
            detail: format!("kvm is loaded but {module} is not"),
            actions: load(),
        },
    }
}

/// Nested virtualization for `ext`. `conf_in_place`: [`NESTED_CONF_PATH`] holds exactly
/// `desired::nested_conf`; `guests`: the pids of running guests (they block a reload);
/// `reload_error`: a reload tried in this run that failed (not tried again).
pub fn nested(
    ext: VirtExtension,
    mods: &KvmModules,
    conf_in_place: bool,
    guests: &[u32],
    reload_error: Option<&str>,
) -> Assessment<KvmAction> {
    let module = ext.kvm_module();
    let mut actions = vec![];
    let mut wrong = vec![];
    if !conf_in_place {
        wrong.push(format!("{NESTED_CONF_PATH} does not set nested=1"));
        actions.push(KvmAction::WriteNestedConf { module });
    }
    let loaded = mods.kvm_loaded && mods.vendor_loaded;
    let active = mods.nested == Some(true);
    if !loaded {
        wrong.push(format!("{module} is not loaded"));
        actions.push(KvmAction::Load { module });
    } else if !active {
        wrong.push(format!("{module} nested=0: VMs cannot run KVM guests"));
        if guests.is_empty() && reload_error.is_none() {
            actions.push(KvmAction::Reload { module });
        }
    }
    if !actions.is_empty() {
        return Assessment::NotMet {
            detail: wrong.join("; "),
            actions,
        };
    }
    if active {
        return Assessment::Met(format!("{}: {module} loaded, nested active", ext.label()));
    }
    let why = match reload_error {
        Some(e) => format!("reloading {module} failed: {e}"),
        None => format!(
            "{} guest(s) running (pids {}), so {module} is not reloaded",
            guests.len(),
            guests
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        ),
    };
    Assessment::Blocked {
        detail: format!(
            "{module} nested=0: VMs cannot run KVM guests; nested=1 is configured, active \
             after reboot or module reload ({why})"
        ),
        hint: format!(
            "stop the guests, then `modprobe -r {module} && modprobe {module}` (or run \
             bootstrap again), or reboot"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mods(kvm: bool, vendor: bool, nested: Option<bool>) -> KvmModules {
        KvmModules {
            kvm_loaded: kvm,
            vendor_module: Some("kvm_intel"),
            vendor_loaded: vendor,
            nested,
        }
    }

    const VMX: VirtExtension = VirtExtension::Vmx;

    #[test]
    fn modules_loaded_or_the_load_that_fixes_it() {
        assert!(matches!(
            modules(VMX, &mods(true, true, None)),
            Assessment::Met(_)
        ));
        for m in [mods(false, false, None), mods(true, false, None)] {
            assert_eq!(
                modules(VMX, &m).described(),
                [KvmAction::Load {
                    module: "kvm_intel"
                }
                .describe()]
            );
        }
    }

    #[test]
    fn nested_wants_the_conf_and_the_active_parameter() {
        let on = mods(true, true, Some(true));
        let off = mods(true, true, Some(false));
        assert!(matches!(
            nested(VMX, &on, true, &[], None),
            Assessment::Met(_)
        ));
        // Active by the kernel's default but not configured: the conf is written.
        assert_eq!(
            nested(VMX, &on, false, &[], None).described(),
            ["write /etc/modprobe.d/virthost-kvm-nested.conf: options kvm_intel nested=1"]
        );
        assert_eq!(
            nested(VMX, &off, true, &[], None).described(),
            ["reload kvm_intel to activate nested=1 (no guest is running)"]
        );
        // A guest runs, or the reload failed: blocked, with what the operator does.
        let Assessment::Blocked { detail, hint } = nested(VMX, &off, true, &[4242], None) else {
            panic!()
        };
        assert!(detail.contains("pids 4242"), "{detail}");
        assert!(hint.contains("reboot"), "{hint}");
        assert!(matches!(
            nested(VMX, &off, true, &[], Some("in use")),
            Assessment::Blocked { .. }
        ));
        // Not loaded: loading reads the conf.
        assert_eq!(
            nested(VMX, &mods(false, false, None), true, &[], None).described(),
            [KvmAction::Load {
                module: "kvm_intel"
            }
            .describe()]
        );
    }
}
