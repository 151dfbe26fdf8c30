//! Files written so that a reader (or the next run after a SIGKILL) sees either the old
//! content or the new, never a half-written file: a temp file in the same directory,
//! written, given its mode and owner, fsynced, renamed over the target, and the directory
//! fsynced. Temp files carry the [`TMP_PREFIX`] and never the target's extension, so the
//! directories' readers (`sudoers.d`, `rules.d`, `modprobe.d`) ignore them; a temp left by a
//! killed run is removed by the next write in that directory.
//!
//! Paths here are real paths (already mapped through a [`crate::hostroot::HostRoot`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context, Result};

/// Name prefix of every temp file this module creates.
pub const TMP_PREFIX: &str = ".virthost-tmp-";

/// Numeric owner of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };
}

/// What a file should be: its content, mode and owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted<'a> {
    pub content: &'a [u8],
    pub mode: u32,
    pub owner: Owner,
}

/// The differences between `path` and `want`, one line each (empty: nothing to do).
/// A symlink at `path` is an error: these files are never written through a link.
pub fn diff(path: &Path, want: &Wanted) -> Result<Vec<String>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(vec![format!(
                "create {} (mode {:04o}, owner {}:{})",
                path.display(),
                want.mode,
                want.owner.uid,
                want.owner.gid
            )])
        }
        Err(e) => return Err(e).with_context(|| format!("{}: cannot stat", path.display())),
    };
    if !meta.file_type().is_file() {
        bail!("{}: exists and is not a regular file", path.display());
    }
    let mut changes = Vec::new();
    let content = fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if content != want.content {
        changes.push(format!("rewrite {}", path.display()));
    }
    changes.extend(meta_diff(path, &meta, want.mode, want.owner));
    Ok(changes)
}

fn meta_diff(path: &Path, meta: &fs::Metadata, mode: u32, owner: Owner) -> Vec<String> {
    let mut changes = Vec::new();
    if meta.mode() & 0o7777 != mode {
        changes.push(format!(
            "chmod {:04o} {} (now {:04o})",
            mode,
            path.display(),
            meta.mode() & 0o7777
        ));
    }
    if (meta.uid(), meta.gid()) != (owner.uid, owner.gid) {
        changes.push(format!(
            "chown {}:{} {} (now {}:{})",
            owner.uid,
            owner.gid,
            path.display(),
            meta.uid(),
            meta.gid()
        ));
    }
    changes
}

/// Makes `path` what `want` says and returns what it changed (empty: nothing was touched).
/// Different content is written atomically; a file whose content is right but whose mode
/// or owner is not is fixed in place.
pub fn ensure(path: &Path, want: &Wanted) -> Result<Vec<String>> {
    ensure_verified(path, want, |_| Ok(()))
}

/// [`ensure`], with `verify` run on the complete temp file (mode and owner already set)
/// before it replaces `path` (`visudo -c -f`). A failed verification leaves `path` as it
/// was and no temp file behind.
pub fn ensure_verified(
    path: &Path,
    want: &Wanted,
    verify: impl FnOnce(&Path) -> Result<()>,
) -> Result<Vec<String>> {
    let changes = diff(path, want)?;
    if changes.is_empty() {
        return Ok(changes);
    }
    let content_differs = fs::read(path).map(|c| c != want.content).unwrap_or(true);
    if content_differs {
        write_verified(path, want, verify)?;
    } else {
        set_mode_owner(path, want.mode, want.owner)?;
    }
    Ok(changes)
}

/// Writes `want` to `path` atomically, whatever is there now.
pub fn write(path: &Path, want: &Wanted) -> Result<()> {
    write_verified(path, want, |_| Ok(()))
}

/// [`write`], with `verify` run on the finished temp file before the rename.
pub fn write_verified(
    path: &Path,
    want: &Wanted,
    verify: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let dir = parent(path)?;
    let name = path
        .file_name()
        .with_context(|| format!("{}: no file name", path.display()))?
        .to_string_lossy()
        .into_owned();
    clean_stale_temps(dir, &name)?;
    let tmp = dir.join(tmp_name(&name));
    let result = write_tmp(&tmp, want)
        .and_then(|()| verify(&tmp))
        .and_then(|()| {
            fs::rename(&tmp, path).with_context(|| {
                format!(
                    "{}: cannot rename {} over it",
                    path.display(),
                    tmp.display()
                )
            })
        });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

fn parent(path: &Path) -> Result<&Path> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => Ok(p),
        _ => bail!("{}: no parent directory", path.display()),
    }
}

fn tmp_name(target: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    // `<prefix><name>.<pid>.<n>`: never ends in the target's extension, so `*.rules`,
    // `*.conf` readers skip it; sudo skips every name with a dot.
    format!(
        "{TMP_PREFIX}{target}.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn write_tmp(tmp: &Path, want: &Wanted) -> Result<()> {
    let ctx = || format!("{}: cannot write temp file", tmp.display());
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .with_context(ctx)?;
    f.write_all(want.content).with_context(ctx)?;
    std::os::unix::fs::fchown(&f, Some(want.owner.uid), Some(want.owner.gid)).with_context(
        || {
            format!(
                "{}: cannot chown to {}:{}",
                tmp.display(),
                want.owner.uid,
                want.owner.gid
            )
        },
    )?;
    // After chown, which clears set-id bits.
    f.set_permissions(fs::Permissions::from_mode(want.mode))
        .with_context(|| format!("{}: cannot chmod {:04o}", tmp.display(), want.mode))?;
    f.sync_all().with_context(ctx)?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("{}: cannot fsync directory", dir.display()))
}

/// Sets mode and owner of an existing file or directory, through a descriptor opened with
/// `O_NOFOLLOW`: a symlink put in its place (in a directory its user controls, `~/.ssh`)
/// fails the open instead of redirecting the chown or chmod to another file. A regular file
/// with more than one hard link is refused: its other name may be any file of the host.
pub fn set_mode_owner(path: &Path, mode: u32, owner: Owner) -> Result<()> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
        .with_context(|| {
            format!(
                "{}: cannot open (without following a symlink)",
                path.display()
            )
        })?;
    let m = f
        .metadata()
        .with_context(|| format!("{}: cannot stat", path.display()))?;
    if m.is_file() && m.nlink() > 1 {
        bail!(
            "{}: has {} hard links, so another name of it may be any file of the host: \
             refusing to change its owner or mode; remove the extra link and run again",
            path.display(),
            m.nlink()
        );
    }
    std::os::unix::fs::fchown(&f, Some(owner.uid), Some(owner.gid)).with_context(|| {
        format!(
            "{}: cannot chown to {}:{}",
            path.display(),
            owner.uid,
            owner.gid
        )
    })?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .with_context(|| format!("{}: cannot chmod {:04o}", path.display(), mode))
}

/// Removes temp files a killed run left for `target` in `dir`. Returns how many.
pub fn clean_stale_temps(dir: &Path, target: &str) -> Result<usize> {
    let prefix = format!("{TMP_PREFIX}{target}.");
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot list", dir.display())),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.with_context(|| format!("{}: cannot list", dir.display()))?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let p = entry.path();
            fs::remove_file(&p)
                .with_context(|| format!("{}: cannot remove stale temp file", p.display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The directories of `path` (a directory) that do not exist yet, outermost first.
pub fn missing_dirs(path: &Path) -> Vec<PathBuf> {
    let mut missing: Vec<PathBuf> = path
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && fs::symlink_metadata(p).is_err())
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    missing
}

/// Creates `path` and any missing parents with `mode` and `owner` (existing directories
/// are left alone). Returns the directories created.
pub fn create_dirs(path: &Path, mode: u32, owner: Owner) -> Result<Vec<PathBuf>> {
    let missing = missing_dirs(path);
    for dir in &missing {
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("{}: cannot create", dir.display())),
        }
        set_mode_owner(dir, mode, owner)?;
        if let Some(p) = dir.parent() {
            sync_dir(p)?;
        }
    }
    if !path.is_dir() {
        bail!("{}: exists and is not a directory", path.display());
    }
    Ok(missing)
}

/// A directory with exact mode and owner: created when missing, fixed when not.
/// A symlink is refused. Returns what changed.
pub fn ensure_dir(path: &Path, mode: u32, owner: Owner) -> Result<Vec<String>> {
    let changes = dir_diff(path, mode, owner)?;
    if changes.is_empty() {
        return Ok(changes);
    }
    if fs::symlink_metadata(path).is_err() {
        create_dirs(path, mode, owner)?;
    } else {
        set_mode_owner(path, mode, owner)?;
    }
    Ok(changes)
}

/// What [`ensure_dir`] would change.
pub fn dir_diff(path: &Path, mode: u32, owner: Owner) -> Result<Vec<String>> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => Ok(meta_diff(path, &m, mode, owner)),
        Ok(_) => bail!("{}: exists and is not a directory", path.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(vec![format!(
            "create directory {} (mode {:04o}, owner {}:{})",
            path.display(),
            mode,
            owner.uid,
            owner.gid
        )]),
        Err(e) => Err(e).with_context(|| format!("{}: cannot stat", path.display())),
    }
}

/// The lines of `wanted` that are not lines of `existing` (compared by `same`), in order,
/// without repeats.
pub fn missing_lines<'a>(
    existing: &str,
    wanted: &'a [String],
    same: impl Fn(&str, &str) -> bool,
) -> Vec<&'a str> {
    let mut missing: Vec<&str> = Vec::new();
    for w in wanted {
        let present = existing.lines().any(|l| same(l, w)) || missing.iter().any(|m| same(m, w));
        if !present {
            missing.push(w);
        }
    }
    missing
}

/// `existing` with `add` appended, one per line: every existing line is kept, in order,
/// byte for byte; a missing final newline is supplied before the new lines.
pub fn append_lines(existing: &str, add: &[&str]) -> String {
    let mut out = existing.to_string();
    if add.is_empty() {
        return out;
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for line in add {
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    const USER: Owner = Owner {
        uid: 1234,
        gid: 1235,
    };

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_with_mode_and_owner_then_does_nothing() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a.conf");
        let want = Wanted {
            content: b"x=1\n",
            mode: 0o640,
            owner: USER,
        };
        let changes = ensure(&p, &want).unwrap();
        assert_eq!(changes.len(), 1, "{changes:?}");
        let m = fs::metadata(&p).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o640, 1234, 1235));
        assert_eq!(fs::read(&p).unwrap(), b"x=1\n");
        assert!(diff(&p, &want).unwrap().is_empty());
        let (ino, mtime) = (m.ino(), m.mtime_nsec());
        assert!(ensure(&p, &want).unwrap().is_empty());
        let m2 = fs::metadata(&p).unwrap();
        assert_eq!((m2.ino(), m2.mtime_nsec()), (ino, mtime));
        assert_eq!(names(t.path()), ["a.conf"]);
    }

    #[test]
    fn fixes_mode_and_owner_in_place() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        fs::write(&p, "same\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
        let ino = fs::metadata(&p).unwrap().ino();
        let want = Wanted {
            content: b"same\n",
            mode: 0o600,
            owner: USER,
        };
        let changes = ensure(&p, &want).unwrap();
        assert_eq!(changes.len(), 2, "{changes:?}");
        let m = fs::metadata(&p).unwrap();
        assert_eq!((m.ino(), m.mode() & 0o7777, m.uid()), (ino, 0o600, 1234));
    }

    #[test]
    fn failed_verification_leaves_target_and_no_temp() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("sudo");
        fs::write(&p, "old\n").unwrap();
        let want = Wanted {
            content: b"new\n",
            mode: 0o440,
            owner: Owner::ROOT,
        };
        let mut seen = None;
        let err = ensure_verified(&p, &want, |tmp| {
            // The temp file is complete, with its final mode, when verified.
            seen = Some((
                fs::read(tmp).unwrap(),
                fs::metadata(tmp).unwrap().mode() & 0o7777,
                tmp.file_name().unwrap().to_string_lossy().into_owned(),
            ));
            bail!("syntax error")
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("syntax error"));
        let (content, mode, name) = seen.unwrap();
        assert_eq!((content.as_slice(), mode), (&b"new\n"[..], 0o440));
        assert!(name.starts_with(TMP_PREFIX) && !name.ends_with("sudo"));
        assert_eq!(fs::read(&p).unwrap(), b"old\n");
        assert_eq!(names(t.path()), ["sudo"]);
    }

    #[test]
    fn stale_temps_of_a_killed_run_are_cleaned() {
        let t = tempfile::tempdir().unwrap();
        let stale = t.path().join(format!("{TMP_PREFIX}x.rules.99999.0"));
        fs::write(&stale, "half").unwrap();
        let other = t.path().join(format!("{TMP_PREFIX}other.rules.1.0"));
        fs::write(&other, "not ours to judge").unwrap();
        let p = t.path().join("x.rules");
        write(
            &p,
            &Wanted {
                content: b"full\n",
                mode: 0o644,
                owner: Owner::ROOT,
            },
        )
        .unwrap();
        assert!(!stale.exists());
        assert!(other.exists());
        assert_eq!(fs::read_to_string(&p).unwrap(), "full\n");
    }

    #[test]
    fn refuses_symlinks_and_directories() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("elsewhere");
        fs::write(&target, "keep\n").unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let want = Wanted {
            content: b"x\n",
            mode: 0o600,
            owner: Owner::ROOT,
        };
        let err = ensure(&link, &want).unwrap_err().to_string();
        assert!(
            err.contains("not a regular file") && err.contains("link"),
            "{err}"
        );
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep\n");
        assert!(ensure(t.path(), &want).is_err());
    }

    #[test]
    fn creates_missing_dirs_with_mode_and_owner() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b/c");
        let created = create_dirs(&d, 0o750, USER).unwrap();
        assert_eq!(created.len(), 3);
        for p in &created {
            let m = fs::metadata(p).unwrap();
            assert_eq!((m.mode() & 0o7777, m.uid()), (0o750, 1234));
        }
        assert!(create_dirs(&d, 0o750, USER).unwrap().is_empty());
        // ensure_dir fixes an existing directory's mode.
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(ensure_dir(&d, 0o700, USER).unwrap().len(), 1);
        assert!(ensure_dir(&d, 0o700, USER).unwrap().is_empty());
        assert_eq!(fs::metadata(&d).unwrap().mode() & 0o7777, 0o700);
    }

    #[test]
    fn lines_are_appended_and_existing_ones_kept() {
        let eq = |a: &str, b: &str| a.trim() == b.trim();
        let cases: &[(&str, &[&str], &str)] = &[
            ("", &["a"], "a\n"),
            ("x\n", &["a", "b"], "x\na\nb\n"),
            ("x", &["a"], "x\na\n"),
            ("b\n# c\na\n", &["a", "b"], "b\n# c\na\n"),
            ("  a  \n", &["a", "a", "z"], "  a  \nz\n"),
        ];
        for (existing, wanted, expect) in cases {
            let wanted: Vec<String> = wanted.iter().map(|s| s.to_string()).collect();
            let missing = missing_lines(existing, &wanted, eq);
            assert_eq!(&append_lines(existing, &missing), expect, "{existing:?}");
        }
    }
}
