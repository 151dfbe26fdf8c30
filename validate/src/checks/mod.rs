//! The host checks, one module per area.

pub mod libvirt;
