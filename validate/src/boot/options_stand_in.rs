//! A minimal stand-in for `validate::options::Options` (the real one lives on branch
//! `validate`); only the fields the libvirt checks and the boot proof read matter here.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Options {
    /// libvirt URI (`--connect`).
    pub connect: String,
    pub nodes: Option<String>,
    pub overcommit: bool,
    pub allow_emulation: bool,
    pub skip_boot: bool,
    /// NIC models to boot (`--nic virtio,e1000`).
    pub nics: Vec<String>,
    /// The stack user (`--user`).
    pub user: String,
    pub root_keys: Vec<PathBuf>,
    pub stack_keys: Vec<PathBuf>,
    pub report: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect: "qemu:///system".into(),
            nodes: None,
            overcommit: false,
            allow_emulation: false,
            skip_boot: false,
            nics: vec!["virtio".into()],
            user: "stack".into(),
            root_keys: Vec::new(),
            stack_keys: Vec::new(),
            report: "human".into(),
        }
    }
}
