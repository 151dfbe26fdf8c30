//! The shared model of a ready libvirt hypervisor, read by both binaries: host facts (read
//! only), the desired state, and per requirement the one assessment of whether it is met
//! (`docs/architecture.md`). No libvirt library (the `bootstrap` binary is static) and no
//! apply code: `bootstrap` carries out the assessments' actions, `validate` renders them.

pub mod accounts;
pub mod argfile;
pub mod assess;
pub mod atomic;
pub mod cmd;
pub mod cpu;
pub mod desired;
pub mod dpkglock;
pub mod facts;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixture;
pub mod hostroot;
pub mod ipxe;
pub mod locks;
pub mod os;
pub mod pkg;
pub mod progress;
pub mod render;
pub mod sshkey;
pub mod username;
pub mod virsh;
