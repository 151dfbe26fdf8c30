//! Facts in, ordered steps out: a pure function, so the plan of every fixture host can be
//! snapshot-tested. `bootstrap --check` runs each step's check; `bootstrap` applies them.

use crate::desired::{self, PolkitBackend};
use crate::facts::Facts;
use crate::pkg::PackageDb;
use crate::sshkey::PublicKey;
use crate::step::Step;
use crate::steps::keys::KeysStep;
use crate::steps::polkit::PolkitStep;
use crate::steps::pool::PoolStep;
use crate::steps::sudo::SudoStep;
use crate::steps::user::UserStep;
use crate::steps::{ipxe::Ipxe, libvirt::Libvirt, packages::Packages, virt};
use crate::username::UserName;
use crate::virsh::Virsh;

/// What the command line asks for beyond the desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The user that manages VMs (`--user`, default [`desired::DEFAULT_USER`]).
    pub user: UserName,
    /// Passwordless sudo for that user (`--sudo`).
    pub sudo: bool,
    /// The keys of the `--root-key` files, parsed before anything is written.
    pub root_keys: Vec<PublicKey>,
    /// The keys of the `--stack-key` files, for the VM user.
    pub stack_keys: Vec<PublicKey>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            user: UserName::parse(desired::DEFAULT_USER, crate::username::Rules::Debian)
                .expect("the default user name is valid everywhere"),
            sudo: false,
            root_keys: vec![],
            stack_keys: vec![],
        }
    }
}

/// The ordered steps that converge the host `facts` describes. Steps read the host again
/// when they run (a step's apply changes what the next one sees); `facts` decides which
/// steps there are and what they aim at. `db` and `virsh` are the host's package manager
/// and libvirt client (captured ones for a fixture host).
pub fn plan<'a>(
    facts: &'a Facts,
    opts: &'a Options,
    db: &'a dyn PackageDb,
    virsh: &'a dyn Virsh,
) -> Vec<Box<dyn Step + 'a>> {
    let packages = desired::packages(&facts.platform);
    let ipxe = desired::ipxe_roms(&facts.platform);
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
    steps.push(Box::new(PoolStep::default_pool(virsh)));
    steps
}

/// The user, its polkit rule, optional sudo, then the SSH keys of root and of the user.
fn account_steps<'a>(facts: &'a Facts, opts: &'a Options) -> Vec<Box<dyn Step + 'a>> {
    let mut steps: Vec<Box<dyn Step + 'a>> = vec![
        Box::new(UserStep {
            name: opts.user.clone(),
        }),
        Box::new(PolkitStep {
            user: opts.user.clone(),
            backend: polkit_backend(facts),
        }),
    ];
    if opts.sudo {
        steps.push(Box::new(SudoStep {
            user: opts.user.clone(),
        }));
    }
    if !opts.root_keys.is_empty() {
        steps.push(Box::new(KeysStep {
            user: UserName::root(),
            keys: opts.root_keys.clone(),
        }));
    }
    if !opts.stack_keys.is_empty() {
        steps.push(Box::new(KeysStep {
            user: opts.user.clone(),
            keys: opts.stack_keys.clone(),
        }));
    }
    steps
}

/// The backend of the installed polkit; before the packages step installs it, the one the
/// distribution's polkit will have (only Ubuntu 22.04's 0.105 lacks JavaScript rules).
pub fn polkit_backend(facts: &Facts) -> PolkitBackend {
    facts
        .polkit_backend
        .unwrap_or_else(|| desired::polkit_backend_of(&facts.platform))
}
