//! The KVM requirements of a host with hardware virtualization (a host without it has
//! none: its guests are emulated, and both binaries say so):
//!
//! - [`modules`]: `kvm` and the vendor module (`kvm_intel`, `kvm_amd`) loaded (validate's
//!   `kvm.module`);
//! - [`nested`]: nested virtualization configured for every boot
//!   ([`desired::NESTED_CONF_PATH`]) and active now (`kvm.nested`). Activating it reloads
//!   the vendor module, which only happens while no guest runs: with guests running it is
//!   [`Assessment::Blocked`], the operator's to finish (bootstrap's step is skipped with a
//!   warning, validate WARNs).
//!
//! bootstrap's `kvm` step owns both. [`nested_of`] and [`DevKvmFacts::read`] read what the
//! assessments judge from a host, once for both binaries.

use super::{Action, Assessment};
use crate::accounts::Accounts;
use crate::cpu::VirtExtension;
use crate::desired::{
    self, KVM_FILES_MODE, KVM_GROUP, KVM_MODE, KVM_UDEV_RULE_PATH, NESTED_CONF_PATH,
};
use crate::facts::{self, DevNode, KvmModules, QemuIdentity};
use crate::hostroot::HostRoot;

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

/// What the `devkvm` step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevKvmAction {
    /// `groupadd --system kvm`.
    CreateGroup,
    /// `chown root:kvm /dev/kvm; chmod 0660 /dev/kvm`; `now`: what it is (`None`: the kvm module
    /// has not created it yet).
    SetOwner { now: Option<String> },
    /// Write [`KVM_UDEV_RULE_PATH`]: no distribution rule keeps `/dev/kvm` in group kvm.
    WriteUdevRule,
    /// `usermod -aG kvm USER`: QEMU runs as `user` (qemu.conf's, or the distribution's),
    /// which is not in group kvm.
    JoinGroup { user: String },
}

impl Action for DevKvmAction {
    fn describe(&self) -> String {
        match self {
            DevKvmAction::CreateGroup => {
                format!("create the system group {KVM_GROUP} (groupadd --system {KVM_GROUP})")
            }
            DevKvmAction::SetOwner { now: None } => format!(
                "chown root:{KVM_GROUP} {DEV_KVM} and chmod {KVM_MODE:04o} once the kvm module creates it"
            ),
            DevKvmAction::SetOwner { now: Some(now) } => format!(
                "chown root:{KVM_GROUP} {DEV_KVM} and chmod {KVM_MODE:04o} (now {now})"
            ),
            DevKvmAction::WriteUdevRule => format!(
                "write {KVM_UDEV_RULE_PATH} (no distribution udev rule gives {DEV_KVM} to the \
                 {KVM_GROUP} group)"
            ),
            DevKvmAction::JoinGroup { user } => format!(
                "add {user}, the user QEMU runs as, to group {KVM_GROUP} (usermod -aG {KVM_GROUP} {user})"
            ),
        }
    }
}

/// The device node whose group the `devkvm` step sets.
pub const DEV_KVM: &str = "/dev/kvm";

/// What the host has for `/dev/kvm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevKvmFacts {
    /// The node (`None`: absent).
    pub node: Option<DevNode>,
    /// How [`DevKvmFacts::node`] reads: `root:kvm 0660`.
    pub node_text: Option<String>,
    /// The gid of group kvm, if the group exists.
    pub kvm_gid: Option<u32>,
    /// A distribution udev rule that gives `/dev/kvm` to group kvm (its path).
    pub distro_rule: Option<String>,
    /// [`KVM_UDEV_RULE_PATH`] is in place.
    pub own_rule_in_place: bool,
}

/// [`nested`] of the host under `root`: whether [`NESTED_CONF_PATH`] is bootstrap's, in
/// place, and which guests run are read here. A conf file that cannot be judged (a symlink,
/// unreadable) is [`Assessment::Unknown`].
pub fn nested_of(
    root: &HostRoot,
    ext: VirtExtension,
    mods: &KvmModules,
    reload_error: Option<&str>,
) -> Assessment<KvmAction> {
    let conf = desired::nested_conf(ext);
    match facts::owned_file_in_place(root, NESTED_CONF_PATH, &conf, KVM_FILES_MODE) {
        Ok(in_place) => {
            let guests: Vec<u32> = facts::running_guests(root).iter().map(|g| g.pid).collect();
            nested(ext, mods, in_place, &guests, reload_error)
        }
        Err(e) => Assessment::Unknown(format!("{e:#}")),
    }
}

impl DevKvmFacts {
    /// What [`device`] judges of the host under `root`, `node` being `/dev/kvm` as the
    /// caller sees it (stat(2), or validate's probe): the group, the udev rules and the
    /// node's owner and group by name.
    pub fn read(root: &HostRoot, node: Option<DevNode>) -> anyhow::Result<DevKvmFacts> {
        let distro_rule = facts::distro_kvm_udev_rule(root);
        let own_rule_in_place = distro_rule.is_none()
            && facts::owned_file_in_place(
                root,
                KVM_UDEV_RULE_PATH,
                &desired::kvm_udev_rule(),
                KVM_FILES_MODE,
            )?;
        // Names for the message only: an unreadable user database shows numbers.
        let accounts = Accounts::read(root).unwrap_or_default();
        Ok(DevKvmFacts {
            node_text: node.map(|n| {
                let (user, group) = (accounts.uid_name(n.uid), accounts.gid_name(n.gid));
                format!("{user}:{group} {:04o}", n.mode)
            }),
            node,
            kvm_gid: facts::group_gid(root, KVM_GROUP)?,
            distro_rule,
            own_rule_in_place,
        })
    }
}

/// `/dev/kvm` (`f.node`) open for read and write by the user QEMU runs as: it is root, owns
/// the node, is in its group, or the mode lets the world. Otherwise libvirt finds KVM "not
/// available now" and probes QEMU again on every call (minutes per domain start).
/// bootstrap's `devkvm` step owns it: the node root:kvm 0660 ([`device`]) and QEMU's user in
/// group kvm, which the distribution's packages do for their own user but not for a user
/// set in qemu.conf. QEMU's user not in `/etc/passwd` is [`Assessment::Unknown`] (the
/// packages create it). `None` when there is no node to open: that is [`device`]'s to say.
pub fn access(
    f: &DevKvmFacts,
    qemu: &QemuIdentity,
    accounts: &Accounts,
) -> Option<Assessment<DevKvmAction>> {
    let node = f.node?;
    Some(access_to(node, f, qemu, accounts))
}

fn access_to(
    node: DevNode,
    f: &DevKvmFacts,
    qemu: &QemuIdentity,
    accounts: &Accounts,
) -> Assessment<DevKvmAction> {
    let (name, source) = (&qemu.user, qemu.source);
    let Some((user, gids)) = qemu.account(accounts) else {
        return Assessment::Unknown(format!(
            "QEMU's user {name} ({source}) is not in /etc/passwd"
        ));
    };
    let owner = f
        .node_text
        .clone()
        .unwrap_or_else(|| format!("{}:{} {:04o}", node.uid, node.gid, node.mode));
    let via = if user.uid == 0 {
        Some("it is root".to_string())
    } else if node.uid == user.uid && node.mode & 0o600 == 0o600 {
        Some("it owns it".to_string())
    } else if gids.contains(&node.gid) && node.mode & 0o060 == 0o060 {
        Some(format!("group {}", accounts.gid_name(node.gid)))
    } else if node.mode & 0o006 == 0o006 {
        Some("mode is world read-write".to_string())
    } else {
        None
    };
    if let Some(v) = via {
        return Assessment::Met(format!(
            "QEMU runs as {name} ({source}); {DEV_KVM} {owner}: read-write via {v}"
        ));
    }
    let mut actions = vec![];
    if !f.kvm_gid.is_some_and(|g| node.usable_by_group(g)) {
        actions.push(DevKvmAction::SetOwner {
            now: Some(owner.clone()),
        });
    }
    if !f.kvm_gid.is_some_and(|g| gids.contains(&g)) {
        actions.push(DevKvmAction::JoinGroup {
            user: user.name.clone(),
        });
    }
    Assessment::NotMet {
        detail: format!(
            "QEMU runs as {name} ({source}) and cannot open {DEV_KVM} {owner}: libvirt then \
             finds KVM 'not available now' and re-probes QEMU on every call (minutes per \
             domain start)"
        ),
        actions,
    }
}

/// `/dev/kvm` `root:kvm`, read-write for the group, now and after a reboot (a udev rule).
pub fn device(f: &DevKvmFacts) -> Assessment<DevKvmAction> {
    let mut actions = vec![];
    let mut wrong = vec![];
    if f.kvm_gid.is_none() {
        wrong.push(format!("no group {KVM_GROUP}"));
        actions.push(DevKvmAction::CreateGroup);
    }
    match &f.node {
        None => {
            wrong.push(format!("no {DEV_KVM}"));
            actions.push(DevKvmAction::SetOwner { now: None });
        }
        Some(n) if !f.kvm_gid.is_some_and(|g| n.usable_by_group(g)) => {
            let now = f
                .node_text
                .clone()
                .unwrap_or_else(|| format!("{}:{} {:04o}", n.uid, n.gid, n.mode));
            wrong.push(format!(
                "{DEV_KVM} is {now}, not root:{KVM_GROUP} with group read-write"
            ));
            actions.push(DevKvmAction::SetOwner { now: Some(now) });
        }
        Some(_) => {}
    }
    if f.distro_rule.is_none() && !f.own_rule_in_place {
        wrong.push(format!(
            "no udev rule keeps {DEV_KVM} in group {KVM_GROUP} after a reboot"
        ));
        actions.push(DevKvmAction::WriteUdevRule);
    }
    if !actions.is_empty() {
        return Assessment::NotMet {
            detail: wrong.join("; "),
            actions,
        };
    }
    Assessment::Met(format!(
        "{DEV_KVM} {}, kept at boot by {}",
        f.node_text.as_deref().unwrap_or("?"),
        f.distro_rule.as_deref().unwrap_or(KVM_UDEV_RULE_PATH)
    ))
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

    #[test]
    fn dev_kvm_wants_group_kvm_read_write_and_a_rule_for_the_next_boot() {
        let ready = DevKvmFacts {
            node: Some(DevNode {
                uid: 0,
                gid: 107,
                mode: 0o660,
            }),
            node_text: Some("root:kvm 0660".into()),
            kvm_gid: Some(107),
            distro_rule: Some("/usr/lib/udev/rules.d/50-udev-default.rules".into()),
            own_rule_in_place: false,
        };
        assert_eq!(
            device(&ready),
            Assessment::Met(
                "/dev/kvm root:kvm 0660, kept at boot by /usr/lib/udev/rules.d/50-udev-default.rules"
                    .into()
            )
        );
        let fresh = DevKvmFacts {
            node: Some(DevNode {
                uid: 0,
                gid: 0,
                mode: 0o600,
            }),
            node_text: Some("root:root 0600".into()),
            kvm_gid: None,
            distro_rule: None,
            own_rule_in_place: false,
        };
        assert_eq!(
            device(&fresh).described(),
            [
                "create the system group kvm (groupadd --system kvm)",
                "chown root:kvm /dev/kvm and chmod 0660 (now root:root 0600)",
                "write /etc/udev/rules.d/65-virthost-kvm.rules (no distribution udev rule gives \
                 /dev/kvm to the kvm group)"
            ]
        );
        let own_rule = DevKvmFacts {
            distro_rule: None,
            own_rule_in_place: true,
            ..ready
        };
        assert!(
            matches!(device(&own_rule), Assessment::Met(ref d) if d.ends_with("65-virthost-kvm.rules"))
        );
    }
}
