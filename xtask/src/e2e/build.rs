//! Building the binaries the e2e run copies into the VM.
//!
//! TODO(lead): when `xtask/src/dist.rs` lands, make `dist()` call it; this is the one place
//! that knows how the release binaries are built.

use crate::cmd::CommandExt;
use anyhow::{ensure, Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// Where the binaries are after a build.
pub struct Dist {
    pub bootstrap: PathBuf,
    pub validate: PathBuf,
}

/// The binaries of an earlier build (`--no-build`), e.g. from CI's `cargo xtask dist`.
pub fn existing() -> Result<Dist> {
    let dist = super::target_dir().join("dist");
    let out = Dist {
        bootstrap: dist.join("bootstrap"),
        validate: dist.join("validate"),
    };
    for p in [&out.bootstrap, &out.validate] {
        ensure!(
            p.is_file(),
            "--no-build: {} does not exist (run `cargo xtask dist`)",
            p.display()
        );
    }
    Ok(out)
}

const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds target/dist/bootstrap (static-pie: glibc + crt-static) and target/dist/validate
/// (links libvirt, so dynamic). See ENVIRONMENT.md: only the gnu target exists, a static binary
/// needs an explicit `--target`.
pub fn dist() -> Result<Dist> {
    let root = super::workspace_root();
    let target = super::target_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // bootstrap gets its own target dir: different RUSTFLAGS in one dir make cargo rebuild the
    // shared dependencies back and forth.
    let static_dir = target.join("static");
    Command::new(&cargo)
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "-p",
            "bootstrap",
            "--bin",
            "bootstrap",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(&static_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .run()
        .context("building the static bootstrap")?;
    Command::new(&cargo)
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "-p",
            "validate",
            "--bin",
            "validate",
            "--target",
            TARGET,
        ])
        .env_remove("RUSTFLAGS")
        .run()
        .context("building validate")?;
    let dist = target.join("dist");
    std::fs::create_dir_all(&dist)?;
    let out = Dist {
        bootstrap: dist.join("bootstrap"),
        validate: dist.join("validate"),
    };
    for (from, to) in [
        (
            static_dir.join(TARGET).join("release/bootstrap"),
            &out.bootstrap,
        ),
        (target.join(TARGET).join("release/validate"), &out.validate),
    ] {
        ensure!(from.is_file(), "build produced no {}", from.display());
        std::fs::copy(&from, to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    Ok(out)
}
