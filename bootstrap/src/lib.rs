//! The shared model of a ready libvirt hypervisor, and the host facts both `bootstrap` and
//! `validate` read. `bootstrap` (the binary) converges a host to [`desired`]; `validate`
//! checks a host against it.

pub mod accounts;
pub mod argfile;
pub mod assess;
pub mod atomic;
pub mod cli;
pub mod cmd;
pub mod cpu;
pub mod desired;
pub mod dpkglock;
pub mod facts;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixture;
pub mod hostlock;
pub mod hostroot;
pub mod ipxe;
pub mod os;
pub mod pkg;
pub mod plan;
pub mod render;
pub mod report;
pub mod sshkey;
pub mod step;
pub mod steps;
pub mod username;
pub mod virsh;
