//! What `bootstrap` prints: one aligned line per step (`ok` / `changed` / `failed` /
//! `skipped`, colour only on a terminal), progress while the package manager works, a
//! summary line; or one JSON `BootstrapReport` (`docs/bootstrap-report.md`).

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::desired::API_VERSION;
use crate::facts::Facts;
use crate::step::{Mode, Outcome, Progress, Status, Summary};

/// Width of the step id column (the longest id is `packages`).
const ID_WIDTH: usize = 9;

fn label(status: Status, mode: Mode) -> &'static str {
    match (status, mode) {
        (Status::Ok, _) => "ok",
        (Status::Changed, Mode::Check) => "pending",
        (Status::Changed, Mode::Apply) => "changed",
        (Status::Failed, _) => "failed",
        (Status::Skipped, _) => "skipped",
    }
}

fn colour(status: Status) -> &'static str {
    match status {
        Status::Ok => "\x1b[32m",
        Status::Changed => "\x1b[33m",
        Status::Failed => "\x1b[1;31m",
        Status::Skipped => "\x1b[36m",
    }
}

/// One step's lines: `id  status  detail`, then each change indented. In check mode a
/// step with changes pending is labelled `pending` (it is `changed` in JSON).
pub fn step_lines(o: &Outcome, mode: Mode, color: bool) -> String {
    let word = label(o.status, mode);
    let status = if color {
        format!("{}{word:<8}\x1b[0m", colour(o.status))
    } else {
        format!("{word:<8}")
    };
    // The runner's detail for a pending step says nothing the change lines do not.
    let detail =
        if mode == Mode::Check && o.status == Status::Changed && o.detail == "changes pending" {
            ""
        } else {
            &o.detail
        };
    let mut s = format!("{:<ID_WIDTH$} {status} {detail}", o.id)
        .trim_end()
        .to_string();
    s.push('\n');
    let verb = if mode == Mode::Check { "would" } else { "did" };
    for c in &o.changes {
        let _ = writeln!(s, "{:ID_WIDTH$} {:8} - {verb}: {c}", "", "");
    }
    s
}

pub fn summary_line(s: &Summary, mode: Mode) -> String {
    let changed = if mode == Mode::Check {
        "pending"
    } else {
        "changed"
    };
    format!(
        "summary: {} ok, {} {changed}, {} failed, {} skipped\n",
        s.ok, s.changed, s.failed, s.skipped
    )
}

/// The whole human report, as `--check` prints it (no colour): what the plan snapshots hold.
pub fn human(outcomes: &[Outcome], mode: Mode) -> String {
    let mut s: String = outcomes
        .iter()
        .map(|o| step_lines(o, mode, false))
        .collect();
    s.push_str(&summary_line(&Summary::of(outcomes), mode));
    s
}

/// The JSON report (`--report json`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report<'a> {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub mode: Mode,
    pub host: &'a Facts,
    pub steps: &'a [Outcome],
    pub summary: Summary,
}

impl<'a> Report<'a> {
    pub fn new(mode: Mode, host: &'a Facts, steps: &'a [Outcome]) -> Self {
        Report {
            api_version: API_VERSION,
            kind: "BootstrapReport",
            mode,
            host,
            steps,
            summary: Summary::of(steps),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes")
    }
}

/// Prints step lines as they are decided, and the package manager's progress on stderr:
/// on a terminal one line rewritten in place, elsewhere a line every 15 s.
pub struct Human {
    mode: Mode,
    color: bool,
    tty_err: bool,
    quiet: bool,
    last: Cell<Option<Instant>>,
    progress_shown: Cell<bool>,
    lines: RefCell<u64>,
}

impl Human {
    /// `quiet`: print no step lines and no progress (JSON output).
    pub fn new(mode: Mode, quiet: bool) -> Self {
        Human {
            mode,
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            tty_err: std::io::stderr().is_terminal(),
            quiet,
            last: Cell::new(None),
            progress_shown: Cell::new(false),
            lines: RefCell::new(0),
        }
    }

    fn clear_progress(&self) {
        if self.progress_shown.replace(false) && self.tty_err {
            eprint!("\r\x1b[K");
        }
    }

    pub fn outcome(&self, o: &Outcome) {
        if self.quiet {
            return;
        }
        self.clear_progress();
        self.last.set(None);
        print!("{}", step_lines(o, self.mode, self.color));
        let _ = std::io::stdout().flush();
    }

    pub fn summary(&self, outcomes: &[Outcome]) {
        if !self.quiet {
            print!("{}", summary_line(&Summary::of(outcomes), self.mode));
        }
    }
}

impl Progress for Human {
    fn tick(&self, message: &str) {
        if self.quiet {
            return;
        }
        *self.lines.borrow_mut() += 1;
        let n = *self.lines.borrow();
        let now = Instant::now();
        if self.tty_err {
            const SPIN: [char; 4] = ['|', '/', '-', '\\'];
            let msg: String = message.chars().take(100).collect();
            eprint!("\r\x1b[K  {} {msg}", SPIN[(n % 4) as usize]);
            let _ = std::io::stderr().flush();
            self.progress_shown.set(true);
        } else if self
            .last
            .get()
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(15))
        {
            eprintln!("  ... {message}");
            self.last.set(Some(now));
        }
    }
}
