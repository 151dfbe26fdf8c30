//! The one answer to "is this requirement met on this host?", shared by both binaries.
//!
//! The flow: host facts (`facts`, `virsh`, `accounts`: read only) -> desired state
//! (`desired`) -> **assessment** (here: a pure function of the facts, per requirement) ->
//! `bootstrap` carries out the assessment's actions and assesses again (`steps`), `validate`
//! renders the same assessment as PASS / WARN / FAIL with a hint that names bootstrap's
//! step (`validate::assessed`). Two verdicts that could drift apart cannot exist: there is
//! one function.
//!
//! The assessments are pure. Where an assessment's facts are assembled from several
//! readings, the assembly sits beside it, built on `facts`, so that both binaries gather
//! them the same way: `kvm::DevKvmFacts::read` (the node, group, udev rules) and
//! `kvm::nested_of` (the nested conf and running guests, then `kvm::nested`).
//!
//! Here: the packages and the iPXE build ([`packages`]), the KVM modules, nested
//! virtualization and `/dev/kvm` ([`kvm`]), the VM user ([`user`]), the SSH keys
//! ([`keys`]) and the storage pool ([`pool`]). Not (yet) here: the polkit rule, sudo and
//! libvirt's services, whose validate counterparts are proofs rather than readings
//! (`libvirt.polkit` connects as the user; `libvirt.connect` connects), and the files
//! bootstrap owns outright (`steps::files`: exact content, mode and owner).

pub mod keys;
pub mod kvm;
pub mod packages;
pub mod pool;
pub mod user;

/// One thing the step that owns a requirement does to meet it.
pub trait Action {
    /// What it does, as `--check` lists it (`virsh pool-start default`).
    fn describe(&self) -> String;
}

/// What one requirement is on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assessment<A> {
    /// Met; the detail says what is there.
    Met(String),
    /// Not met: what is wrong, and the actions (in order) that meet it.
    NotMet { detail: String, actions: Vec<A> },
    /// Not met, and not bootstrap's to fix (the operator's own pool, a file where a
    /// directory must be): what is wrong and what to do.
    Blocked { detail: String, hint: String },
    /// Cannot tell now (libvirt not installed or not answering yet): why.
    Unknown(String),
}

impl<A: Action> Assessment<A> {
    /// The actions' descriptions (empty unless [`Assessment::NotMet`]).
    pub fn described(&self) -> Vec<String> {
        match self {
            Assessment::NotMet { actions, .. } => actions.iter().map(Action::describe).collect(),
            _ => vec![],
        }
    }
}
