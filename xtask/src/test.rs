//! `cargo xtask test`: the project's test command. On a fresh machine it installs what the
//! tests need (`xtask/host/install-deps.sh`), starts the services they talk to
//! (`xtask/host/start-services.sh`: D-Bus, polkitd, virtlogd, libvirtd in a network
//! namespace), then runs the whole workspace's tests with `VIRTHOST_REQUIRE_REAL=1`, so a
//! real-system test whose daemon is missing fails instead of skipping.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::dist::workspace_root;

#[derive(clap::Args)]
pub struct Args {
    /// Arguments passed to `cargo test` after `--workspace` (e.g. a test name filter).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cargo_args: Vec<String>,
}

pub fn run(args: &Args) -> Result<()> {
    let root = workspace_root();
    if !nix::unistd::Uid::effective().is_root() {
        bail!(
            "the test suite drives a real libvirtd, polkit and package manager and needs root; \
             run it as root (CI does), e.g. `sudo -E cargo xtask test`"
        );
    }
    for script in ["install-deps.sh", "start-services.sh"] {
        let path = root.join("xtask/host").join(script);
        let status = Command::new("bash")
            .arg(&path)
            .status()
            .with_context(|| format!("running {}", path.display()))?;
        if !status.success() {
            bail!("{} failed ({status})", path.display());
        }
    }
    let status = crate::dist::cargo()
        .current_dir(&root)
        .args(["test", "--workspace"])
        .args(&args.cargo_args)
        .env("VIRTHOST_REQUIRE_REAL", "1")
        .env("VIRTHOST_TEST_LIBVIRT", "1")
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}
