//! `bootstrap`'s apply code: the plan of steps for a host (`plan`), the steps that carry out
//! the shared model's assessments (`step`, `steps`), one run at a time (`hostlock`), the
//! command line and the report (`cli`, `report`). The model itself is `virthost_model`,
//! re-exported here under its module names (`bootstrap::desired`, ...).

#[cfg(feature = "fixtures")]
pub use virthost_model::fixture;
pub use virthost_model::{
    accounts, argfile, assess, atomic, cmd, cpu, desired, dpkglock, facts, hostroot, ipxe, locks,
    os, pkg, progress, render, sshkey, username, virsh,
};

pub mod cli;
pub mod hostlock;
pub mod plan;
pub mod report;
pub mod step;
pub mod steps;
