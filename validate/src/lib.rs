//! `validate`: proves a host is ready to run libvirt VMs as iPXE-booted virtual bare metal.

pub mod boot;
pub mod check;
pub mod checks;
// Stand-in until the real `options.rs` (branch `validate`) is merged: then `pub mod options;`.
#[path = "boot/options_stand_in.rs"]
pub mod options;
