//! The binaries the e2e run copies into the VM: `cargo xtask dist` (xtask/src/dist.rs), or,
//! with `--no-build`, whatever target/dist/ already holds.

pub use crate::dist::Dist;
use anyhow::{ensure, Result};

/// `cargo xtask dist`: target/dist/bootstrap (static-pie) and target/dist/validate.
pub fn dist() -> Result<Dist> {
    crate::dist::run()
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
