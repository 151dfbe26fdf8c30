//! `cargo xtask test`: the project's test command. On a fresh machine it installs what the
//! tests need (`xtask/host/install-deps.sh`), starts the services they talk to
//! (`xtask/host/start-services.sh`: D-Bus, polkitd, virtlogd, libvirtd in a network
//! namespace), then runs the whole workspace's tests with `VIRTHOST_REQUIRE_REAL=1`, so a
//! real-system test whose daemon is missing fails instead of skipping. When they pass, it
//! checks that the suite left no boot-proof domain, network or serial file behind, then
//! tests the Ansible collection ([`ansible`]).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cmd::CommandExt;
use crate::dist::workspace_root;

/// The name prefix of everything `validate`'s boot proof creates (`validate::boot::PREFIX`;
/// xtask does not link `validate`, which links libvirt).
const PREFIX: &str = "virthost-validate-";
/// The daemon the real-system tests use.
const URI: &str = bootstrap::desired::LIBVIRT_URI;
/// libvirtd destroys an auto-destroy domain a moment after its client's connection closes.
const SETTLE: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct Args {
    /// Arguments passed to `cargo test` after `--workspace` (e.g. a test name filter).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cargo_args: Vec<String>,
}

pub fn run(args: &Args) -> Result<()> {
    let root = workspace_root();
    if !nix::unistd::Uid::effective().is_root() {
        bail!(
            "the test suite drives a real libvirtd, polkit and package manager and needs root; \
             run it as root (CI does), e.g. `sudo -E cargo xtask test`"
        );
    }
    for script in ["install-deps.sh", "start-services.sh"] {
        let path = root.join("xtask/host").join(script);
        let status = Command::new("bash")
            .arg(&path)
            .status()
            .with_context(|| format!("running {}", path.display()))?;
        if !status.success() {
            bail!("{} failed ({status})", path.display());
        }
    }
    let status = crate::dist::cargo()
        .current_dir(&root)
        .args(["test", "--workspace"])
        .args(&args.cargo_args)
        .env("VIRTHOST_REQUIRE_REAL", "1")
        .env("VIRTHOST_TEST_LIBVIRT", "1")
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    let left = leftovers_settled()?;
    if !left.is_empty() {
        bail!(
            "the tests passed but left {} boot-proof object(s) behind (a test or `validate` \
             does not clean up):\n  {}",
            left.len(),
            left.join("\n  ")
        );
    }
    println!("xtask test: no {PREFIX}* domain, network, serial or NVRAM file left");
    ansible(&root)
}

/// The Ansible collection's tests (docs/ansible.md): `xtask/host/install-ansible.sh` (a venv
/// with the pinned ansible-core and pytest, and ansible-test's sanity environments),
/// `ansible-galaxy collection build`, the unit tests of its report mapping on captured
/// reports, and `ansible-test sanity`.
fn ansible(root: &Path) -> Result<()> {
    let script = root.join("xtask/host/install-ansible.sh");
    Command::new("bash").arg(&script).run()?;
    let bin = root.join("target/ansible-venv/bin");
    let collection = root.join("ansible/ansible_collections/virthost/hypervisor");
    Command::new(bin.join("ansible-galaxy"))
        .args(["collection", "build", "--force", "--output-path"])
        .arg(root.join("target/ansible-dist"))
        .arg(&collection)
        .run()?;
    Command::new(bin.join("python"))
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit"])
        .current_dir(&collection)
        .env("PYTHONPATH", root.join("ansible"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .run()?;
    let version = Command::new(bin.join("python"))
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .run_output()?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    // ansible-test prints one "Running sanity test" line per test and, on success, nothing
    // else worth keeping: say how many ran instead.
    let start = Instant::now();
    let out = Command::new(bin.join("ansible-test"))
        .args(["sanity", "--python", &version, "--color", "no"])
        .current_dir(&collection)
        .output()
        .context("running ansible-test sanity")?;
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("ansible-test sanity failed ({}):\n{text}", out.status);
    }
    let ran = text
        .lines()
        .filter(|l| l.starts_with("Running sanity test"))
        .count();
    println!(
        "ansible-test sanity on Python {version}: {:.0} s",
        start.elapsed().as_secs_f64()
    );
    println!("sanity: {ran} passed, 0 failed");
    Ok(())
}

/// [`leftovers`], asked again for up to [`SETTLE`] while any remain.
fn leftovers_settled() -> Result<Vec<String>> {
    let start = Instant::now();
    loop {
        let left = leftovers(
            &virsh_names("list")?,
            &virsh_names("net-list")?,
            &temp_files()?,
        );
        if left.is_empty() || start.elapsed() > SETTLE {
            return Ok(left);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `virsh -c qemu:///system <list> --all --name`: one name a line.
fn virsh_names(list: &str) -> Result<String> {
    let out = Command::new("virsh")
        .args(["-c", URI, list, "--all", "--name"])
        .run_output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Where libvirt keeps UEFI domains' variable stores (`validate::boot::NVRAM_DIR`; xtask
/// does not link validate).
const NVRAM_DIR: &str = "/var/lib/libvirt/qemu/nvram";

/// Where the UEFI boot proof puts its networks' TFTP roots, `<network>.tftp`
/// (the model's, which validate uses).
use bootstrap::desired::LIBVIRT_DNSMASQ_DIR as DNSMASQ_DIR;

/// The paths of the files in `$TMPDIR` (where the boot proof puts its serial files), in
/// [`NVRAM_DIR`] (its UEFI domains' NVRAM files) and in [`DNSMASQ_DIR`] (its TFTP roots).
fn temp_files() -> Result<Vec<String>> {
    let mut out = Vec::new();
    for dir in [std::env::temp_dir(), NVRAM_DIR.into(), DNSMASQ_DIR.into()] {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        out.extend(entries.flatten().map(|e| e.path().display().to_string()));
    }
    Ok(out)
}

/// The boot-proof domains and networks among the names `virsh` listed, and the serial and
/// NVRAM files among `files` (paths), each described with its owner's pid.
fn leftovers(domains: &str, networks: &str, files: &[String]) -> Vec<String> {
    let ours = |n: &&str| n.starts_with(PREFIX);
    let mut out = Vec::new();
    for n in domains.lines().map(str::trim).filter(ours) {
        out.push(format!("domain {n}{}", owner(n)));
    }
    for n in networks.lines().map(str::trim).filter(ours) {
        out.push(format!("network {n}{}", owner(n)));
    }
    for path in files {
        let n = Path::new(path)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if n.starts_with(PREFIX)
            && (n.ends_with(".serial") || n.ends_with("_VARS.fd") || n.ends_with(".tftp"))
        {
            out.push(format!("file {path}{}", owner(&n)));
        }
    }
    out
}

/// ` (pid N, gone)` or ` (pid N, still running)` for `virthost-validate-<N>-...`: a running
/// owner is a `validate` outside the suite (or one a test failed to stop).
fn owner(name: &str) -> String {
    let pid = name
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split('-').next())
        .and_then(|p| p.parse::<u32>().ok());
    match pid {
        Some(pid) if Path::new(&format!("/proc/{pid}")).exists() => {
            format!(" (pid {pid}, still running)")
        }
        Some(pid) => format!(" (pid {pid}, gone)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_the_boot_proofs_objects_only() {
        let me = std::process::id();
        let domains = format!("vm1\n{PREFIX}999999999-1a2b3c4d-virtio\n\n");
        let networks = format!("default\n{PREFIX}{me}-1a2b3c4d-0\nvirthost-e2e\n");
        let tmp = std::env::temp_dir();
        let serial = tmp.join(format!("{PREFIX}999999999-1a2b3c4d-e1000.serial"));
        let nvram = format!("{NVRAM_DIR}/{PREFIX}999999999-1a2b3c4d-uefi-virtio_VARS.fd");
        let tftp = format!("{DNSMASQ_DIR}/{PREFIX}999999999-1a2b3c4d-uefi-0.tftp");
        let files = vec![
            serial.display().to_string(),
            tmp.join(format!("{PREFIX}999999999-1a2b3c4d-e1000.log"))
                .display()
                .to_string(),
            tmp.join("other.serial").display().to_string(),
            format!("{NVRAM_DIR}/some-vm_VARS.fd"),
            nvram.clone(),
            tftp.clone(),
            format!("{DNSMASQ_DIR}/default.conf"),
        ];
        assert_eq!(
            leftovers(&domains, &networks, &files),
            [
                format!("domain {PREFIX}999999999-1a2b3c4d-virtio (pid 999999999, gone)"),
                format!("network {PREFIX}{me}-1a2b3c4d-0 (pid {me}, still running)"),
                format!("file {} (pid 999999999, gone)", serial.display()),
                format!("file {nvram} (pid 999999999, gone)"),
                format!("file {tftp} (pid 999999999, gone)"),
            ]
        );
        assert!(leftovers("default\n\n", "\n", &[]).is_empty());
    }
}
