//! The storage pool requirement: deployment tooling puts VM images in libvirt's pool
//! `default`, a `dir` pool at `/var/lib/libvirt/images` ([`desired::POOL_NAME`],
//! [`desired::POOL_TYPE`], [`desired::IMAGES_DIR`]), persistent, running and started with
//! libvirt. A pool of that name of another type or at another path is the operator's
//! choice: met while it runs, never changed.
//!
//! bootstrap reads the pool through `virsh` (it is static: no libvirt library), validate
//! through libvirt's API; both hand the same [`PoolFacts`] to [`assess`].

use super::{Action, Assessment};
use crate::desired;
use crate::virsh::{same_path, PoolDef, PoolInfo, PoolState};

/// What libvirt says about the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolFacts {
    /// libvirt cannot be asked (virsh not installed, the daemon not answering): why.
    Unknown(String),
    Missing,
    Pool(PoolInfo, PoolDef),
}

/// The pool wanted: [`Want::model`] on a host; tests use pools of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub name: String,
    pub path: String,
}

impl Want {
    pub fn model() -> Want {
        Want {
            name: desired::POOL_NAME.into(),
            path: desired::IMAGES_DIR.into(),
        }
    }

    /// Whether `def` is the pool the model wants (the same type and directory).
    pub fn is(&self, def: &PoolDef) -> bool {
        def.kind == desired::POOL_TYPE
            && def
                .path
                .as_deref()
                .is_some_and(|p| same_path(p, &self.path))
    }
}

/// One virsh call that meets the requirement, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Define,
    MakePersistent,
    Build,
    Start,
    Autostart,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolAction {
    pub kind: Kind,
    pub name: String,
    pub path: String,
}

impl Action for PoolAction {
    fn describe(&self) -> String {
        let (n, p) = (&self.name, &self.path);
        match self.kind {
            Kind::Define => format!("virsh pool-define-as {n} {} --target {p}", desired::POOL_TYPE),
            Kind::MakePersistent => format!(
                "virsh pool-define (make the running transient pool '{n}' persistent, from its own XML)"
            ),
            Kind::Build => format!("virsh pool-build {n} (creates {p})"),
            Kind::Start => format!("virsh pool-start {n}"),
            Kind::Autostart => format!("virsh pool-autostart {n}"),
        }
    }
}

/// `running, transient, no autostart`.
pub fn state_words(info: &PoolInfo) -> String {
    let state = match &info.state {
        PoolState::Running => "running",
        PoolState::Inactive => "inactive",
        PoolState::Other(s) => s,
    };
    let persistent = if info.persistent { "" } else { ", transient" };
    let autostart = if info.autostart {
        "autostart"
    } else {
        "no autostart"
    };
    format!("{state}{persistent}, {autostart}")
}

/// The requirement on a host where the pool is `facts` and the wanted directory exists or
/// not (`pool-build` makes it).
pub fn assess(want: &Want, facts: &PoolFacts, dir_exists: bool) -> Assessment<PoolAction> {
    let (n, p) = (&want.name, &want.path);
    let act = |kind| PoolAction {
        kind,
        name: n.clone(),
        path: p.clone(),
    };
    let (info, def) = match facts {
        PoolFacts::Unknown(why) => return Assessment::Unknown(why.clone()),
        PoolFacts::Missing => {
            let mut actions = vec![act(Kind::Define)];
            if !dir_exists {
                actions.push(act(Kind::Build));
            }
            actions.extend([act(Kind::Start), act(Kind::Autostart)]);
            return Assessment::NotMet {
                detail: format!("no storage pool '{n}'; images would go to {p} unmanaged"),
                actions,
            };
        }
        PoolFacts::Pool(info, def) => (info, def),
    };
    let running = match &info.state {
        PoolState::Running => true,
        PoolState::Inactive => false,
        PoolState::Other(state) => {
            return Assessment::Blocked {
                detail: format!(
                    "storage pool '{n}' ({p}) is {state}: libvirt cannot use it as it is"
                ),
                hint: format!(
                    "restart it with `virsh pool-destroy {n}` and `virsh pool-start {n}`"
                ),
            }
        }
    };
    if !want.is(def) {
        let theirs = format!(
            "storage pool '{n}' is a {} pool at {} ({}), not {} at {p}",
            def.kind,
            def.path.as_deref().unwrap_or("no target path"),
            state_words(info),
            desired::POOL_TYPE,
        );
        return if running {
            Assessment::Met(format!("{theirs}: left as the user defined it"))
        } else {
            Assessment::Blocked {
                detail: format!("{theirs}, and it is not running"),
                hint: format!(
                    "bootstrap leaves a pool it did not define alone: start it \
                     (`virsh pool-start {n} && virsh pool-autostart {n}`), or undefine it \
                     (`virsh pool-undefine {n}`, the images stay) and run bootstrap again"
                ),
            }
        };
    }
    let mut actions = vec![];
    if !info.persistent {
        actions.push(act(Kind::MakePersistent));
    }
    if !running {
        if !dir_exists {
            actions.push(act(Kind::Build));
        }
        actions.push(act(Kind::Start));
    }
    if !info.autostart {
        actions.push(act(Kind::Autostart));
    }
    if actions.is_empty() {
        Assessment::Met(format!(
            "storage pool '{n}': {} at {p}, running, autostart",
            desired::POOL_TYPE
        ))
    } else {
        Assessment::NotMet {
            detail: format!("storage pool '{n}' at {p} is {}", state_words(info)),
            actions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(
        kind: &str,
        path: &str,
        state: PoolState,
        persistent: bool,
        autostart: bool,
    ) -> PoolFacts {
        PoolFacts::Pool(
            PoolInfo {
                name: "default".into(),
                state,
                persistent,
                autostart,
            },
            PoolDef {
                kind: kind.into(),
                path: Some(path.into()),
            },
        )
    }

    fn kinds(a: &Assessment<PoolAction>) -> Vec<Kind> {
        match a {
            Assessment::NotMet { actions, .. } => actions.iter().map(|a| a.kind).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn what_each_state_needs() {
        use Kind::*;
        let w = Want::model();
        let img = desired::IMAGES_DIR;
        assert_eq!(
            kinds(&assess(&w, &PoolFacts::Missing, false)),
            [Define, Build, Start, Autostart]
        );
        assert_eq!(
            kinds(&assess(&w, &PoolFacts::Missing, true)),
            [Define, Start, Autostart]
        );
        let half = pool("dir", img, PoolState::Inactive, true, false);
        assert_eq!(kinds(&assess(&w, &half, true)), [Start, Autostart]);
        let transient = pool("dir", &format!("{img}/"), PoolState::Running, false, false);
        assert_eq!(
            kinds(&assess(&w, &transient, true)),
            [MakePersistent, Autostart]
        );
        let done = pool("dir", img, PoolState::Running, true, true);
        assert!(matches!(assess(&w, &done, true), Assessment::Met(_)));
        let theirs = pool("logical", "/dev/vg", PoolState::Running, true, true);
        let Assessment::Met(d) = assess(&w, &theirs, true) else {
            panic!()
        };
        assert!(d.contains("left as the user defined it"), "{d}");
        let theirs_off = pool("netfs", "/mnt/vms", PoolState::Inactive, true, false);
        let Assessment::Blocked { hint, .. } = assess(&w, &theirs_off, true) else {
            panic!()
        };
        assert!(hint.contains("virsh pool-start default"), "{hint}");
        let odd = pool(
            "dir",
            img,
            PoolState::Other("inaccessible".into()),
            true,
            true,
        );
        assert!(matches!(assess(&w, &odd, true), Assessment::Blocked { .. }));
        let unknown = assess(&w, &PoolFacts::Unknown("no virsh".into()), true);
        assert_eq!(unknown, Assessment::Unknown("no virsh".into()));
    }
}
