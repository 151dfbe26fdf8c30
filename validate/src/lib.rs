//! `validate`: proves a host is ready to run libvirt VMs as iPXE-booted virtual bare metal,
//! checking it against the one shared model in `virthost_model::desired`.

pub mod accounts;
pub mod assessed;
pub mod asuser;
pub mod boot;
pub mod check;
pub mod checks;
pub mod cli;
pub mod connection;
pub mod options;
pub mod power;
pub mod probe;
pub mod report;
pub mod run;
