//! `user.exists`: the stack user (`--user`) exists, with a home directory and a login shell
//! (infrared SSHes in as it).

use bootstrap::desired::USER_SHELL;

use super::Host;
use crate::check::CheckResult;
use crate::options::Options;
use crate::probe::FileKind;

pub fn run(opts: &Options, host: &Host) -> Vec<CheckResult> {
    let id = "user.exists";
    let name = &opts.user;
    let hint = format!(
        "run bootstrap --user {name} (creates {name} with home {} and shell {USER_SHELL})",
        bootstrap::desired::user_home(name)
    );
    let Some(u) = host.accounts.user(name.as_str()) else {
        return vec![CheckResult::fail(
            id,
            format!("no user {name} in /etc/passwd"),
            hint,
        )];
    };
    let home_ok = matches!(host.probe.meta(&u.home), Ok(m) if m.kind == FileKind::Dir);
    let shell = u.shell.as_str();
    let detail = format!("{name} uid {} home {} shell {shell}", u.uid, u.home);
    let r = if !home_ok {
        CheckResult::fail(
            id,
            format!("{detail}: the home directory does not exist"),
            format!("mkdir -m 0700 {} && chown {name}: {}", u.home, u.home),
        )
    } else if shell.ends_with("/nologin") || shell.ends_with("/false") || shell.is_empty() {
        CheckResult::fail(
            id,
            format!("{detail}: no login shell, SSH logins fail"),
            format!("usermod -s {USER_SHELL} {name}"),
        )
    } else {
        CheckResult::pass(id, detail)
    };
    vec![r]
}
