//! The host tools e2e needs, and installing them when missing.

use crate::cmd::CommandExt;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a run needs from the host, by mode.
#[derive(Clone, Copy)]
pub struct Needs {
    pub qemu: bool,
    pub image_build: bool,
    /// The cloud image (--build-cloud-image): a partitioned disk with GRUB.
    pub cloud_image: bool,
    /// A NoCloud seed for --image (xorriso).
    pub seed: bool,
}

const QEMU: &[&str] = &["qemu-system-x86_64", "qemu-img"];
const SSH: &[&str] = &["ssh", "scp", "ssh-keygen"];
const IMAGE: &[&str] = &["debootstrap", "dpkg-scanpackages", "mke2fs", "chroot"];
/// `udevadm`: grub-install's grub-probe asks it which disk a loop partition belongs to.
const CLOUD_IMAGE: &[&str] = &["grub-install", "sfdisk", "losetup", "xorriso", "udevadm"];

/// Finds a program on PATH or in the sbin directories (a non-root PATH often lacks them).
pub fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn missing(needs: Needs) -> Vec<&'static str> {
    let mut want: Vec<&str> = SSH.to_vec();
    if needs.qemu {
        want.extend(QEMU);
    }
    if needs.image_build {
        want.extend(IMAGE);
    }
    if needs.cloud_image {
        want.extend(CLOUD_IMAGE);
    }
    if needs.seed {
        want.push("xorriso");
    }
    let mut gone: Vec<&str> = want.into_iter().filter(|t| find(t).is_none()).collect();
    // grub-install (grub2-common) is on most machines; the BIOS modules it installs are not.
    if needs.cloud_image && !Path::new("/usr/lib/grub/i386-pc/modinfo.sh").exists() {
        gone.push("grub-pc-bin (/usr/lib/grub/i386-pc)");
    }
    gone
}

/// Checks the tools; as root, installs what is missing with xtask/host/install-deps.sh;
/// otherwise prints the command to run and fails.
pub fn ensure(needs: Needs) -> Result<()> {
    let gone = missing(needs);
    if gone.is_empty() {
        return Ok(());
    }
    let script = super::workspace_root().join("xtask/host/install-deps.sh");
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "missing host tools: {}\ninstall them with:\n    sudo bash {}",
            gone.join(", "),
            script.display()
        );
    }
    super::say(&format!(
        "missing host tools {}: running {}",
        gone.join(", "),
        script.display()
    ));
    // Its output goes to stderr: stdout is what a run prints for scripts (the path of
    // `--build-cloud-image`, which `.ci/run` captures).
    let to_stderr = std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned()?;
    Command::new("bash")
        .arg(&script)
        .stdout(std::process::Stdio::from(to_stderr))
        .run()?;
    let still = missing(needs);
    if !still.is_empty() {
        bail!("still missing after install-deps.sh: {}", still.join(", "));
    }
    Ok(())
}
