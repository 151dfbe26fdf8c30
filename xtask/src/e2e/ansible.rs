//! The Ansible collection (`ansible/ansible_collections/virthost/hypervisor`, docs/ansible.md)
//! against the VM, after the plain ssh phases converged it: its `site.yml` play through
//! `ansible-playbook`, as a user with an inventory would run it.
//!
//! 1. `site.yml`: bootstrap (the host is converged, so no step changes; the binaries are
//!    put at their `remote_path`), validate, the fleet summary written under the run dir;
//! 2. `site.yml --check --diff --tags bootstrap`: no pending change (`changed=0`);
//! 3. `site.yml --tags bootstrap`: `changed=0`, timed beside the plain
//!    `ssh ... ./bootstrap --report json` it wraps;
//! 4. a fleet of [`FLEET`] inventory aliases of the VM with as many forks, validate with
//!    `--skip-boot --skip-power`: every alias in the recap and in the summary, none failed or
//!    changed (bootstrap's host lock serializes the concurrent runs on the one host).

use super::drive::{Input, Outcome, TCG_VM_BOOT_TIMEOUT_S, TCG_VM_DOMAIN_TYPE};
use super::{minutes, say, Phases};
use crate::cmd::{CommandExt, Watch};
use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Inventory aliases of the VM in the fleet run, and its forks.
pub const FLEET: usize = 3;
/// `site.yml` with validate's BIOS and UEFI boot proofs (validate alone has 10 min,
/// `drive::VALIDATE`).
const FULL_PLAY: Duration = minutes(15);
/// A bootstrap-only or `--skip-boot` play: a few seconds per host measured (docs/ansible.md).
const SHORT_PLAY: Duration = minutes(5);
/// The plain no-op bootstrap over ssh, for the comparison: 1.1-1.2 s measured.
const PLAIN: Duration = minutes(5);

/// `PLAY RECAP` counts of one host.
type Recap = BTreeMap<String, u64>;

struct Plays {
    playbook: PathBuf,
    dir: PathBuf,
    env: Vec<(&'static str, String)>,
}

pub fn run(inp: &Input, ph: &mut Phases, out: &mut Outcome) -> Result<()> {
    let root = super::workspace_root();
    ph.time("ansible: install", || {
        Command::new("bash")
            .arg(root.join("xtask/host/install-ansible.sh"))
            .run()
    })?;
    let dir = inp.run_dir.join("ansible");
    fs::create_dir_all(&dir)?;
    // The control sockets' paths must stay short (sun_path is 108 bytes).
    let control_dir = std::env::temp_dir().join(format!("virthost-e2e-cp-{}", std::process::id()));
    let plays = Plays {
        playbook: root.join("target/ansible-venv/bin/ansible-playbook"),
        env: vec![
            (
                "ANSIBLE_COLLECTIONS_PATH",
                root.join("ansible").display().to_string(),
            ),
            ("ANSIBLE_HOME", dir.join("home").display().to_string()),
            (
                "ANSIBLE_SSH_CONTROL_PATH_DIR",
                control_dir.display().to_string(),
            ),
            ("ANSIBLE_NOCOLOR", "1".into()),
            ("ANSIBLE_RETRY_FILES_ENABLED", "0".into()),
        ],
        dir,
    };
    let res = plays_against_the_vm(inp, &plays, ph, out);
    // ssh's ControlPersist masters exit on their own (60 s idle, or the VM's poweroff).
    let _ = fs::remove_dir_all(&control_dir);
    res
}

fn plays_against_the_vm(
    inp: &Input,
    plays: &Plays,
    ph: &mut Phases,
    out: &mut Outcome,
) -> Result<()> {
    let one = plays.inventory(inp, "inventory.yml", &["vm".to_string()])?;
    let mut vars = json!({
        "virthost_bootstrap_binary": inp.bootstrap,
        "virthost_validate_binary": inp.validate,
        "virthost_root_keys": inp.root_pub.iter().collect::<Vec<_>>(),
        "virthost_stack_keys": [&inp.stack_pub],
        "virthost_validate_allow_emulation": out.allow_emulation,
    });
    if inp.tcg_vm {
        vars["virthost_validate_domain_type"] = json!(TCG_VM_DOMAIN_TYPE);
        vars["virthost_validate_boot_timeout"] = json!(TCG_VM_BOOT_TIMEOUT_S);
    }
    let vars_file = plays.dir.join("vars.json");
    fs::write(&vars_file, serde_json::to_string_pretty(&vars)?)?;
    let e_vars = format!("@{}", vars_file.display());

    let (secs, recap, summary) = ph.time("ansible: site.yml", || {
        plays.play("site", &one, &["-e", &e_vars], FULL_PLAY)
    })?;
    let row = host_row(&summary, "vm")?;
    ensure!(
        row["bootstrap"]["status"] == "ok" && row["bootstrap"]["binary_copied"] == true,
        "site.yml: want bootstrap ok with the binary put on the converged VM, got {}",
        row["bootstrap"]
    );
    let v = &row["validate"];
    ensure!(
        v["status"] == "PASS" || v["status"] == "WARN",
        "site.yml: validate in the fleet summary: {v}"
    );
    out.ansible.push(format!(
        "site.yml {secs:.1} s: bootstrap ok (binaries put), validate {} PASS, {} WARN, {} FAIL \
         in fleet-summary.json; recap {}",
        v["pass"],
        v["warn"],
        v["fail"],
        recap_line(&recap["vm"])
    ));

    let (secs, recap, summary) = ph.time("ansible: check mode", || {
        plays.play(
            "check",
            &one,
            &["-e", &e_vars, "--check", "--diff", "--tags", "bootstrap"],
            SHORT_PLAY,
        )
    })?;
    let row = host_row(&summary, "vm")?;
    ensure!(
        recap["vm"]["changed"] == 0 && row["bootstrap"]["status"] == "ok",
        "check mode on the converged VM: want no pending change, got recap {} and {}",
        recap_line(&recap["vm"]),
        row["bootstrap"]
    );
    out.ansible.push(format!(
        "check mode {secs:.1} s: no pending change (changed=0)"
    ));

    let plain = plain_noop(inp)?;
    let (secs, recap, _) = ph.time("ansible: no-op play", || {
        plays.play(
            "noop",
            &one,
            &["-e", &e_vars, "--tags", "bootstrap"],
            SHORT_PLAY,
        )
    })?;
    ensure!(
        recap["vm"]["changed"] == 0,
        "the no-op play changed something: {}",
        recap_line(&recap["vm"])
    );
    out.ansible.push(format!(
        "no-op bootstrap play {secs:.1} s, changed=0 (the same bootstrap over plain ssh: \
         {plain:.1} s)"
    ));

    let aliases: Vec<String> = (1..=FLEET).map(|i| format!("vm-{i}")).collect();
    let fleet = plays.inventory(inp, "fleet.yml", &aliases)?;
    let mut fleet_vars = vars.clone();
    let obj = fleet_vars.as_object_mut().expect("an object");
    obj.remove("virthost_validate_domain_type");
    obj.remove("virthost_validate_boot_timeout");
    obj.insert("virthost_validate_skip_boot".into(), json!(true));
    obj.insert("virthost_validate_skip_power".into(), json!(true));
    let fleet_file = plays.dir.join("fleet-vars.json");
    fs::write(&fleet_file, serde_json::to_string_pretty(&fleet_vars)?)?;
    let forks = FLEET.to_string();
    let e_fleet = format!("@{}", fleet_file.display());
    let (secs, recap, summary) = ph.time(&format!("ansible: fleet of {FLEET}"), || {
        plays.play(
            "fleet",
            &fleet,
            &["-e", &e_fleet, "--forks", &forks],
            SHORT_PLAY,
        )
    })?;
    let mut waited = 0;
    for a in &aliases {
        let r = recap
            .get(a)
            .with_context(|| format!("fleet run: {a} is missing from the PLAY RECAP"))?;
        ensure!(
            r["failed"] == 0 && r["unreachable"] == 0 && r["ignored"] == 0 && r["changed"] == 0,
            "fleet run: {a}: {}",
            recap_line(r)
        );
        let row = host_row(&summary, a)?;
        ensure!(
            row["bootstrap"]["status"] == "ok" && row["validate"]["fail"] == 0,
            "fleet run: {a} in the summary: {row}"
        );
        waited += usize::from(row["bootstrap"]["waited_for_lock"] == true);
    }
    out.ansible.push(format!(
        "fleet of {FLEET} aliases, forks {FLEET}, {secs:.1} s: all {FLEET} in the recap and the \
         summary, changed=0 failed=0 each; {waited} bootstrap run(s) waited for the host lock"
    ));
    Ok(())
}

impl Plays {
    /// Writes an inventory (YAML's JSON form) of `hosts`, every one the VM, with the run's
    /// root key and pinned known_hosts (the ssh options e2e itself uses).
    fn inventory(&self, inp: &Input, file: &str, hosts: &[String]) -> Result<PathBuf> {
        let a = &inp.admin;
        let port = a.port.context("the VM has a forwarded port")?;
        let hosts: serde_json::Map<String, Value> = hosts
            .iter()
            .map(|h| {
                (
                    h.clone(),
                    json!({"ansible_host": a.host, "ansible_port": port}),
                )
            })
            .collect();
        let common: Vec<String> = a.opts().iter().map(|o| quote(o)).collect();
        let inv = json!({"hypervisors": {
            "hosts": hosts,
            "vars": {"ansible_user": a.user, "ansible_ssh_common_args": common.join(" ")},
        }});
        let path = self.dir.join(file);
        fs::write(&path, serde_json::to_string_pretty(&inv)?)?;
        Ok(path)
    }

    /// Runs `site.yml` (by its FQCN, as the collection's README says) with the fleet
    /// summary in `<dir>/<name>/`; keeps the output in `<dir>/<name>.log`. Returns the
    /// time, the recap and the summary; fails unless ansible-playbook exits 0.
    fn play(
        &self,
        name: &str,
        inventory: &Path,
        args: &[&str],
        limit: Duration,
    ) -> Result<(f64, BTreeMap<String, Recap>, Value)> {
        let summary_dir = self.dir.join(name);
        let mut cmd = Command::new(&self.playbook);
        cmd.arg("-i")
            .arg(inventory)
            .arg("virthost.hypervisor.site")
            .args(args)
            .arg("-e")
            .arg(format!(
                "virthost_fleet_summary_dir={}",
                summary_dir.display()
            ))
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        say(&crate::cmd::display(&cmd));
        let start = Instant::now();
        let res = cmd.output_within(limit, Watch::Live)?;
        let secs = start.elapsed().as_secs_f64();
        let text = String::from_utf8_lossy(&res.stdout);
        let log = self.dir.join(format!("{name}.log"));
        fs::write(&log, text.as_bytes())?;
        let recap = recap(&text);
        for (h, r) in &recap {
            say(&format!("  {h}: {}", recap_line(r)));
        }
        if !res.status.success() {
            bail!(
                "ansible-playbook exited {} (output {}):\n{}",
                res.status,
                log.display(),
                tail(&text, 40)
            );
        }
        let file = summary_dir.join("fleet-summary.json");
        let summary: Value = serde_json::from_slice(
            &fs::read(&file).with_context(|| format!("reading {}", file.display()))?,
        )
        .with_context(|| format!("{} is not JSON", file.display()))?;
        if let Ok(md) = fs::read_to_string(summary_dir.join("fleet-summary.md")) {
            md.lines().for_each(|l| say(&format!("  {l}")));
        }
        Ok((secs, recap, summary))
    }
}

/// The plain no-op bootstrap over ssh, as drive runs it: what the play wraps.
fn plain_noop(inp: &Input) -> Result<f64> {
    let mut cmd = String::from("./bootstrap --report json");
    if let Some(r) = &inp.root_pub {
        cmd.push_str(&format!(" --root-key {}", file_name(r)));
    }
    cmd.push_str(&format!(" --stack-key {}", file_name(&inp.stack_pub)));
    let start = Instant::now();
    let res = inp.admin.capture(&cmd, PLAIN)?;
    ensure!(res.status.success(), "`{cmd}` exited {}", res.status);
    Ok(start.elapsed().as_secs_f64())
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn host_row<'a>(summary: &'a Value, host: &str) -> Result<&'a Value> {
    summary["hosts"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["host"] == host))
        .with_context(|| format!("{host} is missing from the fleet summary: {summary}"))
}

/// The `PLAY RECAP` of ansible-playbook's output: host -> {ok, changed, unreachable, ...}.
fn recap(output: &str) -> BTreeMap<String, Recap> {
    output
        .lines()
        .skip_while(|l| !l.starts_with("PLAY RECAP"))
        .skip(1)
        .filter_map(|l| {
            let (host, counts) = l.split_once(" : ")?;
            let counts: Recap = counts
                .split_whitespace()
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), v.parse().ok()?))
                })
                .collect();
            (!counts.is_empty()).then(|| (host.trim().to_string(), counts))
        })
        .collect()
}

fn recap_line(r: &Recap) -> String {
    r.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A word for ansible's shlex split of `ansible_ssh_common_args`.
fn quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_=./:,@+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_play_recap_per_host() {
        let out = "TASK [x] ***\nok: [vm-1]\n\nPLAY RECAP *********\n\
            localhost                  : ok=5    changed=2    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0   \n\
            vm-1                       : ok=3    changed=0    unreachable=0    failed=1    skipped=0    rescued=0    ignored=1   \n\n";
        let r = recap(out);
        assert_eq!(r.keys().collect::<Vec<_>>(), ["localhost", "vm-1"]);
        assert_eq!(r["vm-1"]["failed"], 1);
        assert_eq!(r["localhost"]["changed"], 2);
        assert_eq!(
            recap_line(&r["vm-1"]),
            "changed=0 failed=1 ignored=1 ok=3 rescued=0 skipped=0 unreachable=0"
        );
    }

    #[test]
    fn ssh_options_survive_shlex() {
        assert_eq!(
            quote("UserKnownHostsFile=/r/known_hosts"),
            "UserKnownHostsFile=/r/known_hosts"
        );
        assert_eq!(quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
