//! A step is one idempotent piece of convergence: it reads the host and says what it would
//! change ([`Step::check`]), changes that ([`Step::apply`]), and is checked again after, so
//! `changed` is only reported for a change that took. [`run`] drives a list of steps; a
//! failed step does not stop the steps that do not depend on it.

use std::time::Instant;

use serde::Serialize;

use crate::assess::{Action, Assessment};
use crate::hostroot::HostRoot;

/// What a step found when it read the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Nothing to change; the detail says what is there (`"libvirtd running"`).
    Converged(String),
    /// What apply would change, one line each (`"install libvirt, qemu-kvm"`).
    Pending(Vec<String>),
    /// Not applicable on this host, with the reason (`"no VT-x/AMD-V: guests are emulated"`).
    Skip(String),
}

pub use virthost_model::progress::{Progress, Quiet};

pub trait Step {
    /// Stable id, used in reports and in `depends_on` (`"packages"`, `"user"`, ...).
    fn id(&self) -> &'static str;
    /// Ids of steps that must not have failed for this one to run.
    fn depends_on(&self) -> &'static [&'static str] {
        &[]
    }
    /// Reads the host; changes nothing.
    fn check(&self, root: &HostRoot) -> anyhow::Result<Check>;
    /// Changes the host towards what `check` reported as pending.
    fn apply(&self, root: &HostRoot, progress: &dyn Progress) -> anyhow::Result<()>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Changed,
    Failed,
    Skipped,
}

/// What happened to one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub id: String,
    pub status: Status,
    pub detail: String,
    /// Changes made (apply) or pending (check mode).
    pub changes: Vec<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Read only: report what would change.
    Check,
    /// Change the host.
    Apply,
}

/// Runs `steps` in order. In check mode a pending step is reported `changed` with the
/// changes it would make and nothing is applied. `on_outcome` sees each outcome as it is
/// decided (for line-by-line output).
pub fn run(
    steps: &[Box<dyn Step + '_>],
    root: &HostRoot,
    mode: Mode,
    progress: &dyn Progress,
    mut on_outcome: impl FnMut(&Outcome),
) -> Vec<Outcome> {
    let mut outcomes: Vec<Outcome> = Vec::new();
    for step in steps {
        let start = Instant::now();
        let failed_dep = step.depends_on().iter().find(|dep| {
            outcomes
                .iter()
                .any(|o| o.id == **dep && matches!(o.status, Status::Failed))
        });
        let (status, detail, changes) = match failed_dep {
            Some(dep) => (
                Status::Skipped,
                format!("needs '{dep}', which failed"),
                vec![],
            ),
            None => run_guarded(step.as_ref(), root, mode, progress),
        };
        let o = Outcome {
            id: step.id().to_string(),
            status,
            detail,
            changes,
            duration_ms: start.elapsed().as_millis() as u64,
        };
        on_outcome(&o);
        outcomes.push(o);
    }
    outcomes
}

/// [`run_one`], with a panic (a bug) turned into this step's failure so the independent
/// steps after it still run (the release profile unwinds for this).
fn run_guarded(
    step: &dyn Step,
    root: &HostRoot,
    mode: Mode,
    progress: &dyn Progress,
) -> (Status, String, Vec<String>) {
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_one(step, root, mode, progress)
    }));
    caught.unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        (
            Status::Failed,
            format!("internal error (a bug, please report it): {what}"),
            vec![],
        )
    })
}

fn run_one(
    step: &dyn Step,
    root: &HostRoot,
    mode: Mode,
    progress: &dyn Progress,
) -> (Status, String, Vec<String>) {
    let pending = match step.check(root) {
        Ok(Check::Converged(detail)) => return (Status::Ok, detail, vec![]),
        Ok(Check::Skip(reason)) => return (Status::Skipped, reason, vec![]),
        Ok(Check::Pending(changes)) => changes,
        Err(e) => return (Status::Failed, format!("{e:#}"), vec![]),
    };
    if mode == Mode::Check {
        return (Status::Changed, "changes pending".into(), pending);
    }
    if let Err(e) = step.apply(root, progress) {
        return (Status::Failed, format!("{e:#}"), pending);
    }
    match step.check(root) {
        Ok(Check::Converged(detail)) | Ok(Check::Skip(detail)) => {
            (Status::Changed, detail, pending)
        }
        Ok(Check::Pending(left)) => (
            Status::Failed,
            format!("still pending after apply: {}", left.join("; ")),
            pending,
        ),
        Err(e) => (Status::Failed, format!("after apply: {e:#}"), pending),
    }
}

/// An assessment as a step's [`Check`].
pub trait ToCheck {
    /// Met is converged, not met pending with its actions, blocked an error with what to
    /// do, unknown pending with why (the steps before it, packages and libvirt, are what make
    /// it knowable).
    fn to_check(&self, unknown_pending: impl FnOnce(&str) -> String) -> anyhow::Result<Check>;
}

impl<A: Action> ToCheck for Assessment<A> {
    fn to_check(&self, unknown_pending: impl FnOnce(&str) -> String) -> anyhow::Result<Check> {
        Ok(match self {
            Assessment::Met(d) => Check::Converged(d.clone()),
            Assessment::NotMet { .. } => Check::Pending(self.described()),
            Assessment::Blocked { detail, hint } => anyhow::bail!("{detail}: {hint}"),
            Assessment::Unknown(why) => Check::Pending(vec![unknown_pending(why)]),
        })
    }
}

/// Counts of each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub changed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Summary {
    pub fn of(outcomes: &[Outcome]) -> Summary {
        let mut s = Summary::default();
        for o in outcomes {
            match o.status {
                Status::Ok => s.ok += 1,
                Status::Changed => s.changed += 1,
                Status::Failed => s.failed += 1,
                Status::Skipped => s.skipped += 1,
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A step over a counter: converged when `value >= want`.
    struct Counter<'a> {
        id: &'static str,
        value: &'a Cell<u32>,
        want: u32,
        apply_adds: u32,
        deps: &'static [&'static str],
    }

    impl Step for Counter<'_> {
        fn id(&self) -> &'static str {
            self.id
        }
        fn depends_on(&self) -> &'static [&'static str] {
            self.deps
        }
        fn check(&self, _: &HostRoot) -> anyhow::Result<Check> {
            Ok(if self.value.get() >= self.want {
                Check::Converged(format!("at {}", self.value.get()))
            } else {
                Check::Pending(vec![format!("raise to {}", self.want)])
            })
        }
        fn apply(&self, _: &HostRoot, _: &dyn Progress) -> anyhow::Result<()> {
            if self.apply_adds == 0 {
                anyhow::bail!("cannot raise");
            }
            self.value.set(self.value.get() + self.apply_adds);
            Ok(())
        }
    }

    struct Panics;
    impl Step for Panics {
        fn id(&self) -> &'static str {
            "panics"
        }
        fn check(&self, _: &HostRoot) -> anyhow::Result<Check> {
            panic!("boom")
        }
        fn apply(&self, _: &HostRoot, _: &dyn Progress) -> anyhow::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_panicking_step_fails_alone() {
        let v = Cell::new(0);
        let steps: Vec<Box<dyn Step + '_>> = vec![Box::new(Panics), counter("c", &v, 1, 1, &[])];
        let out = run(&steps, &HostRoot::at("/x"), Mode::Apply, &Quiet, |_| {});
        assert_eq!(statuses(&out), [Status::Failed, Status::Changed]);
        assert!(out[0].detail.contains("boom"), "{}", out[0].detail);
    }

    fn counter<'a>(
        id: &'static str,
        value: &'a Cell<u32>,
        want: u32,
        apply_adds: u32,
        deps: &'static [&'static str],
    ) -> Box<dyn Step + 'a> {
        Box::new(Counter {
            id,
            value,
            want,
            apply_adds,
            deps,
        })
    }

    fn statuses(o: &[Outcome]) -> Vec<Status> {
        o.iter().map(|o| o.status).collect()
    }

    #[test]
    fn applies_verifies_and_is_idempotent() {
        let v = Cell::new(0);
        let steps: Vec<Box<dyn Step + '_>> = vec![counter("a", &v, 1, 1, &[])];
        let root = HostRoot::at("/nonexistent");
        let first = run(&steps, &root, Mode::Apply, &Quiet, |_| {});
        assert_eq!(statuses(&first), [Status::Changed]);
        assert_eq!(first[0].changes, ["raise to 1"]);
        let second = run(&steps, &root, Mode::Apply, &Quiet, |_| {});
        assert_eq!(statuses(&second), [Status::Ok]);
    }

    #[test]
    fn check_mode_changes_nothing() {
        let v = Cell::new(0);
        let steps: Vec<Box<dyn Step + '_>> = vec![counter("a", &v, 1, 1, &[])];
        let out = run(&steps, &HostRoot::at("/x"), Mode::Check, &Quiet, |_| {});
        assert_eq!(statuses(&out), [Status::Changed]);
        assert_eq!(v.get(), 0);
    }

    #[test]
    fn a_failure_skips_dependents_only_and_unverified_changes_fail() {
        let (a, b, c, d) = (Cell::new(0), Cell::new(0), Cell::new(0), Cell::new(0));
        let steps: Vec<Box<dyn Step + '_>> = vec![
            counter("a", &a, 1, 0, &[]),
            counter("b", &b, 1, 1, &["a"]),
            counter("c", &c, 1, 1, &[]),
            counter("d", &d, 5, 1, &[]),
        ];
        let out = run(&steps, &HostRoot::at("/x"), Mode::Apply, &Quiet, |_| {});
        assert_eq!(
            statuses(&out),
            [
                Status::Failed,
                Status::Skipped,
                Status::Changed,
                Status::Failed
            ]
        );
        assert!(out[0].detail.contains("cannot raise"));
        assert!(out[1].detail.contains("'a'"));
        assert!(out[3].detail.contains("still pending"));
        assert_eq!(
            Summary::of(&out),
            Summary {
                ok: 0,
                changed: 1,
                failed: 2,
                skipped: 1
            }
        );
    }
}
