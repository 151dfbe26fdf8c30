//! `images.access`: QEMU's user can reach the VM images. The most common "Permission
//! denied" of these deployments is a pool or image path QEMU's user (`libvirt-qemu`, `qemu`)
//! cannot traverse: images under a 0700 home, a 0750 directory of another group. The probe
//! does what libvirt does with an image: root creates a file in the pool's directory and
//! gives it to QEMU's user (libvirt's dynamic ownership), then a child process with QEMU's
//! uid and groups opens it read-write by its full path, writes and reads it back; root
//! removes it. `images.selinux`: on a host with SELinux enabled the directory's label is one
//! QEMU's confined domain may use.

use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Host;
use crate::accounts::Account;
use crate::check::CheckResult;

/// SELinux types QEMU (svirt) may use for image directories and files.
pub const QEMU_LABELS: &[&str] = &["virt_image_t", "svirt_image_t", "virt_content_t", "nfs_t"];

/// The directory (of `dir` and its parents) that `uid`/`gids` cannot traverse, from modes
/// alone: the first one without an execute bit that applies.
pub fn blocked_at(dir: &Path, uid: u32, gids: &[u32]) -> Option<(PathBuf, String)> {
    let mut p = PathBuf::from("/");
    for c in dir.components().skip(1) {
        p.push(c);
        let Ok(m) = std::fs::metadata(&p) else {
            return Some((p.clone(), "missing".into()));
        };
        let bits = if m.uid() == uid {
            m.mode() >> 6
        } else if gids.contains(&m.gid()) {
            m.mode() >> 3
        } else {
            m.mode()
        } & 0o7;
        if uid != 0 && bits & 0o1 == 0 {
            return Some((
                p.clone(),
                format!("{:04o} {}:{}", m.mode() & 0o7777, m.uid(), m.gid()),
            ));
        }
    }
    None
}

/// QEMU's user (`name`, from `from`: qemu.conf or the platform's default) is not in
/// `/etc/passwd`.
#[derive(Debug, thiserror::Error)]
#[error("QEMU's user {name} ({from}) is not in /etc/passwd")]
struct NoQemuUser {
    name: String,
    from: String,
}

/// QEMU's account, with qemu.conf's `group` among its groups (which also stands for its
/// primary group).
fn qemu_account(host: &Host) -> Result<Account, NoQemuUser> {
    let q = super::kvm::qemu_identity(host);
    let (user, groups) = q.account(&host.accounts).ok_or_else(|| NoQemuUser {
        name: q.user.clone(),
        from: q.source.to_string(),
    })?;
    let gid = q.group_gid(&host.accounts).unwrap_or(user.gid);
    Ok(Account {
        name: user.name.clone(),
        uid: user.uid,
        gid,
        home: user.home.clone(),
        groups,
    })
}

/// `images.access` for the images directory `dir` (the pool's target).
pub fn access(host: &Host, dir: &Path) -> CheckResult {
    const ID: &str = "images.access";
    let account = match qemu_account(host) {
        Ok(a) => a,
        Err(e) => return CheckResult::fail(ID, e.to_string(), super::kvm::NO_QEMU_USER_HINT),
    };
    if !nix::unistd::geteuid().is_root() {
        return CheckResult::warn(
            ID,
            format!(
                "not checked: acting as QEMU's user {} needs root",
                account.name
            ),
            "run validate as root",
        );
    }
    if !dir.is_dir() {
        return CheckResult::fail(
            ID,
            format!("{}: the images directory does not exist", dir.display()),
            "run bootstrap (its `pool` step builds the pool's directory)",
        );
    }
    // A probe file a killed validate left in the images directory goes first.
    for (name, path) in virthost_model::hostroot::HostRoot::system()
        .list_dir(&dir.display().to_string())
        .unwrap_or_default()
    {
        let ours = name.strip_prefix('.').filter(|n| n.ends_with("-access"));
        if ours.is_some_and(crate::boot::owner_dead) {
            let _ = std::fs::remove_file(path);
        }
    }
    let probe = dir.join(format!(".virthost-validate-{}-access", std::process::id()));
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)
        .and_then(|_| std::os::unix::fs::chown(&probe, Some(account.uid), Some(account.gid)));
    if let Err(e) = made {
        let _ = std::fs::remove_file(&probe);
        return CheckResult::fail(
            ID,
            format!("cannot create a probe file in {}: {e}", dir.display()),
            "libvirt (root) must be able to create image files there: check the filesystem (read-only? full?)",
        );
    }
    let path = probe.clone();
    // Only displayed (the child answers its text): anyhow, each step its context.
    let answer = crate::asuser::run_as(&account, Duration::from_secs(10), move || {
        use anyhow::Context;
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .context("open read-write")?;
        f.write_all(b"virthost").context("write")?;
        f.rewind().context("seek")?;
        let mut back = String::new();
        f.read_to_string(&mut back).context("read")?;
        anyhow::ensure!(back == "virthost", "read back something else");
        Ok(String::new())
    });
    let _ = std::fs::remove_file(&probe);
    let who = format!("QEMU's user {} (uid {})", account.name, account.uid);
    match answer {
        Ok(_) => CheckResult::pass(
            ID,
            format!("{who} reads and writes an image file in {}", dir.display()),
        ),
        Err(e) => {
            let (detail, hint) = match blocked_at(dir, account.uid, &account.groups) {
                Some((p, how)) => (
                    format!("{who} cannot reach images in {}: it may not traverse {} ({how}); {e}", dir.display(), p.display()),
                    format!(
                        "let it through: `chmod o+x {}` (or keep images under /var/lib/libvirt/images, which bootstrap's pool uses)",
                        p.display()
                    ),
                ),
                None => (
                    format!("{who} cannot open an image file in {}: {e}", dir.display()),
                    "check ACLs, the mount's options (nosuid/noexec do not matter; root_squash NFS does) and SELinux (images.selinux)".to_string(),
                ),
            };
            CheckResult::fail(ID, detail, hint)
        }
    }
}

/// The SELinux type of a path's label (`system_u:object_r:virt_image_t:s0` -> `virt_image_t`).
pub fn selinux_type(label: &str) -> Option<&str> {
    label.trim_end_matches('\0').split(':').nth(2)
}

/// `images.selinux` from whether SELinux is enabled and the directory's label.
pub fn selinux_result(dir: &Path, enabled: bool, label: Option<&str>) -> CheckResult {
    const ID: &str = "images.selinux";
    if !enabled {
        return CheckResult::pass(ID, "SELinux is not enabled: no label to check");
    }
    let hint = format!(
        "label it for QEMU: `semanage fcontext -a -t virt_image_t '{}(/.*)?' && restorecon -Rv {}`",
        dir.display(),
        dir.display()
    );
    match label.and_then(selinux_type) {
        Some(t) if QEMU_LABELS.contains(&t) => {
            CheckResult::pass(ID, format!("{} is labelled {t}", dir.display()))
        }
        Some(t) => CheckResult::fail(
            ID,
            format!(
                "{} is labelled {t}, which QEMU's confined domain may not use",
                dir.display()
            ),
            hint,
        ),
        None => CheckResult::warn(
            ID,
            format!("{}: no SELinux label could be read", dir.display()),
            hint,
        ),
    }
}

/// The `security.selinux` attribute of a path.
pub fn read_label(path: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: a valid C string and a buffer of the length passed.
    let n = unsafe {
        nix::libc::getxattr(
            c.as_ptr(),
            c"security.selinux".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n > 0).then(|| String::from_utf8_lossy(&buf[..n as usize]).into_owned())
}

/// Both checks for the images directory `dir` on this host.
pub fn run(host: &Host, dir: &Path) -> Vec<CheckResult> {
    let enabled = host.probe.root().exists("/sys/fs/selinux/enforce");
    vec![
        access(host, dir),
        selinux_result(dir, enabled, read_label(dir).as_deref()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selinux_labels() {
        let d = Path::new("/var/lib/libvirt/images");
        assert_eq!(
            selinux_type("system_u:object_r:virt_image_t:s0\0"),
            Some("virt_image_t")
        );
        let ok = selinux_result(d, true, Some("system_u:object_r:virt_image_t:s0"));
        assert_eq!(ok.status, crate::check::Status::Pass);
        let bad = selinux_result(d, true, Some("unconfined_u:object_r:user_home_t:s0"));
        assert_eq!(bad.status, crate::check::Status::Fail);
        assert!(
            bad.detail.contains("user_home_t") && bad.hint.unwrap().contains("semanage fcontext")
        );
        assert_eq!(
            selinux_result(d, false, None).status,
            crate::check::Status::Pass
        );
        assert_eq!(
            selinux_result(d, true, None).status,
            crate::check::Status::Warn
        );
    }
}
