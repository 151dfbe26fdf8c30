//! `cargo xtask dist`: `target/dist/bootstrap`, a static-pie (glibc, `+crt-static`; no ELF
//! interpreter, checked here), and `target/dist/validate`, dynamically linked (libvirt
//! cannot be linked statically).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The glibc target; a static binary needs it named explicitly (ENVIRONMENT.md).
const TARGET: &str = "x86_64-unknown-linux-gnu";
/// The size goal for `bootstrap`.
const BOOTSTRAP_SIZE_GOAL: u64 = 4 * 1024 * 1024;

/// The built binaries (`cargo xtask e2e` copies them to the hypervisor under test).
#[allow(dead_code)]
pub struct Dist {
    pub bootstrap: PathBuf,
    pub validate: PathBuf,
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, or `target/` in the workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The cargo that runs this xtask.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

pub fn run() -> Result<Dist> {
    let target = target_dir();
    let dist_dir = target.join("dist");
    std::fs::create_dir_all(&dist_dir)?;

    // RUSTFLAGS with an explicit --target apply to the target only, not to build scripts
    // and proc macros (ENVIRONMENT.md: without --target those fail to build).
    build(
        "bootstrap",
        &["--target", TARGET],
        Some("-C target-feature=+crt-static -C relocation-model=pie"),
    )?;
    build("validate", &[], None)?;

    let bootstrap = dist_dir.join("bootstrap");
    let validate = dist_dir.join("validate");
    copy(
        &target.join(format!("{TARGET}/release/bootstrap")),
        &bootstrap,
    )?;
    copy(&target.join("release/validate"), &validate)?;

    let elf =
        std::fs::read(&bootstrap).with_context(|| format!("reading {}", bootstrap.display()))?;
    let kind = elf_kind(&elf).with_context(|| format!("inspecting {}", bootstrap.display()))?;
    if kind != ElfKind::StaticPie {
        bail!(
            "{} is {kind:?}, not a static-pie: it would not run on hosts with another glibc",
            bootstrap.display()
        );
    }
    let size = elf.len() as u64;
    println!(
        "dist: {} static-pie, {:.2} MiB (goal: at most {} MiB){}",
        bootstrap.display(),
        size as f64 / (1024.0 * 1024.0),
        BOOTSTRAP_SIZE_GOAL / (1024 * 1024),
        if size > BOOTSTRAP_SIZE_GOAL {
            " OVER GOAL"
        } else {
            ""
        }
    );
    refuses_fixtures(&validate)?;
    let vsize = std::fs::metadata(&validate)?.len();
    println!(
        "dist: {} dynamic, {:.2} MiB",
        validate.display(),
        vsize as f64 / (1024.0 * 1024.0)
    );
    Ok(Dist {
        bootstrap,
        validate,
    })
}

/// The shipped validate has no test-only code: its hidden `--fixture` flag (the `fixtures`
/// feature, which only dev-dependencies turn on) is an unknown argument there.
fn refuses_fixtures(validate: &Path) -> Result<()> {
    let out = Command::new(validate)
        .args(["--fixture", "/nonexistent"])
        .output()
        .with_context(|| format!("running {}", validate.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(2) || !stderr.contains("unexpected argument '--fixture'") {
        bail!(
            "{} accepts the test-only --fixture flag ({}): the `fixtures` feature leaked into \
             the release build",
            validate.display(),
            out.status
        );
    }
    Ok(())
}

/// `cargo build --release` of one binary of the workspace.
fn build(bin: &str, extra: &[&str], rustflags: Option<&str>) -> Result<()> {
    let mut c = cargo();
    c.current_dir(workspace_root())
        .args(["build", "--release", "--package", bin, "--bin", bin])
        .args(extra);
    if let Some(flags) = rustflags {
        c.env("RUSTFLAGS", flags);
    }
    let status = c
        .status()
        .with_context(|| format!("running cargo build for {bin}"))?;
    if !status.success() {
        bail!("cargo build of {bin} failed ({status})");
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp)
        .with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
    std::fs::rename(&tmp, to)
        .with_context(|| format!("renaming {} to {}", tmp.display(), to.display()))?;
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
pub enum ElfKind {
    /// ET_DYN without PT_INTERP.
    StaticPie,
    /// ET_EXEC without PT_INTERP.
    Static,
    /// Has PT_INTERP: needs the dynamic loader.
    Dynamic,
}

/// Classifies a 64-bit little-endian ELF executable by its type and program headers.
pub fn elf_kind(elf: &[u8]) -> Result<ElfKind> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" {
        bail!("not an ELF file");
    }
    if elf[4] != 2 || elf[5] != 1 {
        bail!("not a 64-bit little-endian ELF file");
    }
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    let e_type = u16_at(16);
    let phoff = u64_at(32) as usize;
    let phentsize = u16_at(54) as usize;
    let phnum = u16_at(56) as usize;
    const PT_INTERP: u32 = 3;
    let mut interp = false;
    for i in 0..phnum {
        let off = phoff + i * phentsize;
        if off + 4 > elf.len() {
            bail!("truncated program header table");
        }
        if u32_at(off) == PT_INTERP {
            interp = true;
        }
    }
    Ok(match (interp, e_type) {
        (true, _) => ElfKind::Dynamic,
        (false, 3) => ElfKind::StaticPie,
        (false, 2) => ElfKind::Static,
        (false, t) => bail!("unexpected ELF type {t}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_xtask_is_dynamic_and_garbage_is_refused() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(elf_kind(&me).unwrap(), ElfKind::Dynamic);
        assert!(elf_kind(b"#!/bin/sh\n").is_err());
    }
}
