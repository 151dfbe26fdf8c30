//! Facts in, ordered steps out: a pure function, so the plan of every fixture host can be
//! snapshot-tested. `bootstrap --check` runs each step's check; `bootstrap` applies them.

use crate::cmd::Runner;
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

/// The host's tools the steps change it with: its package manager, virsh, and the other
/// commands (`useradd`, `modprobe`, `systemctl`, ...). On a real host the system's (`cli`);
/// in tests a fixture world's (`virthost_model::fixture::World`), which carries them out
/// inside the world's root.
#[derive(Clone, Copy)]
pub struct Tools<'a> {
    pub packages: &'a dyn PackageDb,
    pub virsh: &'a dyn Virsh,
    pub run: &'a dyn Runner,
}

/// The ordered steps that converge the host `facts` describes. Steps read the host again
/// when they run (a step's apply changes what the next one sees); `facts` decides which
/// steps there are and what they aim at; `tools` are how they change it.
pub fn plan<'a>(facts: &'a Facts, opts: &'a Options, tools: Tools<'a>) -> Vec<Box<dyn Step + 'a>> {
    let db = tools.packages;
    let packages = desired::packages(&facts.platform);
    let ipxe = desired::ipxe_roms(&facts.platform);
    let mut steps: Vec<Box<dyn Step + 'a>> = vec![
        Box::new(Packages { db, packages }),
        Box::new(Ipxe::new(db, ipxe)),
        Box::new(virt::Kvm::new(facts.cpu.virt, tools.run)),
        Box::new(virt::DevKvm {
            ext: facts.cpu.virt,
            family: facts.platform.family,
            run: tools.run,
        }),
    ];
    steps.extend(account_steps(facts, opts, tools.run));
    steps.push(Box::new(Libvirt {
        platform: facts.platform.clone(),
        run: tools.run,
    }));
    steps.push(Box::new(PoolStep::default_pool(tools.virsh)));
    steps
}

/// The user, its polkit rule, optional sudo, then the SSH keys of root and of the user.
fn account_steps<'a>(
    facts: &'a Facts,
    opts: &'a Options,
    run: &'a dyn Runner,
) -> Vec<Box<dyn Step + 'a>> {
    let mut steps: Vec<Box<dyn Step + 'a>> = vec![
        Box::new(UserStep {
            name: opts.user.clone(),
            run,
        }),
        Box::new(PolkitStep {
            user: opts.user.clone(),
            backend: polkit_backend(facts),
        }),
    ];
    if opts.sudo {
        steps.push(Box::new(SudoStep {
            user: opts.user.clone(),
            run,
        }));
    }
    if !opts.root_keys.is_empty() {
        steps.push(Box::new(KeysStep {
            user: UserName::root(),
            keys: opts.root_keys.clone(),
            run,
            family: facts.platform.family,
        }));
    }
    if !opts.stack_keys.is_empty() {
        steps.push(Box::new(KeysStep {
            user: opts.user.clone(),
            keys: opts.stack_keys.clone(),
            run,
            family: facts.platform.family,
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
