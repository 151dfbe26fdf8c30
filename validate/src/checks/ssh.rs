//! SSH access: sshd running; root's and the stack user's `authorized_keys` holding the keys
//! given with `--root-key` / `--stack-key`; modes and owners sshd's StrictModes accepts.
//!
//! Ids: `ssh.sshd`, `ssh.keys.root`, `ssh.keys.<user>` (when keys were given),
//! `ssh.perms.root`, `ssh.perms.<user>`.

use std::path::PathBuf;

use super::Host;
use bootstrap::accounts::User;
use bootstrap::sshkey::{read_key_file, PublicKey};

use crate::accounts::AccountsExt;
use crate::check::CheckResult;
use crate::options::Options;
use crate::probe::FileMeta;

pub fn run(opts: &Options, host: &Host) -> Vec<CheckResult> {
    let mut out = vec![sshd(host)];
    let root = host.accounts.user("root").cloned().unwrap_or(User {
        name: "root".into(),
        uid: 0,
        gid: 0,
        home: "/root".into(),
        shell: "/bin/sh".into(),
    });
    out.extend(account(
        host,
        Some(&root),
        "root",
        &opts.root_keys,
        "--root-key",
    ));
    if opts.user != "root" {
        let user = host.accounts.user(&opts.user).cloned();
        out.extend(account(
            host,
            user.as_ref(),
            &opts.user,
            &opts.stack_keys,
            "--stack-key",
        ));
    }
    out
}

/// Whether a process named `sshd` runs (`/proc/<pid>/comm`, the shared reader).
fn sshd(host: &Host) -> CheckResult {
    let id = "ssh.sshd";
    match bootstrap::facts::processes(host.probe.root(), |c| c == "sshd").first() {
        Some(p) => CheckResult::pass(id, format!("sshd running (pid {})", p.pid)),
        None => CheckResult::fail(
            id,
            "no sshd process",
            "install openssh-server and start sshd (systemctl enable --now sshd)",
        ),
    }
}

fn account(
    host: &Host,
    user: Option<&User>,
    name: &str,
    key_files: &[PathBuf],
    flag: &str,
) -> Vec<CheckResult> {
    let keys_id = format!("ssh.keys.{name}");
    let perms_id = format!("ssh.perms.{name}");
    let Some(user) = user else {
        if key_files.is_empty() {
            return Vec::new();
        }
        return vec![CheckResult::fail(
            keys_id,
            format!("no user {name}: nowhere to look for its keys"),
            format!("run bootstrap --user {name}"),
        )];
    };
    let ak = format!("{}/.ssh/authorized_keys", user.home.trim_end_matches('/'));
    let text = match host.probe.root().read_optional(&ak) {
        Ok(t) => t.unwrap_or_default(),
        Err(e) if !key_files.is_empty() => {
            return vec![
                CheckResult::fail(keys_id, format!("cannot read {e}"), "run validate as root"),
                perms(host, user, &ak, &perms_id),
            ];
        }
        Err(_) => String::new(),
    };
    // Lines that are no valid key (or comments) are skipped, as sshd does.
    let present: Vec<PublicKey> = text
        .lines()
        .filter_map(|l| PublicKey::parse(l).ok())
        .collect();
    let mut out = Vec::new();
    if !key_files.is_empty() {
        let mut wanted = Vec::new();
        for f in key_files {
            match read_key_file(f) {
                Ok(k) => wanted.extend(k),
                Err(e) => out.push(CheckResult::fail(
                    keys_id.clone(),
                    format!("{e:#}"),
                    format!("pass a readable public key file to {flag}"),
                )),
            }
        }
        let missing: Vec<String> = wanted
            .iter()
            .filter(|w| !present.iter().any(|p| p.same_key(w)))
            .map(|k| k.describe())
            .collect();
        if out.is_empty() {
            out.push(if missing.is_empty() {
                CheckResult::pass(
                    keys_id,
                    format!("{ak} holds all {} key(s) given with {flag}", wanted.len()),
                )
            } else {
                CheckResult::fail(
                    keys_id,
                    format!(
                        "{ak} lacks {} of {} key(s) given with {flag}: {}",
                        missing.len(),
                        wanted.len(),
                        missing.join(", ")
                    ),
                    format!("run bootstrap {flag} FILE, or append the key to {ak}"),
                )
            });
        }
    }
    out.push(perms(host, user, &ak, &perms_id));
    out
}

fn perms(host: &Host, user: &User, ak: &str, id: &str) -> CheckResult {
    let a = &host.accounts;
    let home = user.home.trim_end_matches('/');
    let dot_ssh = format!("{home}/.ssh");
    let show = |p: &str, m: &FileMeta| {
        format!(
            "{p} {}:{} {:04o}",
            a.uid_name(m.uid),
            a.gid_name(m.gid),
            m.mode
        )
    };
    let owned = |m: &FileMeta| m.uid == user.uid || m.uid == 0;
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    let fix = format!(
        "chown {n}: {dot_ssh} {ak}; chmod 0700 {dot_ssh}; chmod 0600 {ak}; chmod go-w {home} (sshd's StrictModes ignores keys otherwise)",
        n = user.name
    );
    if let Ok(m) = host.probe.meta(home) {
        if m.mode & 0o022 != 0 || !owned(&m) {
            problems.push(format!(
                "{} is group/world-writable or foreign-owned",
                show(home, &m)
            ));
        }
    }
    let ds = match host.probe.meta(&dot_ssh) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return CheckResult::pass(id, format!("no {dot_ssh} (nothing to protect)"));
        }
        Err(e) => {
            return CheckResult::warn(
                id,
                format!("cannot inspect {dot_ssh}: {e}"),
                "run validate as root",
            );
        }
    };
    seen.push(show(&dot_ssh, &ds));
    if ds.mode & 0o077 != 0 {
        problems.push(format!("{} is not 0700 or stricter", show(&dot_ssh, &ds)));
    }
    if ds.uid != user.uid {
        problems.push(format!(
            "{} is not owned by {}",
            show(&dot_ssh, &ds),
            user.name
        ));
    }
    if let Ok(m) = host.probe.meta(ak) {
        seen.push(show(ak, &m));
        if m.mode & 0o022 != 0 {
            problems.push(format!("{} is group/world-writable", show(ak, &m)));
        }
        if !owned(&m) {
            problems.push(format!(
                "{} is not owned by {} or root",
                show(ak, &m),
                user.name
            ));
        }
    }
    if problems.is_empty() {
        CheckResult::pass(id, seen.join(", "))
    } else {
        CheckResult::fail(id, problems.join("; "), fix)
    }
}
