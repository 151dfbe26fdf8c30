//! `user.exists`: the stack user (`--user`) as `virthost_model::assess::user` judges it (exists,
//! a login shell, a home directory it owns: infrared and the BMC emulators SSH in as it).

use virthost_model::assess::user::{self, Home};

use super::Host;
use crate::assessed::{self, Severity};
use crate::check::CheckResult;
use crate::options::Options;
use crate::probe::FileKind;

pub fn run(opts: &Options, host: &Host) -> Vec<CheckResult> {
    let u = host.accounts.user(opts.user.as_str());
    let home = match u.map(|u| host.probe.meta(&u.home)) {
        Some(Ok(m)) if m.kind == FileKind::Dir => Home::Dir {
            uid: m.uid,
            gid: m.gid,
        },
        Some(Ok(_)) => Home::NotDir,
        Some(Err(_)) | None => Home::Missing,
    };
    let a = user::assess(&opts.user, u, home);
    let bootstrap = match opts.user.as_str() {
        virthost_model::desired::DEFAULT_USER => "bootstrap".to_string(),
        other => format!("bootstrap --user {other}"),
    };
    vec![assessed::result(
        "user.exists",
        Severity::Fail,
        (&bootstrap, "user"),
        &a,
    )]
}
