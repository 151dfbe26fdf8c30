//! Facts in, ordered steps out: a pure function, so the plan of every fixture host can be
//! snapshot-tested. `bootstrap --check` runs each step's check; `bootstrap` applies them.

use std::path::PathBuf;

use crate::desired::{self, Role};
use crate::facts::Facts;
use crate::pkg::PackageDb;
use crate::step::Step;
use crate::steps::{ipxe::Ipxe, libvirt::Libvirt, packages::Packages, virt};

/// What the command line asks for beyond the desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The user that manages VMs (`--user`, default [`desired::DEFAULT_USER`]).
    pub user: String,
    /// Passwordless sudo for that user (`--sudo`).
    pub sudo: bool,
    /// `--root-key` files, already validated as OpenSSH public keys.
    pub root_keys: Vec<PathBuf>,
    /// `--stack-key` files, already validated as OpenSSH public keys.
    pub stack_keys: Vec<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            user: desired::DEFAULT_USER.to_string(),
            sudo: false,
            root_keys: vec![],
            stack_keys: vec![],
        }
    }
}

/// The ordered steps that converge the host `facts` describes. Steps read the host again
/// when they run (a step's apply changes what the next one sees); `facts` decides which
/// steps there are and what they aim at.
pub fn plan<'a>(
    facts: &'a Facts,
    opts: &'a Options,
    db: &'a dyn PackageDb,
) -> Vec<Box<dyn Step + 'a>> {
    let packages = desired::packages(&facts.platform);
    let ipxe = packages
        .iter()
        .find(|p| p.role == Role::IpxeRoms)
        .cloned()
        .expect("every package set names the iPXE ROMs");
    let mut steps: Vec<Box<dyn Step + 'a>> = vec![
        Box::new(Packages { db, packages }),
        Box::new(Ipxe::new(db, ipxe)),
        Box::new(virt::Kvm::new(facts.cpu.virt)),
        Box::new(virt::DevKvm {
            ext: facts.cpu.virt,
        }),
    ];
    steps.extend(account_steps(facts, opts));
    steps.push(Box::new(Libvirt {
        platform: facts.platform.clone(),
    }));
    steps
}

/// The user, polkit rule, sudo and SSH key steps.
// TODO(files): when the files branch is merged, return its steps here, in this order:
// `user` (opts.user), `polkit` (facts.polkit_backend, re-read after packages), `sudo`
// (only with opts.sudo), `keys` for root (opts.root_keys) and for opts.user
// (opts.stack_keys). Nothing else needs to change: `cli` already validates the key files.
fn account_steps<'a>(_facts: &'a Facts, _opts: &'a Options) -> Vec<Box<dyn Step + 'a>> {
    vec![]
}
