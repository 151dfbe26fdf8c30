//! The target image: a Debian 12 or 13 root built with debootstrap, tuned for a fast offline
//! install, with the hypervisor packages staged as a local flat apt repository, turned into
//! an ext4 qcow2 with `mke2fs -d` (no loop mounts). Cached under
//! `target/e2e/cache/<recipe-hash>/`, keyed by everything that decides its content.
//!
//! Access: the image holds no login key. A oneshot unit (`virthost-e2e-key.service`) writes
//! root's `authorized_keys` at every boot from the kernel command line
//! (`virthost.root_key=<base64 blob>`), so each run boots the cached image with its own
//! throwaway key. The SSH host keys are generated once per image; their public half is kept in
//! the cache and pinned per run in a run-local known_hosts file.

use crate::cmd::CommandExt;
use anyhow::{bail, Context, Result};
use bootstrap::desired;
use bootstrap::os::{OsRelease, Platform};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Bump when the build steps below change in a way the lists do not show.
const SCRIPT_VERSION: u32 = 2;

/// The Debian release the image is built from (`--distro`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Distro {
    /// Debian 12 (bookworm)
    #[default]
    #[value(name = "debian-12")]
    Debian12,
    /// Debian 13 (trixie)
    #[value(name = "debian-13")]
    Debian13,
}

impl Distro {
    pub fn suite(self) -> &'static str {
        match self {
            Distro::Debian12 => "bookworm",
            Distro::Debian13 => "trixie",
        }
    }

    /// `Debian 13 (trixie)`, as the summary names the release.
    pub fn name(self) -> String {
        let v = match self {
            Distro::Debian12 => 12,
            Distro::Debian13 => 13,
        };
        format!("Debian {v} ({})", self.suite())
    }

    /// The release's os-release, as the shared model reads it to choose the package set.
    fn os_release(self) -> OsRelease {
        let v = match self {
            Distro::Debian12 => "12",
            Distro::Debian13 => "13",
        };
        OsRelease::parse(&format!(
            "ID=debian\nVERSION_ID=\"{v}\"\nVERSION_CODENAME={}\n",
            self.suite()
        ))
    }

    /// What debootstrap must be told beyond [`INCLUDE`]: trixie's minbase no longer pulls in
    /// `e2fsprogs`, and the run grows the root with `resize2fs` (ENVIRONMENT.md).
    pub(super) fn include_extra(self) -> &'static [&'static str] {
        match self {
            Distro::Debian12 => &[],
            Distro::Debian13 => &["e2fsprogs"],
        }
    }
}
/// The base system: kernel, systemd, sshd and what bootstrap and validate expect to find.
/// `libpam-systemd` must be named: debootstrap does not resolve `default-logind | logind`
/// and polkitd needs it.
pub(super) const INCLUDE: &[&str] = &[
    "linux-image-amd64",
    "systemd-sysv",
    "libpam-systemd",
    "udev",
    "dbus",
    "openssh-server",
    "sudo",
    "ca-certificates",
    "polkitd",
    "pkexec",
    "python3",
    "iproute2",
    "kmod",
    "procps",
    "netbase",
];
/// Inside the guest: the flat repository the offline install reads.
const REPO_DIR: &str = "var/local/virthost-repo";
const DISK_SIZE: &str = "16G";

/// The Debian packages `bootstrap` installs on this guest (it installs them with
/// --no-install-recommends), from the one shared model of a ready hypervisor.
pub(super) fn hypervisor_packages(distro: Distro) -> Vec<String> {
    let platform =
        Platform::detect(&distro.os_release(), None).expect("a supported Debian release");
    desired::packages(&platform)
        .into_iter()
        .map(|p| p.name.to_string())
        .collect()
}

/// Everything that decides the image's content; its hash names the cache directory.
#[derive(Serialize, Deserialize, Debug)]
pub struct Recipe {
    pub script_version: u32,
    pub suite: String,
    pub include: Vec<String>,
    pub packages: Vec<String>,
}

impl Recipe {
    pub fn current(distro: Distro) -> Recipe {
        Recipe {
            script_version: SCRIPT_VERSION,
            suite: distro.suite().into(),
            include: INCLUDE
                .iter()
                .chain(distro.include_extra())
                .map(|s| s.to_string())
                .collect(),
            packages: hypervisor_packages(distro),
        }
    }

    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).expect("recipe serializes");
        let digest = Sha256::digest(json);
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A built image in the cache.
pub struct Image {
    pub dir: PathBuf,
    pub disk: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The image's SSH host key, `ssh-ed25519 AAAA...`.
    pub host_key: String,
}

/// How long each build step took (kept in the cache as build-times.json).
#[derive(Serialize, Deserialize, Default, Clone)]
pub struct BuildTimes {
    pub steps: Vec<(String, f64)>,
}

impl BuildTimes {
    pub(super) fn time<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        super::say(&format!("image: {name}"));
        let start = Instant::now();
        let out = f().with_context(|| format!("image step `{name}`"))?;
        let secs = start.elapsed().as_secs_f64();
        super::say(&format!("image: {name}: {secs:.1} s"));
        self.steps.push((name.into(), secs));
        Ok(out)
    }
}

impl Image {
    fn at(dir: PathBuf) -> Result<Image> {
        let host_key = fs::read_to_string(dir.join("ssh_host_ed25519_key.pub"))
            .context("reading the cached host key")?;
        Ok(Image {
            disk: dir.join("disk.qcow2"),
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
            host_key: host_key
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" "),
            dir,
        })
    }
}

/// Returns the cached image for the current recipe, building it first when it is absent
/// or `rebuild` is set. The build times are returned when a build happened.
pub fn ensure(cache: &Path, distro: Distro, rebuild: bool) -> Result<(Image, Option<BuildTimes>)> {
    let recipe = Recipe::current(distro);
    let (dir, times) = cached(cache, &recipe.hash(), &recipe, rebuild, |out| {
        build(&recipe, out)
    })?;
    Ok((Image::at(dir)?, times))
}

/// The cache entry `cache/<name>/` for `recipe`: as it is when complete (`READY`) and not
/// `rebuild`; else built by `build` in `<name>.tmp/` and renamed into place only when complete,
/// so an interrupted build is never used. The build times are returned when a build happened.
pub(super) fn cached<R: Serialize>(
    cache: &Path,
    name: &str,
    recipe: &R,
    rebuild: bool,
    build: impl FnOnce(&Path) -> Result<BuildTimes>,
) -> Result<(PathBuf, Option<BuildTimes>)> {
    let dir = cache.join(name);
    if dir.join("READY").exists() && !rebuild {
        super::say(&format!("image: cached {}", dir.display()));
        return Ok((dir, None));
    }
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "building an image needs root (debootstrap, chroot, a loop device); run as root or use --image/--host"
        );
    }
    let tmp = cache.join(format!("{name}.tmp"));
    remove_dir(&tmp)?;
    remove_dir(&dir)?;
    fs::create_dir_all(&tmp)?;
    let times = build(&tmp)?;
    fs::write(
        tmp.join("recipe.json"),
        serde_json::to_string_pretty(recipe)?,
    )?;
    fs::write(
        tmp.join("build-times.json"),
        serde_json::to_string_pretty(&times)?,
    )?;
    fs::write(tmp.join("READY"), "")?;
    fs::rename(&tmp, &dir)?;
    Ok((dir, Some(times)))
}

/// `debootstrap --variant=minbase` of `suite` with `include` into `root`, from this machine's
/// mirror.
pub(super) fn debootstrap(root: &Path, suite: &str, include: &[String]) -> Result<()> {
    Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={}", include.join(",")))
        .args(["--components=main", suite])
        .arg(root)
        .arg(host_mirror())
        .stdout(Stdio::null())
        .run()
}

/// `raw` converted to `qcow2`, and removed.
pub(super) fn to_qcow2(raw: &Path, qcow2: &Path) -> Result<()> {
    Command::new("qemu-img")
        .args(["convert", "-O", "qcow2"])
        .arg(raw)
        .arg(qcow2)
        .run_output()?;
    Ok(fs::remove_file(raw)?)
}

pub(super) fn remove_dir(p: &Path) -> Result<()> {
    // A build killed inside debootstrap or a chroot can leave /proc (or worse, a bind mount of
    // this machine's /dev) mounted in the root: unmount what is beneath first, deepest first,
    // and never delete through a mount.
    for m in mounts_beneath(p) {
        Command::new("umount")
            .arg(&m)
            .run_output()
            .with_context(|| format!("{} is mounted; not removing {}", m.display(), p.display()))?;
    }
    match fs::remove_dir_all(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", p.display()))
        }
        _ => Ok(()),
    }
}

/// Mount points at or beneath `dir` (from /proc/self/mountinfo), deepest first.
fn mounts_beneath(dir: &Path) -> Vec<PathBuf> {
    let Ok(dir) = fs::canonicalize(dir) else {
        return Vec::new();
    };
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .map(PathBuf::from)
        .filter(|m| m.starts_with(&dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    found.dedup();
    found
}

/// mountinfo writes space, tab, newline and backslash in paths as octal escapes (`\040`).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c));
        if octal {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn build(recipe: &Recipe, out: &Path) -> Result<BuildTimes> {
    let mut t = BuildTimes::default();
    let root = out.join("rootfs");
    t.time("debootstrap", || {
        debootstrap(&root, &recipe.suite, &recipe.include)
    })?;
    t.time("download packages", || stage_repo(&root, &recipe.packages))?;
    t.time("tune", || {
        tune(&root)?;
        key_from_cmdline(&root)
    })?;
    t.time("kernel", || {
        copy_boot_file(&root, "vmlinuz-", &out.join("vmlinuz"))?;
        copy_boot_file(&root, "initrd.img-", &out.join("initrd.img"))?;
        fs::copy(
            root.join("etc/ssh/ssh_host_ed25519_key.pub"),
            out.join("ssh_host_ed25519_key.pub"),
        )
        .context("the root has no ssh host key")?;
        Ok(())
    })?;
    let raw = out.join("disk.raw");
    t.time("mke2fs -d", || {
        Command::new("mke2fs")
            .args(["-q", "-t", "ext4", "-L", "virthost-root", "-d"])
            .arg(&root)
            .arg("-F")
            .arg(&raw)
            .arg(DISK_SIZE)
            .run_output()?;
        remove_dir(&root)
    })?;
    t.time("qcow2", || to_qcow2(&raw, &out.join("disk.qcow2")))?;
    Ok(t)
}

/// The host's Debian mirror: the first `URIs:` of debian.sources, else sources.list, else
/// deb.debian.org.
fn host_mirror() -> String {
    let deb822 = fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default();
    let from_deb822 = deb822
        .lines()
        .find_map(|l| l.strip_prefix("URIs:"))
        .and_then(|v| v.split_whitespace().next());
    let legacy = fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    let from_legacy = legacy
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.first() == Some(&"deb") && w.len() >= 3)
        .map(|w| {
            w.iter()
                .find(|x| x.contains("://"))
                .copied()
                .unwrap_or(w[1])
        });
    from_deb822
        .or(from_legacy)
        .unwrap_or("http://deb.debian.org/debian")
        .to_string()
}

pub(super) fn chroot(root: &Path) -> Command {
    let mut c = Command::new("chroot");
    c.arg(root)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C.UTF-8")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    c
}

/// Downloads the hypervisor package set (and everything it pulls in, without recommends, as
/// bootstrap installs it) into a flat repository inside the root, indexes it, and points apt
/// at it alone, with lists in place so the guest's `apt-get install` works offline.
pub(super) fn stage_repo(root: &Path, packages: &[String]) -> Result<()> {
    // Snapshot mirrors carry old Release dates.
    fs::write(
        root.join("etc/apt/apt.conf.d/99virthost-e2e"),
        "Acquire::Check-Valid-Until \"false\";\nAcquire::Check-Date \"false\";\n",
    )?;
    let repo = root.join(REPO_DIR);
    fs::create_dir_all(repo.join("partial"))?;
    chroot(root)
        .args(["apt-get", "-q", "update"])
        .run_output()?;
    chroot(root)
        .args([
            "apt-get",
            "-q",
            "-y",
            "install",
            "--download-only",
            "--no-install-recommends",
        ])
        .arg("-o")
        .arg(format!("Dir::Cache::Archives=/{REPO_DIR}/"))
        .args(packages)
        .run_output()?;
    remove_dir(&repo.join("partial"))?;
    let _ = fs::remove_file(repo.join("lock"));
    let index = Command::new("dpkg-scanpackages")
        .args(["--multiversion", ".", "/dev/null"])
        .current_dir(&repo)
        .run_output()?;
    fs::write(repo.join("Packages"), index.stdout)?;
    fs::write(
        root.join("etc/apt/sources.list"),
        format!("deb [trusted=yes] file:/{REPO_DIR} ./\n"),
    )?;
    for entry in fs::read_dir(root.join("var/lib/apt/lists"))? {
        let p = entry?.path();
        if p.is_file() {
            fs::remove_file(p)?;
        }
    }
    chroot(root)
        .args(["apt-get", "-q", "update"])
        .run_output()?;
    chroot(root).args(["apt-get", "clean"]).run_output()?;
    Ok(())
}

/// Settings that make the guest boot and install fast, and give it network and SSH.
pub(super) fn tune(root: &Path) -> Result<()> {
    let write = |rel: &str, text: &str| -> Result<()> {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap())?;
        fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
    };
    write("etc/hostname", "virthost-e2e\n")?;
    write(
        "etc/hosts",
        "127.0.0.1 localhost\n127.0.1.1 virthost-e2e\n::1 localhost\n",
    )?;
    write("etc/fstab", "/dev/vda / ext4 rw,errors=remount-ro 0 1\n")?;
    // The guest has no DNS (restrict=on); an empty resolv.conf fails lookups at once.
    write("etc/resolv.conf", "")?;
    // With direct kernel boot the image's initramfs is never used again: rebuilding it on each
    // kernel-module package install cost 227 s (ENVIRONMENT.md).
    let conf = "etc/initramfs-tools/update-initramfs.conf";
    let text = fs::read_to_string(root.join(conf)).unwrap_or_default();
    write(
        conf,
        &format!(
            "{}\nupdate_initramfs=no\n",
            text.replace("update_initramfs=yes", "")
        ),
    )?;
    // No fsync per file, and no documentation or translations unpacked: less I/O for the
    // in-guest install, which dominates a run under TCG.
    write(
        "etc/dpkg/dpkg.cfg.d/virthost-e2e",
        "force-unsafe-io\n\
         path-exclude=/usr/share/doc/*\n\
         path-include=/usr/share/doc/*/copyright\n\
         path-exclude=/usr/share/man/*\n\
         path-exclude=/usr/share/info/*\n\
         path-exclude=/usr/share/locale/*\n\
         path-include=/usr/share/locale/locale.alias\n",
    )?;
    let mut sel = chroot(root);
    sel.arg("debconf-set-selections").stdin(Stdio::piped());
    let mut child = sel.spawn().context("debconf-set-selections")?;
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"man-db man-db/auto-update boolean false\n",
    )?;
    drop(child.stdin.take());
    if !child.wait()?.success() {
        bail!("debconf-set-selections failed");
    }
    let _ = fs::remove_file(root.join("var/lib/man-db/auto-update"));
    write(
        "etc/ssh/sshd_config.d/virthost-e2e.conf",
        "UseDNS no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n",
    )?;
    write(
        "etc/systemd/network/80-virthost-e2e.network",
        "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n",
    )?;
    chroot(root)
        .args(["systemctl", "enable", "systemd-networkd.service"])
        .run_output()?;
    // The guest never waits for "network online"; don't spend boot time on it.
    chroot(root)
        .args([
            "systemctl",
            "disable",
            "systemd-networkd-wait-online.service",
        ])
        .run_output()?;
    Ok(())
}

/// The built image's only way in: a oneshot unit that writes root's `authorized_keys` at
/// every boot from the kernel command line (`virthost.root_key=<base64 blob>`).
fn key_from_cmdline(root: &Path) -> Result<()> {
    let write = |rel: &str, text: &str| -> Result<()> {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap())?;
        fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
    };
    write(
        "usr/local/sbin/virthost-e2e-key",
        "#!/bin/sh\n\
         # Writes root's authorized key from the kernel command line (virthost.root_key=BLOB).\n\
         set -eu\n\
         for w in $(cat /proc/cmdline); do\n\
         \tcase \"$w\" in virthost.root_key=*) key=${w#virthost.root_key=} ;; esac\n\
         done\n\
         [ -n \"${key:-}\" ] || exit 0\n\
         install -d -m 0700 /root/.ssh\n\
         printf 'ssh-ed25519 %s virthost-e2e\\n' \"$key\" > /root/.ssh/authorized_keys\n\
         chmod 0600 /root/.ssh/authorized_keys\n",
    )?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(
        root.join("usr/local/sbin/virthost-e2e-key"),
        fs::Permissions::from_mode(0o755),
    )?;
    write(
        "etc/systemd/system/virthost-e2e-key.service",
        "[Unit]\nDescription=virthost e2e: root key from the kernel command line\n\
         Before=ssh.service\n\n[Service]\nType=oneshot\nExecStart=/usr/local/sbin/virthost-e2e-key\n\n\
         [Install]\nWantedBy=multi-user.target\n",
    )?;
    chroot(root)
        .args(["systemctl", "enable", "virthost-e2e-key.service"])
        .run_output()?;
    Ok(())
}

pub(super) fn copy_boot_file(root: &Path, prefix: &str, to: &Path) -> Result<()> {
    let boot = root.join("boot");
    let mut found: Vec<PathBuf> = fs::read_dir(&boot)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    found.sort();
    let Some(src) = found.last() else {
        bail!("no {prefix}* in {}", boot.display());
    };
    fs::copy(src, to).with_context(|| format!("copying {}", src.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_takes_packages_from_the_shared_model() {
        let r = Recipe::current(Distro::Debian12);
        for p in [
            "libvirt-daemon-system",
            "qemu-system-x86",
            "dnsmasq-base",
            "polkitd",
        ] {
            assert!(
                r.packages.iter().any(|x| x == p),
                "{p} missing from {:?}",
                r.packages
            );
        }
        assert!(r.include.iter().any(|x| x == "libpam-systemd"));
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mountinfo("/a\\040b/c"), "/a b/c");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/end\\04"), "/end\\04");
    }

    #[test]
    fn each_release_gets_its_suite_and_what_its_minbase_lacks() {
        let t = Recipe::current(Distro::Debian13);
        assert_eq!(t.suite, "trixie");
        assert!(t.include.iter().any(|x| x == "e2fsprogs"));
        assert!(t.packages.iter().any(|x| x == "ovmf"), "{:?}", t.packages);
        assert_eq!(Recipe::current(Distro::Debian12).suite, "bookworm");
        assert_eq!(Distro::Debian13.name(), "Debian 13 (trixie)");
    }

    #[test]
    fn recipe_hash_is_stable_and_content_keyed() {
        let a = Recipe::current(Distro::Debian12);
        assert_eq!(a.hash(), Recipe::current(Distro::Debian12).hash());
        assert_eq!(a.hash().len(), 16);
        assert_ne!(a.hash(), Recipe::current(Distro::Debian13).hash());
        let mut b = Recipe::current(Distro::Debian12);
        b.packages.push("extra".into());
        assert_ne!(a.hash(), b.hash());
    }
}
