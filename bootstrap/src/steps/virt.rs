//! `kvm`: hardware virtualization, the KVM modules and nested virtualization; `devkvm`:
//! `/dev/kvm` usable by the kvm group, now and after a reboot.

use std::cell::RefCell;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::Command;

use anyhow::Context;

use super::files::{apply_file, root_owned};
use crate::assess::kvm::{self, DevKvmAction, DevKvmFacts, KvmAction, DEV_KVM};
use crate::assess::Assessment;
use crate::cmd::CommandExt;
use crate::cpu::VirtExtension;
use crate::desired::{self, KVM_GROUP, KVM_MODE, KVM_UDEV_RULE_PATH, NESTED_CONF_PATH};
use crate::facts::{self, DevNode, KvmModules};
use crate::hostroot::HostRoot;
use crate::step::{Check, Progress, Step, ToCheck};

/// Carries out [`crate::assess::kvm`]'s actions: loads kvm and the vendor module,
/// configures `nested=1`, and activates it by reloading the vendor module only while no
/// guest runs. Module commands act on the running kernel, so they run only when the root
/// is `/`.
pub struct Kvm {
    pub ext: Option<VirtExtension>,
    reload_error: RefCell<Option<String>>,
}

impl Kvm {
    pub fn new(ext: Option<VirtExtension>) -> Self {
        Self {
            ext,
            reload_error: RefCell::new(None),
        }
    }
}

const OWNED_MODE: u32 = desired::KVM_FILES_MODE;

pub const NO_VIRT: &str = "no VT-x/AMD-V flag (vmx/svm) in /proc/cpuinfo: guests will be emulated \
(TCG), many times slower; enable virtualization in the firmware, or nested virtualization on the \
outer hypervisor";

impl Kvm {
    /// The shared assessments ([`crate::assess::kvm`]): the modules, then nesting.
    fn assess(
        &self,
        root: &HostRoot,
        ext: VirtExtension,
    ) -> anyhow::Result<(Assessment<KvmAction>, Assessment<KvmAction>)> {
        let m = KvmModules::read(root, Some(ext));
        let conf = desired::nested_conf(ext);
        let conf_in_place = facts::owned_file_in_place(root, NESTED_CONF_PATH, &conf, OWNED_MODE)?;
        let guests: Vec<u32> = facts::running_guests(root).iter().map(|g| g.pid).collect();
        let reload_error = self.reload_error.borrow().clone();
        Ok((
            kvm::modules(ext, &m),
            kvm::nested(ext, &m, conf_in_place, &guests, reload_error.as_deref()),
        ))
    }

    fn act(&self, root: &HostRoot, ext: VirtExtension, a: &KvmAction) -> anyhow::Result<()> {
        match a {
            KvmAction::WriteNestedConf { .. } => {
                let conf = desired::nested_conf(ext);
                let want = root_owned(&conf, OWNED_MODE);
                apply_file(root, NESTED_CONF_PATH, &want, |_| Ok(()))?;
            }
            // Module commands act on the running kernel: only when the root is `/`.
            _ if !root.is_system() => {}
            // Loading reads the nested=1 just written.
            KvmAction::Load { module } => Command::new("modprobe").arg(module).run()?,
            KvmAction::Reload { module } => {
                if let Err(e) = Command::new("modprobe").args(["-r", module]).run() {
                    *self.reload_error.borrow_mut() = Some(e.to_string());
                    return Ok(());
                }
                Command::new("modprobe")
                    .arg(module)
                    .run()
                    .with_context(|| {
                        format!("{module} was unloaded to enable nesting and did not load again")
                    })?;
            }
        }
        Ok(())
    }
}

impl Step for Kvm {
    fn id(&self) -> &'static str {
        "kvm"
    }

    fn check(&self, root: &HostRoot) -> anyhow::Result<Check> {
        let Some(ext) = self.ext else {
            return Ok(Check::Skip(format!("warning: {NO_VIRT}")));
        };
        let (modules, nested) = self.assess(root, ext)?;
        let mut pending = nested.described();
        for a in modules.described() {
            if !pending.contains(&a) {
                pending.push(a);
            }
        }
        if !pending.is_empty() {
            return Ok(Check::Pending(pending));
        }
        Ok(Check::Converged(match nested {
            // Guests running (or a failed reload): configured, and reported, not failed.
            Assessment::Blocked { detail, .. } => format!("{}: {detail}", ext.label()),
            Assessment::Met(detail) | Assessment::Unknown(detail) => detail,
            Assessment::NotMet { detail, .. } => detail,
        }))
    }

    fn apply(&self, root: &HostRoot, _progress: &dyn Progress) -> anyhow::Result<()> {
        let Some(ext) = self.ext else {
            return Ok(());
        };
        let (_, nested) = self.assess(root, ext)?;
        if let Assessment::NotMet { actions, .. } = nested {
            for a in &actions {
                self.act(root, ext, a)?;
            }
        }
        Ok(())
    }
}

/// `/dev/kvm` root:kvm 0660 now (chgrp, chmod) and at boot (virthost's udev rule, unless a
/// distribution rule already sets the group); the kvm group is created when missing.
pub struct DevKvm {
    pub ext: Option<VirtExtension>,
}

fn describe(root: &HostRoot, n: &DevNode) -> String {
    let group = facts::group_name(root, n.gid).unwrap_or_else(|| n.gid.to_string());
    let owner = if n.uid == 0 {
        "root".to_string()
    } else {
        n.uid.to_string()
    };
    format!("{owner}:{group} {:04o}", n.mode)
}

impl Step for DevKvm {
    fn id(&self) -> &'static str {
        "devkvm"
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &["kvm"]
    }

    fn check(&self, root: &HostRoot) -> anyhow::Result<Check> {
        let f = dev_kvm_facts(root)?;
        if f.node.is_none() && self.ext.is_none() {
            return Ok(Check::Skip(
                "no /dev/kvm and no VT-x/AMD-V: nothing to give the kvm group".into(),
            ));
        }
        kvm::device(&f).to_check(|why| why.to_string())
    }

    fn apply(&self, root: &HostRoot, _progress: &dyn Progress) -> anyhow::Result<()> {
        let Assessment::NotMet { actions, .. } = kvm::device(&dev_kvm_facts(root)?) else {
            return Ok(());
        };
        for a in &actions {
            match a {
                DevKvmAction::CreateGroup => {
                    let mut c = Command::new("groupadd");
                    if !root.is_system() {
                        c.arg("--prefix").arg(root.dir());
                    }
                    c.args(["--system", KVM_GROUP]).run()?;
                }
                DevKvmAction::WriteUdevRule => {
                    let text = desired::kvm_udev_rule();
                    let rule = root_owned(&text, OWNED_MODE);
                    apply_file(root, KVM_UDEV_RULE_PATH, &rule, |_| Ok(()))?;
                }
                // The kvm module creates it; then the next run sets it.
                DevKvmAction::SetOwner { now: None } => {}
                DevKvmAction::SetOwner { now: Some(_) } => set_owner(root)?,
            }
        }
        Ok(())
    }
}

/// What [`kvm::device`] judges, read from the host.
pub fn dev_kvm_facts(root: &HostRoot) -> anyhow::Result<DevKvmFacts> {
    let node = DevNode::read(root, DEV_KVM)?;
    let distro_rule = facts::distro_kvm_udev_rule(root);
    let own_rule_in_place = distro_rule.is_none()
        && facts::owned_file_in_place(
            root,
            KVM_UDEV_RULE_PATH,
            &desired::kvm_udev_rule(),
            OWNED_MODE,
        )?;
    Ok(DevKvmFacts {
        node_text: node.as_ref().map(|n| describe(root, n)),
        node,
        kvm_gid: facts::group_gid(root, KVM_GROUP)?,
        distro_rule,
        own_rule_in_place,
    })
}

/// `/dev/kvm` to `root:kvm 0660`.
fn set_owner(root: &HostRoot) -> anyhow::Result<()> {
    let gid = facts::group_gid(root, KVM_GROUP)?
        .with_context(|| format!("group {KVM_GROUP} missing after groupadd"))?;
    let path = root.path(DEV_KVM);
    let meta =
        std::fs::metadata(&path).with_context(|| format!("{}: cannot stat", path.display()))?;
    if meta.file_type().is_char_device() {
        std::os::unix::fs::chown(&path, Some(0), Some(gid))
            .with_context(|| format!("chgrp {KVM_GROUP} {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(KVM_MODE))
            .with_context(|| format!("chmod {KVM_MODE:o} {}", path.display()))?;
    } else {
        rewrite_captured_stat_line(&path, gid)?;
    }
    Ok(())
}

/// A fixture host's `/dev/kvm`, the captured stat line `DevNode::read` reads, rewritten
/// atomically like every file bootstrap writes (the file keeps its own mode). Tests only.
#[cfg(any(test, feature = "fixtures"))]
fn rewrite_captured_stat_line(path: &std::path::Path, gid: u32) -> anyhow::Result<()> {
    use crate::atomic::{self, Owner, Wanted};
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    let line = format!("0 {gid} {KVM_MODE:o}\n");
    let want = Wanted {
        content: line.as_bytes(),
        mode: meta.mode() & 0o7777,
        owner: Owner {
            uid: meta.uid(),
            gid: meta.gid(),
        },
    };
    atomic::write(path, &want)
}

/// The shipped binary changes real device nodes only.
#[cfg(not(any(test, feature = "fixtures")))]
fn rewrite_captured_stat_line(path: &std::path::Path, _gid: u32) -> anyhow::Result<()> {
    anyhow::bail!("{}: exists and is not a device node", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::{run, Mode, Quiet, Status};
    use std::os::unix::fs::MetadataExt;

    use crate::steps::testroot::put as write;

    #[test]
    fn no_extension_is_a_skip_with_a_warning() {
        let steps: Vec<Box<dyn Step>> =
            vec![Box::new(Kvm::new(None)), Box::new(DevKvm { ext: None })];
        let out = run(
            &steps,
            &HostRoot::at("/nonexistent"),
            Mode::Apply,
            &Quiet,
            |_| {},
        );
        assert_eq!(out[0].status, Status::Skipped);
        assert!(out[0].detail.contains("guests will be emulated"));
        assert_eq!(out[1].status, Status::Skipped);
    }

    #[test]
    fn nested_conf_is_written_once_and_a_running_guest_blocks_the_reload() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "sys/module/kvm/parameters/halt_poll_ns", "0\n");
        write(d.path(), "sys/module/kvm_intel/parameters/nested", "N\n");
        write(d.path(), "proc/4242/comm", "qemu-kvm\n");
        let root = HostRoot::at(d.path());
        let steps: Vec<Box<dyn Step>> = vec![Box::new(Kvm::new(Some(VirtExtension::Vmx)))];
        let out = run(&steps, &root, Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Changed, "{out:?}");
        assert!(
            out[0]
                .detail
                .contains("active after reboot or module reload"),
            "{}",
            out[0].detail
        );
        assert!(out[0].detail.contains("4242"));
        let conf =
            std::fs::read_to_string(d.path().join("etc/modprobe.d/virthost-kvm-nested.conf"))
                .unwrap();
        assert!(conf.ends_with("options kvm_intel nested=1\n"));
        let out = run(&steps, &root, Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Ok);
    }

    #[test]
    fn dev_kvm_gets_the_group_mode_and_a_rule_idempotently() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "etc/group", "root:x:0:\nkvm:x:107:\n");
        write(d.path(), "dev/kvm", "0 0 600\n");
        let ino = std::fs::metadata(d.path().join("dev/kvm")).unwrap().ino();
        let root = HostRoot::at(d.path());
        let steps: Vec<Box<dyn Step>> = vec![Box::new(DevKvm { ext: None })];
        let out = run(&steps, &root, Mode::Apply, &Quiet, |_| {});
        // Rewritten atomically (temp file, rename): a new inode, never a truncated file.
        assert_ne!(
            std::fs::metadata(d.path().join("dev/kvm")).unwrap().ino(),
            ino
        );
        assert_eq!(out[0].status, Status::Changed, "{out:?}");
        assert!(out[0].changes[0].contains("now root:root 0600"));
        assert_eq!(
            std::fs::read_to_string(d.path().join("dev/kvm")).unwrap(),
            "0 107 660\n"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("etc/udev/rules.d/65-virthost-kvm.rules"))
                .unwrap(),
            desired::kvm_udev_rule()
        );
        let out = run(&steps, &root, Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Ok);
        assert!(out[0].detail.contains("root:kvm 0660"), "{}", out[0].detail);
    }

    #[test]
    fn a_missing_kvm_group_is_created_with_groupadd() {
        if !nix::unistd::geteuid().is_root() || which::which("groupadd").is_err() {
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
        let root = HostRoot::at(d.path());
        let steps: Vec<Box<dyn Step>> = vec![Box::new(DevKvm {
            ext: Some(VirtExtension::Svm),
        })];
        let out = run(&steps, &root, Mode::Apply, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Changed, "{out:?}");
        let gid = facts::group_gid(&root, "kvm")
            .unwrap()
            .expect("kvm group created");
        assert_eq!(
            std::fs::read_to_string(d.path().join("dev/kvm")).unwrap(),
            format!("0 {gid} 660\n")
        );
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
        let steps: Vec<Box<dyn Step>> = vec![Box::new(DevKvm {
            ext: Some(VirtExtension::Vmx),
        })];
        let out = run(&steps, &HostRoot::at(d.path()), Mode::Check, &Quiet, |_| {});
        assert_eq!(out[0].status, Status::Ok, "{out:?}");
        assert!(out[0]
            .detail
            .ends_with("/usr/lib/udev/rules.d/80-kvm.rules"));
    }
}
