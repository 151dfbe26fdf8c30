//! The steps `bootstrap` runs, one module each (see [`crate::step::Step`]); `crate::plan`
//! orders them.

pub mod files;
pub mod ipxe;
pub mod keys;
pub mod libvirt;
pub mod packages;
pub mod polkit;
pub mod pool;
pub mod sudo;
pub mod user;
pub mod virt;

#[cfg(test)]
pub(crate) mod testroot;
