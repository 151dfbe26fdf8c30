//! `os.release`: how far virthost vouches for this OS (spec: RHEL 7.3/7.4 tested, CentOS
//! expected to work, others best effort).

use virthost_model::os::{Support, SUPPORTED};

use super::Host;
use crate::check::CheckResult;

pub fn run(host: &Host) -> Vec<CheckResult> {
    let id = "os.release";
    let name = if host.os.pretty_name.is_empty() {
        "unknown OS (no /etc/os-release)".to_string()
    } else {
        host.os.pretty_name.clone()
    };
    let r = match &host.platform {
        Some(p) => match p.support {
            Support::Tested => {
                CheckResult::pass(id, format!("{name}: tested ({} family)", p.family))
            }
            Support::Supported => CheckResult::pass(
                id,
                format!(
                    "{name}: expected to work, not the tested RHEL 7.3/7.4 ({} family)",
                    p.family
                ),
            ),
            Support::BestEffort => CheckResult::warn(
                id,
                format!(
                    "{name}: best effort only, checked as the {} family",
                    p.family
                ),
                format!("supported: {SUPPORTED}"),
            ),
        },
        None => CheckResult::warn(
            id,
            format!("{name}: unknown to virthost, no dpkg or rpm database found"),
            format!("supported: {SUPPORTED}"),
        ),
    };
    vec![r]
}
