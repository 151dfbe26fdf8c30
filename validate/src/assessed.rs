//! The shared assessments of `virthost_model::assess` as check results: met is PASS; not met is
//! the requirement's severity (WARN or FAIL) with a hint that names bootstrap's step and
//! what it would do; blocked is that severity with what the operator must do; unknown is a
//! WARN. validate never judges these requirements itself: bootstrap and validate cannot
//! disagree about them.

use virthost_model::assess::{Action, Assessment};

use crate::check::CheckResult;

/// How much a requirement that is not met matters to a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The deployment fails without it.
    Fail,
    /// Deployment tooling copes (more slowly, or doing it itself).
    Warn,
}

/// `id`'s result from the assessment of the requirement that bootstrap's step `step` owns;
/// `bootstrap` is the command line that runs it (`bootstrap`, `bootstrap --user ops`).
pub fn result<A: Action>(
    id: &str,
    severity: Severity,
    (bootstrap, step): (&str, &str),
    a: &Assessment<A>,
) -> CheckResult {
    let with = |detail: &str, hint: String| match severity {
        Severity::Fail => CheckResult::fail(id, detail, hint),
        Severity::Warn => CheckResult::warn(id, detail, hint),
    };
    let r = match a {
        Assessment::Met(detail) => CheckResult::pass(id, detail),
        Assessment::NotMet { detail, .. } => with(
            detail,
            format!(
                "run {bootstrap} (its `{step}` step: {})",
                a.described().join("; ")
            ),
        ),
        Assessment::Blocked { detail, hint } => with(detail, hint.clone()),
        Assessment::Unknown(why) => CheckResult::warn(
            id,
            format!("cannot tell: {why}"),
            format!(
                "run validate again once that is resolved; `{bootstrap}`'s `{step}` step owns this"
            ),
        ),
    };
    r.by_step(step)
}
