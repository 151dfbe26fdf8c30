//! SSH access: sshd running (or its port listening: socket activation); root's and the stack user's `authorized_keys` holding the keys
//! given with `--root-key` / `--stack-key`; modes and owners sshd's StrictModes accepts.
//!
//! Ids: `ssh.sshd`, `ssh.keys.root`, `ssh.keys.<user>` (when keys were given),
//! `ssh.perms.root`, `ssh.perms.<user>`.

use std::path::PathBuf;

use super::Host;
use virthost_model::accounts::User;
use virthost_model::assess;
use virthost_model::hostroot::HostRoot;
use virthost_model::os::Family;
use virthost_model::sshkey::read_key_file;

use crate::assessed::{self, Severity};
use crate::check::CheckResult;
use crate::options::Options;
use crate::probe::{FileKind, FileMeta};

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
    if !opts.user.is_root() {
        let user = host.accounts.user(opts.user.as_str()).cloned();
        out.extend(account(
            host,
            user.as_ref(),
            opts.user.as_str(),
            &opts.stack_keys,
            "--stack-key",
        ));
    }
    out
}

/// Whether sshd can take a connection: a process named `sshd` runs (`/proc/<pid>/comm`, the
/// shared reader), or something listens on sshd's port. The second is how a socket-activated
/// sshd looks (Ubuntu >= 22.10, 24.04 LTS included: `ssh.socket`): systemd holds the listening
/// socket and starts sshd only when a client connects.
fn sshd(host: &Host) -> CheckResult {
    let id = "ssh.sshd";
    let root = host.probe.root();
    if let Some(p) = virthost_model::facts::processes(root, |c| c == "sshd").first() {
        return CheckResult::pass(id, format!("sshd running (pid {})", p.pid));
    }
    let ports = sshd_ports(root);
    let shown = show_ports(&ports);
    let hint = "install openssh-server and start it: systemctl enable --now sshd (RHEL, Fedora), \
                ssh (Debian) or ssh.socket (Ubuntu >= 22.10); without systemd, run /usr/sbin/sshd";
    let Some(listening) = listening_tcp_ports(root) else {
        return CheckResult::fail(
            id,
            "no sshd process, and /proc/net/tcp is unreadable: cannot tell whether something \
             listens on sshd's port",
            hint,
        );
    };
    match ports.iter().find(|p| listening.contains(p)) {
        Some(port) => CheckResult::pass(
            id,
            format!("no sshd process, but port {port} listening (socket-activated?)"),
        ),
        None => CheckResult::fail(
            id,
            format!("no sshd process, and nothing listens on {shown}"),
            hint,
        ),
    }
}

/// `port 22`, `ports 22, 2222`.
fn show_ports(ports: &[u16]) -> String {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let word = if ports.len() == 1 { "port" } else { "ports" };
    format!("{word} {}", list.join(", "))
}

/// The ports sshd listens on: every `Port` of `/etc/ssh/sshd_config` and
/// `/etc/ssh/sshd_config.d/*.conf` (where Debian, Ubuntu and Fedora put their drop-ins),
/// 22 when none is set.
pub fn sshd_ports(root: &HostRoot) -> Vec<u16> {
    let mut texts: Vec<String> = root
        .read_optional("/etc/ssh/sshd_config")
        .ok()
        .flatten()
        .into_iter()
        .collect();
    if let Ok(dir) = std::fs::read_dir(root.path("/etc/ssh/sshd_config.d")) {
        let mut confs: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        confs.sort();
        texts.extend(confs.iter().filter_map(|p| std::fs::read_to_string(p).ok()));
    }
    let mut ports = Vec::new();
    for t in &texts {
        for p in config_ports(t) {
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
    }
    if ports.is_empty() {
        ports.push(22);
    }
    ports
}

/// The `Port` values of one sshd_config text (`Port 2222`, `port=2222`; keywords are
/// case-insensitive). sshd listens on every one. `Port` is not allowed inside a `Match`
/// block, so reading stops at the first `Match`.
pub fn config_ports(text: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let split = line
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(line.len());
        let (key, rest) = line.split_at(split);
        if key.eq_ignore_ascii_case("match") {
            break;
        }
        if !key.eq_ignore_ascii_case("port") {
            continue;
        }
        let value = rest.trim_start().trim_start_matches('=').trim_start();
        if let Some(port) = value.split_whitespace().next().and_then(|v| v.parse().ok()) {
            out.push(port);
        }
    }
    out
}

/// Local ports of the TCP sockets in state LISTEN (`0A`) of `/proc/net/tcp` and
/// `/proc/net/tcp6`; `None` when neither is readable.
pub fn listening_tcp_ports(root: &HostRoot) -> Option<Vec<u16>> {
    let mut any = false;
    let mut ports = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(Some(text)) = root.read_optional(f) {
            any = true;
            ports.extend(parse_listening(&text));
        }
    }
    any.then_some(ports)
}

/// The kernel's format (a header line, then one socket a line), read by procfs's
/// `TcpNetEntries`; nothing from a table it cannot read whole (the kernel writes none).
pub fn parse_listening(text: &str) -> Vec<u16> {
    use procfs::net::{TcpNetEntries, TcpState};
    use procfs::FromBufReadSI;
    let Ok(TcpNetEntries(sockets)) =
        TcpNetEntries::from_buf_read(text.as_bytes(), procfs::current_system_info())
    else {
        return Vec::new();
    };
    sockets
        .iter()
        .filter(|s| s.state == TcpState::Listen)
        .map(|s| s.local_address.port())
        .collect()
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
        if out.is_empty() {
            // The shared assessment, as bootstrap's keys step judges the file.
            let a = assess::keys::keys(&ak, &text, &wanted, flag);
            let (command, step) = if name == "root" {
                ("bootstrap --root-key FILE".to_string(), "root-keys")
            } else {
                (
                    format!("bootstrap --user {name} --stack-key FILE"),
                    "user-keys",
                )
            };
            out.push(assessed::result(
                &keys_id,
                Severity::Fail,
                (&command, step),
                &a,
            ));
        }
    }
    out.push(perms(host, user, &ak, &perms_id));
    out
}

/// sshd's StrictModes (OpenSSH's `safe_path`, formerly `auth_secure_path`): it reads
/// `authorized_keys` only when the file is a regular file and it and every directory above
/// it up to the home directory (`~/.ssh`, `~`) are owned by the user or root and writable by
/// neither group nor others. Read access is no concern of sshd's: a `~/.ssh` of 0755 works.
/// Debian's sshd, and so Ubuntu's (`secure_permissions`, Debian's user-group-modes patch),
/// also accepts group write when that group's only member is the file's owner (a private
/// group, as umask 002 leaves files there); validate applies that on apt hosts only.
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
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    let family = host.platform.as_ref().map_or(Family::Yum, |p| p.family);
    let writable =
        |m: &FileMeta| assess::keys::strict_modes_refuse(m.mode, m.gid, m.uid, a, family);
    let judge = |p: &str, m: &FileMeta, problems: &mut Vec<String>| {
        if writable(m) {
            problems.push(format!("{} is group- or world-writable", show(p, m)));
        }
        if m.uid != user.uid && m.uid != 0 {
            problems.push(format!(
                "{} is owned by neither {} nor root",
                show(p, m),
                user.name
            ));
        }
    };
    let fix = format!(
        "chown {n}: {dot_ssh} {ak}; chmod go-w {home} {dot_ssh} {ak} (sshd's StrictModes ignores \
         the keys otherwise; 0700 for {dot_ssh} and 0600 for {ak} are the usual modes)",
        n = user.name
    );
    if let Ok(m) = host.probe.meta(home) {
        judge(home, &m, &mut problems);
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
    judge(&dot_ssh, &ds, &mut problems);
    if let Ok(m) = host.probe.meta(ak) {
        seen.push(show(ak, &m));
        if m.kind != FileKind::File {
            problems.push(format!("{ak} is not a regular file"));
        }
        judge(ak, &m, &mut problems);
    }
    if problems.is_empty() {
        CheckResult::pass(id, seen.join(", "))
    } else {
        CheckResult::fail(id, problems.join("; "), fix)
    }
}
