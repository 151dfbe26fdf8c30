//! `cargo xtask bench`: the no-op time of `bootstrap` beside an equivalent Ansible play on
//! the same machine (issue 2's goal: at least 20x faster; ENVIRONMENT.md measured the play
//! at 5.3-5.6 s). Prints figures; asserts nothing about time.
//!
//! It converges THIS machine first (it runs `bootstrap` for real: packages, the `stack`
//! user, the polkit rule, keys, the storage pool `default` at /var/lib/libvirt/images), so
//! run it on a development or CI machine, as root.
//! The play is rendered from the same desired-state model `bootstrap` uses, so both
//! converge the same packages and files.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cmd::CommandExt;
use bootstrap::desired::{self, PolkitBackend};
use bootstrap::hostroot::HostRoot;
use bootstrap::os::{OsRelease, Platform};
use bootstrap::username::{Rules, UserName};

#[derive(clap::Args)]
pub struct Args {
    /// Timed no-op runs of each.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

pub fn run(args: &Args) -> Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("the benchmark converges this machine with bootstrap and needs root");
    }
    let dist = crate::dist::run()?;
    let root = crate::dist::workspace_root();
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir)?;

    // Throwaway keys for root and stack.
    let key = dir.join("bench_ed25519");
    if !key.exists() {
        run_ok(
            Command::new("ssh-keygen")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "virthost-bench",
                    "-f",
                ])
                .arg(&key),
        )?;
    }
    let pubkey = dir.join("bench_ed25519.pub");

    // Ansible in a venv of its own; `apt` needs python3-apt from the system python.
    let venv = dir.join("ansible-venv");
    if !venv.join("bin/ansible-playbook").exists() {
        run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run_ok(Command::new(venv.join("bin/pip")).args(["install", "-q", "ansible-core"]))?;
    }
    run_ok(
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "python3-apt",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    let play = dir.join("converge.yml");
    std::fs::write(&play, playbook(&pubkey.read_pubkey()?)?)?;

    let bootstrap_cmd = || {
        let mut c = Command::new(&dist.bootstrap);
        c.arg("--root-key")
            .arg(&pubkey)
            .arg("--stack-key")
            .arg(&pubkey)
            .args(["--report", "json"]);
        c
    };
    let ansible_cmd = || {
        let mut c = Command::new(venv.join("bin/ansible-playbook"));
        c.args([
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            "ansible_python_interpreter=/usr/bin/python3",
        ])
        .arg(&play)
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_LOCALHOST_WARNING", "false");
        c
    };

    println!("bench: converging this machine once with bootstrap and with the play");
    run_ok(&mut bootstrap_cmd())?;
    run_ok(&mut ansible_cmd())?;

    let b = time_runs(args.runs, bootstrap_cmd)?;
    let a = time_runs(args.runs, ansible_cmd)?;
    let (bm, am) = (median(&b), median(&a));
    println!(
        "bench: no-op converge, median of {} runs (min..max)",
        args.runs
    );
    println!(
        "  bootstrap       {:>9.1} ms  ({:.1}..{:.1})",
        ms(bm),
        ms(b[0]),
        ms(*b.last().unwrap())
    );
    println!(
        "  ansible-playbook {:>8.1} ms  ({:.1}..{:.1})",
        ms(am),
        ms(a[0]),
        ms(*a.last().unwrap())
    );
    println!(
        "  bootstrap is {:.0}x faster (goal: at least 20x)",
        am.as_secs_f64() / bm.as_secs_f64()
    );
    Ok(())
}

trait ReadPubkey {
    fn read_pubkey(&self) -> Result<String>;
}
impl ReadPubkey for std::path::PathBuf {
    fn read_pubkey(&self) -> Result<String> {
        Ok(std::fs::read_to_string(self)
            .with_context(|| format!("reading {}", self.display()))?
            .trim()
            .to_string())
    }
}

/// The Ansible equivalent of bootstrap's converge, rendered from `bootstrap::desired`.
fn playbook(pubkey: &str) -> Result<String> {
    let host = HostRoot::system();
    let os = OsRelease::parse(&host.read_to_string("/etc/os-release")?);
    let platform = Platform::detect(&os, None)?;
    if platform.family != bootstrap::os::Family::Apt {
        bail!("the benchmark's play is written for apt hosts");
    }
    let pkgs: Vec<String> = desired::packages(&platform)
        .iter()
        .map(|p| format!("\"{}\"", p.name))
        .collect();
    let user = desired::DEFAULT_USER;
    let rule = PolkitBackend::Rules.content(&UserName::parse(user, Rules::Debian)?)?;
    let indent = |s: &str| {
        s.lines()
            .map(|l| format!("          {l}\n"))
            .collect::<String>()
    };
    Ok(format!(
        r#"- hosts: localhost
  gather_facts: true
  tasks:
    - name: virtualization packages
      ansible.builtin.apt:
        name: [{pkgs}]
        state: present
        install_recommends: false
    - name: nested virtualization
      ansible.builtin.copy:
        dest: {nested_path}
        mode: "0644"
        content: |
{nested}
    - name: /dev/kvm for the kvm group
      ansible.builtin.copy:
        dest: {udev_path}
        mode: "0644"
        content: |
{udev}
    - name: the {user} user
      ansible.builtin.user:
        name: {user}
        shell: {shell}
        create_home: true
    - name: polkit lets {user} manage libvirt
      ansible.builtin.copy:
        dest: {rule_path}
        mode: "0644"
        content: |
{rule}
    - name: ssh directories
      ansible.builtin.file:
        path: "{{{{ item.home }}}}/.ssh"
        state: directory
        owner: "{{{{ item.user }}}}"
        mode: "0700"
      loop: [{{user: root, home: /root}}, {{user: {user}, home: /home/{user}}}]
    - name: authorized keys
      ansible.builtin.lineinfile:
        path: "{{{{ item.home }}}}/.ssh/authorized_keys"
        line: "{pubkey}"
        create: true
        owner: "{{{{ item.user }}}}"
        mode: "0600"
      loop: [{{user: root, home: /root}}, {{user: {user}, home: /home/{user}}}]
    - name: libvirtd running
      ansible.builtin.command: pgrep -x libvirtd
      changed_when: false
    - name: storage pool {pool} at {images}
      ansible.builtin.shell: >-
        virsh -c {uri} pool-info {pool} | grep -qE '^State: +running' &&
        virsh -c {uri} pool-dumpxml {pool} | grep -qF '<path>{images}</path>'
      changed_when: false
"#,
        pkgs = pkgs.join(", "),
        nested_path = desired::NESTED_CONF_PATH,
        nested = indent(&desired::nested_conf(bootstrap::cpu::VirtExtension::Vmx)),
        udev_path = desired::KVM_UDEV_RULE_PATH,
        udev = indent(&desired::kvm_udev_rule()),
        shell = desired::USER_SHELL,
        rule_path = desired::POLKIT_RULE_PATH,
        rule = indent(&rule),
        pool = desired::POOL_NAME,
        images = desired::IMAGES_DIR,
        uri = desired::LIBVIRT_URI,
    ))
}

/// Runs quietly; a failure carries the command line and its stderr.
fn run_ok(cmd: &mut Command) -> Result<()> {
    cmd.run_output().map(|_| ())
}

fn time_runs(n: usize, mut make: impl FnMut() -> Command) -> Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let start = Instant::now();
        run_ok(&mut make())?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times)
}

fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
