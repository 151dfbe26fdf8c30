//! The report: host facts, every check, the summary; printed for humans or as JSON
//! (schema: docs/validate-report.md).

use std::io::{self, IsTerminal, Write};

use serde::Serialize;
use virthost_model::desired::API_VERSION;

use crate::check::{CheckResult, Status, Summary};
use crate::checks::Host;

pub const KIND: &str = "ValidateReport";

/// What the report says about the host, besides the checks.
///
/// Read with the same parsers as `virthost_model::facts` (os-release, cpuinfo). Not
/// `virthost_model::facts::Facts` itself: gathering it needs a supported platform, and validate
/// must also report on a host virthost does not know.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostFacts {
    pub hostname: String,
    pub kernel: String,
    pub os: String,
    pub os_id: String,
    pub os_version: String,
    /// `yum`, `dnf`, `apt`, or null when unknown.
    pub family: Option<String>,
    /// `tested`, `supported`, `best-effort`, or null when unknown.
    pub support: Option<virthost_model::os::Support>,
    pub cpu_model: String,
    pub cpu_threads: usize,
    pub cpu_mhz: Option<f64>,
    /// `vmx`, `svm`, or null.
    pub cpu_virt: Option<virthost_model::cpu::VirtExtension>,
    pub memory_total_mib: Option<u64>,
}

impl HostFacts {
    pub fn of(host: &Host) -> HostFacts {
        let line = |p: &str| {
            host.read(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        HostFacts {
            hostname: line("/proc/sys/kernel/hostname"),
            kernel: line("/proc/sys/kernel/osrelease"),
            os: host.os.pretty_name.clone(),
            os_id: host.os.id.clone(),
            os_version: host.os.version_id.clone(),
            family: host.platform.as_ref().map(|p| p.family.to_string()),
            support: host.platform.as_ref().map(|p| p.support),
            cpu_model: host.cpu.model.clone(),
            cpu_threads: host.cpu.threads,
            cpu_mhz: host.cpu.mhz,
            cpu_virt: host.cpu.virt,
            memory_total_mib: host
                .read("/proc/meminfo")
                .as_deref()
                .and_then(crate::checks::capacity::meminfo)
                .map(|(t, _)| t >> 20),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub host: HostFacts,
    pub checks: Vec<CheckResult>,
    pub summary: Summary,
    /// How the boot proof's modes ran; absent when it booted nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_schedule: Option<crate::boot::Schedule>,
}

impl Report {
    pub fn new(host: HostFacts, checks: Vec<CheckResult>) -> Report {
        Report {
            api_version: API_VERSION,
            kind: KIND,
            summary: Summary::of(&checks),
            host,
            checks,
            boot_schedule: None,
        }
    }

    /// The report with how the boot proof's modes ran.
    pub fn with_boot_schedule(mut self, schedule: Option<crate::boot::Schedule>) -> Report {
        self.boot_schedule = schedule;
        self
    }

    pub fn failed(&self) -> bool {
        self.summary.fail > 0
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// One aligned line per check, the hint on an indented line below, then the summary.
    pub fn to_human(&self, colour: bool) -> String {
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
        let mut s = String::new();
        for c in &self.checks {
            let word = c.status.word();
            let code = match c.status {
                Status::Pass => "32",
                Status::Warn => "33",
                Status::Fail => "31",
            };
            let word = if colour {
                format!("\x1b[1;{code}m{word}\x1b[0m")
            } else {
                word.to_string()
            };
            s.push_str(&format!("{:<width$}  {word}  {}\n", c.id, c.detail));
            if let Some(h) = &c.hint {
                s.push_str(&format!("{:<width$}        -> {h}\n", ""));
            }
        }
        let Summary { pass, warn, fail } = self.summary;
        s.push_str(&format!("{pass} PASS, {warn} WARN, {fail} FAIL\n"));
        s
    }

    /// Prints the report in `format` on stdout (colour only on a terminal, never with NO_COLOR).
    pub fn print(&self, format: crate::options::ReportFormat) -> io::Result<()> {
        let out = io::stdout();
        let text = match format {
            crate::options::ReportFormat::Json => format!("{}\n", self.to_json()),
            crate::options::ReportFormat::Human => {
                let colour = out.is_terminal() && std::env::var_os("NO_COLOR").is_none();
                self.to_human(colour)
            }
        };
        let mut lock = out.lock();
        lock.write_all(text.as_bytes())?;
        lock.flush()
    }
}
