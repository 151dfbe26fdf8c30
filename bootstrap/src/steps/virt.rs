//! `kvm`: hardware virtualization, the KVM modules and nested virtualization; `devkvm`:
//! `/dev/kvm` usable by the kvm group, now and after a reboot.

use std::cell::RefCell;

use anyhow::Context;

use super::files::{apply_file, root_owned};
use crate::accounts::Accounts;
use crate::assess::kvm::{self, DevKvmAction, DevKvmFacts, KvmAction, DEV_KVM};
use crate::assess::Assessment;
use crate::cmd::{self, Runner};
use crate::cpu::VirtExtension;
use crate::desired::{self, KVM_GROUP, KVM_MODE, KVM_UDEV_RULE_PATH, NESTED_CONF_PATH};
use crate::facts::{DevNode, KvmModules, QemuIdentity};
use crate::hostroot::HostRoot;
use crate::os::Family;
use crate::step::{Check, Progress, Step, ToCheck};

/// Carries out [`crate::assess::kvm`]'s actions: loads kvm and the vendor module,
/// configures `nested=1`, and activates it by reloading the vendor module only while no
/// guest runs. `modprobe` runs through the plan's [`Runner`].
pub struct Kvm<'a> {
    pub ext: Option<VirtExtension>,
    run: &'a dyn Runner,
    reload_error: RefCell<Option<String>>,
}

impl<'a> Kvm<'a> {
    pub fn new(ext: Option<VirtExtension>, run: &'a dyn Runner) -> Self {
        Self {
            ext,
            run,
            reload_error: RefCell::new(None),
        }
    }
}

const OWNED_MODE: u32 = desired::KVM_FILES_MODE;

pub const NO_VIRT: &str = "no VT-x/AMD-V flag (vmx/svm) in /proc/cpuinfo: guests will be emulated \
(TCG), many times slower; enable virtualization in the firmware, or nested virtualization on the \
outer hypervisor";

impl Kvm<'_> {
    /// The shared assessment of nesting ([`kvm::nested_of`]). It covers the modules too:
    /// where [`kvm::modules`] (validate's `kvm.module`) finds one missing, nesting loads it.
    fn assess(&self, root: &HostRoot, ext: VirtExtension) -> Assessment<KvmAction> {
        let m = KvmModules::read(root, Some(ext));
        let reload_error = self.reload_error.borrow().clone();
        kvm::nested_of(root, ext, &m, reload_error.as_deref())
    }

    fn act(&self, root: &HostRoot, ext: VirtExtension, a: &KvmAction) -> anyhow::Result<()> {
        match a {
            KvmAction::WriteNestedConf { .. } => {
                let conf = desired::nested_conf(ext);
                let want = root_owned(&conf, OWNED_MODE);
                apply_file(root, NESTED_CONF_PATH, &want, |_| Ok(()))?;
            }
            // Loading reads the nested=1 just written.
            KvmAction::Load { module } => {
                self.run.run(cmd::tool("modprobe").arg(module))?;
            }
            KvmAction::Reload { module } => {
                if let Err(e) = self.run.run(cmd::tool("modprobe").args(["-r", module])) {
                    *self.reload_error.borrow_mut() = Some(e.to_string());
                    return Ok(());
                }
                self.run
                    .run(cmd::tool("modprobe").arg(module))
                    .with_context(|| {
                        format!("{module} was unloaded to enable nesting and did not load again")
                    })?;
            }
        }
        Ok(())
    }
}

impl Step for Kvm<'_> {
    fn id(&self) -> &'static str {
        "kvm"
    }

    fn check(&self, root: &HostRoot) -> anyhow::Result<Check> {
        let Some(ext) = self.ext else {
            return Ok(Check::Skip(format!("warning: {NO_VIRT}")));
        };
        let nested = self.assess(root, ext);
        Ok(match nested {
            Assessment::NotMet { .. } => Check::Pending(nested.described()),
            // A nested conf that cannot be judged: the step fails saying why.
            Assessment::Unknown(why) => anyhow::bail!("{why}"),
            // Guests running (or a failed reload): configured, not active; reported as a
            // warning, not failed (validate's kvm.nested WARNs with the same words).
            Assessment::Blocked { detail, hint } => {
                Check::Skip(format!("warning: {}: {detail}; {hint}", ext.label()))
            }
            Assessment::Met(detail) => Check::Converged(detail),
        })
    }

    fn apply(&self, root: &HostRoot, _progress: &dyn Progress) -> anyhow::Result<()> {
        let Some(ext) = self.ext else {
            return Ok(());
        };
        if let Assessment::NotMet { actions, .. } = self.assess(root, ext) {
            for a in &actions {
                self.act(root, ext, a)?;
            }
        }
        Ok(())
    }
}

/// `/dev/kvm` root:kvm 0660 now (chown, chmod) and at boot (virthost's udev rule, unless a
/// distribution rule already sets the group); the kvm group is created when missing.
pub struct DevKvm<'a> {
    pub ext: Option<VirtExtension>,
    /// The host's family: whom QEMU runs as by default.
    pub family: Family,
    /// Runs `groupadd`, `usermod`, `chown` and `chmod`.
    pub run: &'a dyn Runner,
}

impl DevKvm<'_> {
    /// The shared assessments of `/dev/kvm`: the node, its group and rule
    /// ([`kvm::device`]), and QEMU's user able to open it ([`kvm::access`], judged once the
    /// node is there).
    fn assess(
        &self,
        root: &HostRoot,
    ) -> anyhow::Result<(
        DevKvmFacts,
        Assessment<DevKvmAction>,
        Option<Assessment<DevKvmAction>>,
    )> {
        let f = dev_kvm_facts(root)?;
        let device = kvm::device(&f);
        let accounts = Accounts::read(root).unwrap_or_default();
        let access = kvm::access(&f, &QemuIdentity::read(root, Some(self.family)), &accounts);
        Ok((f, device, access))
    }
}

impl Step for DevKvm<'_> {
    fn id(&self) -> &'static str {
        "devkvm"
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &["kvm"]
    }

    fn check(&self, root: &HostRoot) -> anyhow::Result<Check> {
        let (f, device, access) = self.assess(root)?;
        if f.node.is_none() && self.ext.is_none() {
            return Ok(Check::Skip(
                "no /dev/kvm and no VT-x/AMD-V: nothing to give the kvm group".into(),
            ));
        }
        let device = device.to_check(|why| why.to_string())?;
        let access = match access {
            Some(a) => {
                a.to_check(|why| {
                    format!("judge whether QEMU can open {DEV_KVM} once the packages step creates its user ({why})")
                })?
            }
            None => return Ok(device),
        };
        Ok(match (device, access) {
            (Check::Pending(mut a), Check::Pending(b)) => {
                a.extend(b.into_iter().filter(|x| !a.contains(x)).collect::<Vec<_>>());
                Check::Pending(a)
            }
            (Check::Pending(a), _) | (_, Check::Pending(a)) => Check::Pending(a),
            (device, _) => device,
        })
    }

    fn apply(&self, root: &HostRoot, _progress: &dyn Progress) -> anyhow::Result<()> {
        let (_, device, access) = self.assess(root)?;
        let mut actions = vec![];
        for a in [Some(device), access].into_iter().flatten() {
            if let Assessment::NotMet { actions: more, .. } = a {
                actions.extend(
                    more.into_iter()
                        .filter(|x| !actions.contains(x))
                        .collect::<Vec<_>>(),
                );
            }
        }
        // The group first: the others use it.
        actions.sort_by_key(|a| !matches!(a, DevKvmAction::CreateGroup));
        for a in &actions {
            match a {
                DevKvmAction::CreateGroup => {
                    self.run
                        .run(cmd::tool("groupadd").args(["--system", KVM_GROUP]))
                        .map_err(|e| e.or_install(super::user::ACCOUNT_TOOLS))?;
                }
                DevKvmAction::WriteUdevRule => {
                    let text = desired::kvm_udev_rule();
                    let rule = root_owned(&text, OWNED_MODE);
                    apply_file(root, KVM_UDEV_RULE_PATH, &rule, |_| Ok(()))?;
                }
                // The kvm module creates it; then the next run sets it.
                DevKvmAction::SetOwner { now: None } => {}
                DevKvmAction::SetOwner { now: Some(_) } => set_owner(self.run)?,
                DevKvmAction::JoinGroup { user } => {
                    self.run
                        .run(cmd::tool("usermod").args(["-aG", KVM_GROUP, "--", user]))
                        .map_err(|e| e.or_install(super::user::ACCOUNT_TOOLS))?;
                }
            }
        }
        Ok(())
    }
}

/// What [`kvm::device`] judges, read from the host (the shared reader).
pub fn dev_kvm_facts(root: &HostRoot) -> anyhow::Result<DevKvmFacts> {
    DevKvmFacts::read(root, DevNode::read(root, DEV_KVM)?)
}

/// `/dev/kvm` to root and group kvm, mode 0660 (the kernel creates it root's; a udev rule
/// may have given it to someone else), with coreutils through the plan's runner.
fn set_owner(run: &dyn Runner) -> anyhow::Result<()> {
    run.run(cmd::tool("chown").args([&format!("root:{KVM_GROUP}"), DEV_KVM]))?;
    run.run(cmd::tool("chmod").arg(format!("{KVM_MODE:o}")).arg(DEV_KVM))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::World;
    use crate::step::{run, Mode, Quiet, Status};

    use crate::steps::testroot::put as write;

    #[test]
    fn no_extension_is_a_skip_with_a_warning() {
        let world = World::at("/nonexistent");
        let steps: Vec<Box<dyn Step>> = vec![
            Box::new(Kvm::new(None, &world)),
            Box::new(DevKvm {
                ext: None,
                family: Family::Apt,
                run: &world,
            }),
        ];
        let out = run(&steps, world.root(), Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Skipped);
        assert!(out[0].detail.contains("guests will be emulated"));
        assert_eq!(out[1].status, Status::Skipped);
        assert!(world.calls().is_empty());
    }

    #[test]
    fn nested_conf_is_written_once_and_a_running_guest_blocks_the_reload() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "sys/module/kvm/parameters/halt_poll_ns", "0\n");
        write(d.path(), "sys/module/kvm_intel/parameters/nested", "N\n");
        write(d.path(), "proc/4242/comm", "qemu-kvm\n");
        let world = World::at(d.path());
        let steps: Vec<Box<dyn Step>> = vec![Box::new(Kvm::new(Some(VirtExtension::Vmx), &world))];
        let out = run(&steps, world.root(), Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Changed, "{out:?}");
        assert!(
            out[0]
                .detail
                .contains("active after reboot or module reload"),
            "{}",
            out[0].detail
        );
        assert!(out[0].detail.contains("4242"));
        // The guest holds the module: no reload was tried.
        assert!(world.calls().is_empty(), "{:?}", world.calls());
        let conf =
            std::fs::read_to_string(d.path().join("etc/modprobe.d/virthost-kvm-nested.conf"))
                .unwrap();
        assert!(conf.ends_with("options kvm_intel nested=1\n"));
        // Configured but not active: a warning, each run, never `ok`.
        let out = run(&steps, world.root(), Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Skipped);
        assert!(
            out[0].detail.starts_with("warning: Intel VT-x"),
            "{}",
            out[0].detail
        );
    }

    #[test]
    fn modules_are_loaded_and_reloaded_for_nesting_when_no_guest_runs() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "proc/cpuinfo",
            "processor : 0\nvendor_id : AuthenticAMD\nflags : fpu svm\n",
        );
        let world = World::at(d.path());
        let kvm = Kvm::new(Some(VirtExtension::Svm), &world);
        let steps: Vec<Box<dyn Step>> = vec![Box::new(kvm)];
        // Nothing loaded: load kvm_amd, which reads the nested=1 just written.
        let out = run(&steps, world.root(), Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Changed, "{out:?}");
        assert_eq!(world.calls(), ["modprobe kvm_amd"]);
        assert_eq!(
            std::fs::read_to_string(d.path().join("sys/module/kvm_amd/parameters/nested")).unwrap(),
            "1\n"
        );
        // Loaded without nesting: unloaded and loaded again.
        write(d.path(), "sys/module/kvm_amd/parameters/nested", "0\n");
        let out = run(&steps, world.root(), Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Changed, "{out:?}");
        assert_eq!(
            world.calls()[1..],
            ["modprobe -r kvm_amd", "modprobe kvm_amd"]
        );
        let out = run(&steps, world.root(), Mode::Apply, &Quiet, |_| {});
        assert_eq!((out[0].status, world.calls().len()), (Status::Ok, 3));
    }

    #[test]
    fn dev_kvm_gets_the_group_mode_and_a_rule_idempotently() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "etc/group", "root:x:0:\nkvm:x:107:\n");
        write(
            d.path(),
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\nlibvirt-qemu:x:64055:107::/var/lib/libvirt:/usr/sbin/nologin\n",
        );
        write(d.path(), "dev/kvm", "0 0 600\n");
        let world = World::at(d.path());
        let steps: Vec<Box<dyn Step>> = vec![Box::new(DevKvm {
            ext: None,
            family: Family::Apt,
            run: &world,
        })];
        let out = run(&steps, world.root(), Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Changed, "{out:?}");
        assert!(out[0].changes[0].contains("now root:root 0600"));
        assert_eq!(
            world.calls(),
            ["chown root:kvm /dev/kvm", "chmod 660 /dev/kvm"]
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("dev/kvm")).unwrap(),
            "0 107 660\n"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("etc/udev/rules.d/65-virthost-kvm.rules"))
                .unwrap(),
            desired::kvm_udev_rule()
        );
        let out = run(&steps, world.root(), Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Ok);
        assert!(out[0].detail.contains("root:kvm 0660"), "{}", out[0].detail);
        assert_eq!(world.calls().len(), 2);
        // Right group and mode but another owner (a udev rule's OWNER=): root gets it back.
        write(
            d.path(),
            "dev/kvm",
            "64055 107 660
",
        );
        let out = run(&steps, world.root(), Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Changed, "{out:?}");
        assert_eq!(
            std::fs::read_to_string(d.path().join("dev/kvm")).unwrap(),
            "0 107 660\n"
        );
    }

    #[test]
    fn a_missing_kvm_group_is_created_with_groupadd() {
        if virthost_testkit::tool("groupadd", "passwd").is_none()
            || virthost_testkit::root().is_none()
        {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "etc/group", "root:x:0:\n");
        write(d.path(), "etc/gshadow", "root:*::\n");
        write(d.path(), "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
        write(
            d.path(),
            "etc/login.defs",
            "SYS_GID_MIN 100\nSYS_GID_MAX 999\n",
        );
        write(d.path(), "dev/kvm", "0 0 600\n");
        // QEMU as root (qemu.conf): only the device's group and mode are missing.
        write(d.path(), "etc/libvirt/qemu.conf", "user = \"root\"\n");
        let world = World::at(d.path());
        let steps: Vec<Box<dyn Step>> = vec![Box::new(DevKvm {
            ext: Some(VirtExtension::Svm),
            family: Family::Apt,
            run: &world,
        })];
        let out = run(&steps, world.root(), Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Changed, "{out:?}");
        assert_eq!(world.calls()[0], "groupadd --system kvm");
        let gid = crate::facts::group_gid(world.root(), "kvm")
            .unwrap()
            .expect("kvm group created");
        assert_eq!(
            std::fs::read_to_string(d.path().join("dev/kvm")).unwrap(),
            format!("0 {gid} 660\n")
        );
    }

    #[test]
    fn qemu_s_user_from_qemu_conf_joins_group_kvm() {
        if virthost_testkit::tool("usermod", "passwd").is_none()
            || virthost_testkit::root().is_none()
        {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "etc/group",
            "root:x:0:\nkvm:x:36:qemu\nvirt:x:990:\n",
        );
        write(d.path(), "etc/gshadow", "root:*::\nkvm:!::qemu\nvirt:!::\n");
        write(
            d.path(),
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\nqemu:x:107:107::/:/sbin/nologin\nvirt:x:990:990::/:/sbin/nologin\n",
        );
        write(
            d.path(),
            "etc/shadow",
            "root:*:19000::::::\nqemu:!:19000::::::\nvirt:!:19000::::::\n",
        );
        write(d.path(), "dev/kvm", "0 36 660\n");
        write(
            d.path(),
            "usr/lib/udev/rules.d/80-kvm.rules",
            "KERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0660\"\n",
        );
        // The operator runs QEMU as `virt`, which the packages never put in group kvm.
        write(
            d.path(),
            "etc/libvirt/qemu.conf",
            "# user = \"qemu\"\nuser = \"virt\"\n",
        );
        let world = World::at(d.path());
        let steps: Vec<Box<dyn Step>> = vec![Box::new(DevKvm {
            ext: Some(VirtExtension::Vmx),
            family: Family::Yum,
            run: &world,
        })];
        let out = run(&steps, world.root(), Mode::Check, &Quiet, |_| {});
        assert_eq!(
            out[0].changes,
            ["add virt, the user QEMU runs as, to group kvm (usermod -aG kvm virt)"]
        );
        let out = run(&steps, world.root(), Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Changed, "{out:?}");
        // `--`: the name, read from /etc/passwd, is never an option.
        assert_eq!(world.calls(), ["usermod -aG kvm -- virt"]);
        let group = std::fs::read_to_string(d.path().join("etc/group")).unwrap();
        assert!(group.contains("kvm:x:36:qemu,virt"), "{group}");
        let out = run(&steps, world.root(), Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Ok, "{out:?}");
    }

    #[test]
    fn a_distro_rule_makes_our_rule_unneeded() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "etc/group", "kvm:x:36:qemu\n");
        write(d.path(), "dev/kvm", "0 36 666\n");
        write(
            d.path(),
            "usr/lib/udev/rules.d/80-kvm.rules",
            "KERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0666\"\n",
        );
        write(d.path(), "etc/passwd", "qemu:x:107:107::/:/sbin/nologin\n");
        let steps: Vec<Box<dyn Step>> = vec![Box::new(DevKvm {
            ext: Some(VirtExtension::Vmx),
            family: Family::Yum,
            run: &crate::fixture::NO_COMMANDS,
        })];
        let out = run(&steps, &HostRoot::at(d.path()), Mode::Check, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Ok, "{out:?}");
        assert!(out[0]
            .detail
            .ends_with("/usr/lib/udev/rules.d/80-kvm.rules"));
    }
}
