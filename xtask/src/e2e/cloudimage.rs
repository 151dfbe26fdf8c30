//! A cloud image made here, to test `--image` for real: what a stock cloud image is to e2e,
//! built from Debian packages by debootstrap (`cargo xtask e2e --build-cloud-image`).
//!
//! Like a stock image it has a partition table and its own boot loader (GRUB on an MBR disk,
//! root `LABEL=virthost-root` on partition 1), cloud-init with the NoCloud datasource, and
//! **no login key and no SSH host key**: everything a run needs to get in arrives through the
//! run's seed (`seed.rs`). The build checks that. Unlike a stock image its repositories are the
//! hypervisor packages staged inside it (the guest network is `restrict=on`), as in the built
//! image (`image.rs`, whose debootstrap, staging and tuning it reuses).
//!
//! The boot loader needs a block device: the raw disk is attached to a loop device (root, like
//! every image build), GRUB is installed by this machine's `grub-install` (`grub-pc-bin`), and
//! the loop device is detached and the mount undone on every exit path.

use super::image::{self, BuildTimes, Distro};
use crate::cmd::CommandExt;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Bump when the build below changes in a way the recipe's lists do not show.
const SCRIPT_VERSION: u32 = 1;
/// What a stock cloud image has beyond the built image's base: cloud-init, and growpart so
/// cloud-init grows the root partition to the run's disk.
const CLOUD: &[&str] = &["cloud-init", "cloud-guest-utils", "fdisk", "e2fsprogs"];
const LABEL: &str = "virthost-root";
const DISK_BYTES: u64 = 16 << 30;
/// cloud-init looks only for a NoCloud seed (and falls back to none): no network
/// datasource is probed from a guest that has no network beyond its SSH port.
const CLOUD_CFG: &str = "# virthost e2e cloud image: the seed is a local cidata disk\n\
datasource_list: [ NoCloud, None ]\n\
# The staged local repository is this image's only one: keep sources.list as it is.\n\
apt:\n  preserve_sources_list: true\n";

#[derive(Serialize, Deserialize, Debug)]
pub struct Recipe {
    pub kind: String,
    pub script_version: u32,
    pub suite: String,
    pub include: Vec<String>,
    /// Installed with apt after debootstrap (which resolves no virtual packages: cloud-init's
    /// python3-cryptography needs `python3-cffi-backend-api-*`).
    pub cloud: Vec<String>,
    pub packages: Vec<String>,
}

impl Recipe {
    pub fn current(distro: Distro) -> Recipe {
        Recipe {
            kind: "cloud".into(),
            script_version: SCRIPT_VERSION,
            suite: distro.suite().into(),
            include: image::INCLUDE
                .iter()
                .chain(distro.include_extra())
                .map(|s| s.to_string())
                .collect(),
            cloud: CLOUD.iter().map(|s| s.to_string()).collect(),
            packages: image::hypervisor_packages(distro),
        }
    }

    pub fn hash(&self) -> String {
        let digest = Sha256::digest(serde_json::to_vec(self).expect("recipe serializes"));
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The cached cloud image of `distro` (built first when absent or `rebuild`): its qcow2.
pub fn ensure(cache: &Path, distro: Distro, rebuild: bool) -> Result<PathBuf> {
    let recipe = Recipe::current(distro);
    let name = format!("cloud-{}", recipe.hash());
    let (dir, _) = image::cached(cache, &name, &recipe, rebuild, |out| build(&recipe, out))?;
    Ok(dir.join("disk.qcow2"))
}

fn build(recipe: &Recipe, out: &Path) -> Result<BuildTimes> {
    let mut t = BuildTimes::default();
    let root = out.join("rootfs");
    t.time("debootstrap", || {
        image::debootstrap(&root, &recipe.suite, &recipe.include)
    })?;
    t.time("cloud-init", || {
        image::chroot(&root)
            .args(["apt-get", "-q", "update"])
            .run_output()?;
        image::chroot(&root)
            .args(["apt-get", "-q", "-y", "install", "--no-install-recommends"])
            .args(&recipe.cloud)
            .run_output()?;
        image::chroot(&root)
            .args(["apt-get", "clean"])
            .run_output()?;
        Ok(())
    })?;
    t.time("download packages", || {
        image::stage_repo(&root, &recipe.packages)
    })?;
    t.time("tune", || {
        image::tune(&root)?;
        cloudify(&root)
    })?;
    t.time("no key inside", || no_keys_inside(&root))?;
    let raw = out.join("disk.raw");
    t.time("disk with GRUB", || {
        disk_with_grub(&root, &raw)?;
        image::remove_dir(&root)
    })?;
    t.time("qcow2", || image::to_qcow2(&raw, &out.join("disk.qcow2")))?;
    Ok(t)
}

/// What turns the tuned root into a cloud image: root by label, cloud-init's configuration, and
/// no SSH host keys (cloud-init installs the seed's).
fn cloudify(root: &Path) -> Result<()> {
    fs::write(
        root.join("etc/fstab"),
        format!("LABEL={LABEL} / ext4 rw,errors=remount-ro 0 1\n"),
    )?;
    fs::write(
        root.join("etc/cloud/cloud.cfg.d/90-virthost-e2e.cfg"),
        CLOUD_CFG,
    )?;
    for entry in fs::read_dir(root.join("etc/ssh"))? {
        let p = entry?.path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("ssh_host_") {
            fs::remove_file(&p)?;
        }
    }
    Ok(())
}

/// Fails when the root holds a login key or a host key: in this image they may only come
/// from the seed.
fn no_keys_inside(root: &Path) -> Result<()> {
    let mut found = Vec::new();
    walk(root, &mut |p| {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        let rel = p.strip_prefix(root).unwrap_or(p);
        let in_etc_ssh = rel.starts_with("etc/ssh");
        let login_keys = name == "authorized_keys" || name == "authorized_keys2";
        if login_keys || (in_etc_ssh && name.starts_with("ssh_host_")) {
            found.push(rel.display().to_string());
        }
    })?;
    if !found.is_empty() {
        bail!("the cloud image would carry keys: {}", found.join(", "));
    }
    Ok(())
}

fn walk(dir: &Path, f: &mut impl FnMut(&Path)) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let entry = entry?;
        let p = entry.path();
        f(&p);
        if entry.file_type()?.is_dir() {
            walk(&p, f)?;
        }
    }
    Ok(())
}

/// A loop device with the raw disk, and where its partition is mounted; undone on drop.
struct Attached {
    dev: String,
    mnt: Option<PathBuf>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Some(m) = self.mnt.take() {
            let _ = Command::new("umount").arg(&m).status();
            let _ = fs::remove_dir(&m);
        }
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// An MBR disk of DISK_BYTES: partition 1 (bootable) is an ext4 made from `root` with
/// `mke2fs -d`, and GRUB boots its kernel with the serial console.
fn disk_with_grub(root: &Path, raw: &Path) -> Result<()> {
    let f = fs::File::create(raw)?;
    f.set_len(DISK_BYTES)?;
    drop(f);
    let layout = raw.with_extension("sfdisk");
    fs::write(&layout, "label: dos\nstart=2048, type=83, bootable\n")?;
    Command::new("sfdisk")
        .args(["-q", "--no-reread"])
        .arg(raw)
        .stdin(fs::File::open(&layout)?)
        .run()?; // not run_output: that gives the command a null stdin
    fs::remove_file(&layout)?;
    let out = Command::new("losetup")
        .args(["--find", "--show", "--partscan"])
        .arg(raw)
        .run_output()?;
    let dev = String::from_utf8(out.stdout)?.trim().to_string();
    let mut att = Attached { dev, mnt: None };
    let part = format!("{}p1", att.dev);
    // Measured here (kernel 6.18 in a Firecracker VM): --partscan sets the flag but the
    // partition node appears only after `partx -a`.
    if !appears(&part, Duration::from_secs(2)) {
        Command::new("partx").args(["-a", &att.dev]).run_output()?;
        if !appears(&part, Duration::from_secs(10)) {
            bail!("{part} did not appear after losetup --partscan and partx -a");
        }
    }
    Command::new("mke2fs")
        .args(["-q", "-t", "ext4", "-L", LABEL, "-d"])
        .arg(root)
        .arg(&part)
        .run_output()?;
    let mnt = raw.with_extension("mnt");
    fs::create_dir_all(&mnt)?;
    Command::new("mount").arg(&part).arg(&mnt).run_output()?;
    att.mnt = Some(mnt.clone());
    Command::new("grub-install")
        .args(["--target=i386-pc", "--no-floppy"])
        .arg(format!("--boot-directory={}", mnt.join("boot").display()))
        .args(["--modules=part_msdos ext2 search_label serial", &att.dev])
        .run_output()?;
    let kernel = newest(&mnt.join("boot"), "vmlinuz-")?;
    let initrd = newest(&mnt.join("boot"), "initrd.img-")?;
    fs::write(mnt.join("boot/grub/grub.cfg"), grub_cfg(&kernel, &initrd))?;
    drop(att);
    Ok(())
}

fn appears(path: &str, within: Duration) -> bool {
    let start = Instant::now();
    while !Path::new(path).exists() {
        if start.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// GRUB's configuration: serial console, no menu wait, the kernel by label.
fn grub_cfg(kernel: &str, initrd: &str) -> String {
    format!(
        "serial --unit=0 --speed=115200\n\
         terminal_input serial console\n\
         terminal_output serial console\n\
         search --no-floppy --label --set=root {LABEL}\n\
         linux /boot/{kernel} root=LABEL={LABEL} rw console=tty0 console=ttyS0\n\
         initrd /boot/{initrd}\n\
         boot\n"
    )
}

fn newest(dir: &Path, prefix: &str) -> Result<String> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
        .pop()
        .with_context(|| format!("no {prefix}* in {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cloud_recipe_adds_cloud_init_to_the_built_images_base() {
        let c = Recipe::current(Distro::Debian13);
        let b = image::Recipe::current(Distro::Debian13);
        for p in ["cloud-init", "cloud-guest-utils", "fdisk"] {
            assert!(c.cloud.iter().any(|x| x == p), "{p}");
        }
        assert_eq!(b.include, c.include);
        assert_eq!(c.packages, b.packages);
        assert_ne!(c.hash(), Recipe::current(Distro::Debian12).hash());
    }

    #[test]
    fn a_key_anywhere_in_the_root_fails_the_build() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc/ssh")).unwrap();
        fs::write(d.path().join("etc/ssh/sshd_config"), "").unwrap();
        // The man page of the file is not a key (found in the first real build).
        fs::create_dir_all(d.path().join("usr/share/man/man5")).unwrap();
        fs::write(d.path().join("usr/share/man/man5/authorized_keys.5.gz"), "").unwrap();
        no_keys_inside(d.path()).unwrap();
        fs::write(d.path().join("etc/ssh/ssh_host_ed25519_key"), "k").unwrap();
        let e = no_keys_inside(d.path()).unwrap_err().to_string();
        assert!(e.contains("etc/ssh/ssh_host_ed25519_key"), "{e}");
        fs::remove_file(d.path().join("etc/ssh/ssh_host_ed25519_key")).unwrap();
        fs::create_dir_all(d.path().join("home/debian/.ssh")).unwrap();
        fs::write(d.path().join("home/debian/.ssh/authorized_keys"), "k").unwrap();
        assert!(no_keys_inside(d.path()).is_err());
    }

    #[test]
    fn grub_boots_the_kernel_by_label_on_the_serial_console() {
        let g = grub_cfg("vmlinuz-6.12.1-amd64", "initrd.img-6.12.1-amd64");
        assert!(g.contains("linux /boot/vmlinuz-6.12.1-amd64 root=LABEL=virthost-root rw"));
        assert!(g.contains("console=ttyS0") && g.ends_with("boot\n"));
    }
}
