//! One check's result: a stable id, PASS / WARN / FAIL, a one-line detail, and for WARN
//! and FAIL a hint that says what to do.

use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    /// The word the reports print: `PASS`, `WARN`, `FAIL`.
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// Stable, dotted id (`cpu.threads`, `kvm.usable`, `boot.ipxe.virtio`).
    pub id: String,
    pub status: Status,
    pub detail: String,
    /// What to do about a WARN or FAIL; `None` for PASS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The bootstrap step that makes this check pass (`pool`, `user`, `packages`); `None`
    /// for what is outside bootstrap's reach (hardware, capacity, sshd, the boot proof).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap_step: Option<String>,
    pub duration_ms: u64,
    /// When the check's work began, in ms since the run began ([`clock`]): set by the boot
    /// and power proofs, whose work may overlap (side by side).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
}

/// The instant the run began: the first call's (`run_system` makes it first).
pub fn clock() -> Instant {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *START.get_or_init(Instant::now)
}

impl CheckResult {
    pub fn pass(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, Status::Pass, detail, None::<String>)
    }

    pub fn warn(id: impl Into<String>, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(id, Status::Warn, detail, Some(hint))
    }

    pub fn fail(id: impl Into<String>, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(id, Status::Fail, detail, Some(hint))
    }

    fn new(
        id: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
        hint: Option<impl Into<String>>,
    ) -> Self {
        CheckResult {
            id: id.into(),
            status,
            detail: detail.into(),
            hint: hint.map(Into::into),
            bootstrap_step: None,
            duration_ms: 0,
            started_ms: None,
        }
    }

    /// Marks the check as what bootstrap's step `step` makes pass.
    pub fn by_step(mut self, step: &str) -> Self {
        self.bootstrap_step = Some(step.to_string());
        self
    }

    /// Sets when the work began (see [`clock`]).
    pub fn started(mut self, at: Instant) -> Self {
        self.started_ms = Some(at.saturating_duration_since(clock()).as_millis() as u64);
        self
    }

    /// Sets the duration.
    pub fn took(mut self, d: Duration) -> Self {
        self.duration_ms = d.as_millis() as u64;
        self
    }
}

/// Runs `f` and stamps every result it returns with the time it took.
pub fn timed(f: impl FnOnce() -> Vec<CheckResult>) -> Vec<CheckResult> {
    let start = Instant::now();
    let results = f();
    let d = start.elapsed();
    results.into_iter().map(|r| r.took(d)).collect()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
}

impl Summary {
    pub fn of(results: &[CheckResult]) -> Summary {
        let mut s = Summary::default();
        for r in results {
            match r.status {
                Status::Pass => s.pass += 1,
                Status::Warn => s.warn += 1,
                Status::Fail => s.fail += 1,
            }
        }
        s
    }
}
