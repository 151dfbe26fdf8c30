//! `validate`: proves a host is ready to run libvirt VMs as iPXE-booted virtual bare metal,
//! checking it against the one shared model in `bootstrap::desired`.

pub mod check;
pub mod options;
