//! `cargo xtask e2e`: boot a VM that plays the hypervisor and drive `bootstrap` and `validate`
//! in it over SSH, exactly as a user would. See docs/e2e.md.
//!
//! Phases: host tools -> build -> image (cached) -> boot -> drive -> shutdown -> summary.
//! Everything a run leaves (reports, serial log, QEMU log, keys) is under target/e2e/<run>/.

pub mod ansible;
pub mod build;
pub mod cloudimage;
pub mod drive;
pub mod image;
pub mod seed;
pub mod ssh;
pub mod tools;
pub mod vm;

use crate::cmd::{CommandExt, Watch};
use anyhow::{bail, Context, Result};
use ssh::{HostKeys, Remote};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The per-run disk: the image's 16G ext4 is grown to this at boot (`resize2fs`; in a cloud
/// image cloud-init's growpart and resizefs do it), so that validate's capacity check (40 GB
/// for one spec-minimum VM) passes. Thin: costs nothing.
const RUN_DISK: u64 = 64 << 30;
/// Deadline of `cloud-init status --wait` in a cloud image (--image), after SSH answers.
const CLOUD_INIT: Duration = minutes(10);
/// Deadline of the online `resize2fs` to RUN_DISK (measured 3 s; see docs/e2e.md, "Deadlines").
const GROW_FS: Duration = minutes(2);
/// Deadline of the `systemctl poweroff` ssh (its connection usually just drops); QEMU then
/// gets 60 s to exit before it is killed.
const POWEROFF: Duration = Duration::from_secs(30);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Leave the VM running at the end and print how to SSH in
    #[arg(long)]
    pub keep: bool,
    /// The Debian release of the built image
    #[arg(long, value_enum, default_value_t, conflicts_with_all = ["image", "host"])]
    pub distro: image::Distro,
    /// Rebuild the cached Debian image even if one exists for the current recipe
    #[arg(long)]
    pub rebuild_image: bool,
    /// Use the binaries already in target/dist/ instead of building them
    #[arg(long)]
    pub no_build: bool,
    /// Only build (or find) the cached image, then stop
    #[arg(long, conflicts_with_all = ["image", "host"])]
    pub image_only: bool,
    /// Only build (or find) the cached cloud image of --distro (cloud-init, GRUB, no key
    /// inside: what a stock cloud image is to --image), print its path on stdout, then stop
    #[arg(long, conflicts_with_all = ["image", "host", "image_only"])]
    pub build_cloud_image: bool,
    /// Boot this cloud image (a stock CentOS Stream, Rocky, Alma, RHEL, Ubuntu or Debian
    /// qcow2) from its own boot loader instead of the built Debian one. A NoCloud seed made per
    /// run gives cloud-init root's key and the SSH host key the run pins (docs/e2e.md)
    #[arg(long, value_name = "PATH", conflicts_with = "host")]
    pub image: Option<PathBuf>,
    /// The VM's network: `restricted` (restrict=on: the guest reaches only its SSH port) or
    /// `user` (the guest reaches what this machine reaches, for --image whose repositories
    /// are online)
    #[arg(long, value_enum, default_value_t, conflicts_with = "host")]
    pub guest_net: vm::GuestNet,
    /// Skip the VM: run the same sequence against this real host over SSH (root, or a user
    /// with passwordless sudo)
    #[arg(long, value_name = "USER@HOST")]
    pub host: Option<String>,
    /// validate's check ID is expected to FAIL on this target: a known finding, documented
    /// (e.g. `boot.uefi.virtio` on Debian 13, docs/uefi-debian13.md). The run fails when it does
    /// not FAIL, and on any other FAIL. Repeatable
    #[arg(long, value_name = "ID")]
    pub expect_fail: Vec<String>,
    /// Do not drive the VM with the Ansible collection (the default Debian 12 run does)
    #[arg(long)]
    pub skip_ansible: bool,
    /// With --host: the ssh configuration file to use (`ssh -F`), e.g. the `ssh_config` a
    /// `--keep` run writes for its VM
    #[arg(long, value_name = "FILE", requires = "host")]
    pub ssh_config: Option<PathBuf>,
    /// With --host: validate's test domains are `qemu` ones with a long boot timeout, as in a
    /// VM under TCG (a host that is itself an emulated VM, like a kept e2e VM)
    #[arg(long, requires = "host")]
    pub host_is_tcg_vm: bool,
}

/// Phase timings for the summary.
#[derive(Default, serde::Serialize)]
pub struct Phases {
    pub list: Vec<Phase>,
}

#[derive(serde::Serialize)]
pub struct Phase {
    pub name: String,
    pub secs: f64,
    pub ok: bool,
}

impl Phases {
    /// Runs `f` as the phase `name`, recording its time and outcome.
    pub fn time<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        say(&format!("== {name}"));
        let start = Instant::now();
        let out = f();
        let secs = start.elapsed().as_secs_f64();
        say(&format!(
            "== {name}: {secs:.1} s{}",
            if out.is_ok() { "" } else { " FAILED" }
        ));
        self.list.push(Phase {
            name: name.into(),
            secs,
            ok: out.is_ok(),
        });
        out.with_context(|| format!("phase `{name}`"))
    }

    fn record(&mut self, name: &str, secs: f64) {
        self.list.push(Phase {
            name: name.into(),
            secs,
            ok: true,
        });
    }
}

/// What the run found, written to summary.json and printed.
#[derive(Default, serde::Serialize)]
struct Summary {
    run_dir: PathBuf,
    target: String,
    accel: String,
    phases: Phases,
    total_secs: f64,
    outcome: drive::Outcome,
    error: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    vm::install_signal_handlers()?;
    let started = Instant::now();
    let e2e_dir = target_dir().join("e2e");
    let cache = e2e_dir.join("cache");
    if args.image_only {
        tools::ensure(tools::Needs {
            qemu: true,
            image_build: true,
            cloud_image: false,
            seed: false,
        })?;
        let (img, _) = image::ensure(&cache, args.distro, args.rebuild_image)?;
        say(&format!("image ready: {}", img.dir.display()));
        return Ok(());
    }

    if args.build_cloud_image {
        tools::ensure(tools::Needs {
            qemu: true,
            image_build: true,
            cloud_image: true,
            seed: false,
        })?;
        let disk = cloudimage::ensure(&cache, args.distro, args.rebuild_image)?;
        println!("{}", disk.display());
        return Ok(());
    }

    let run_dir = e2e_dir.join(stamp());
    fs::create_dir_all(&run_dir)?;
    let latest = e2e_dir.join("latest");
    let _ = fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(run_dir.file_name().unwrap(), &latest);
    say(&format!("run directory {}", run_dir.display()));

    let mut s = Summary {
        run_dir: run_dir.clone(),
        ..Default::default()
    };
    let result = run_phases(&args, &cache, &run_dir, &mut s);
    s.total_secs = started.elapsed().as_secs_f64();
    if let Err(e) = &result {
        s.error = Some(format!("{e:#}"));
    }
    fs::write(
        run_dir.join("summary.json"),
        serde_json::to_string_pretty(&s)?,
    )?;
    print_summary(&s);
    result
}

fn run_phases(args: &Args, cache: &Path, run_dir: &Path, s: &mut Summary) -> Result<()> {
    let in_vm = args.host.is_none();
    tools::ensure(tools::Needs {
        qemu: in_vm,
        image_build: in_vm && args.image.is_none(),
        cloud_image: false,
        seed: args.image.is_some(),
    })?;
    let ph = &mut s.phases;
    // The image (cached, or a few minutes of debootstrap) is made while cargo builds.
    let want_image = in_vm && args.image.is_none();
    let (dist, image) = std::thread::scope(|sc| {
        let img = want_image.then(|| {
            sc.spawn(|| {
                let start = Instant::now();
                image::ensure(cache, args.distro, args.rebuild_image)
                    .map(|(i, t)| (i, t, start.elapsed()))
            })
        });
        let dist = if args.no_build {
            build::existing()
        } else {
            ph.time("build", build::dist)
        };
        let img = img.map(|h| h.join().expect("the image thread panicked"));
        (dist, img)
    });
    let image = image.transpose().context("the target image")?;
    if let Some((_, times, elapsed)) = &image {
        match times {
            Some(t) => t
                .steps
                .iter()
                .for_each(|(n, secs)| ph.record(&format!("image: {n}"), *secs)),
            None => ph.record("image (cached)", elapsed.as_secs_f64()),
        }
    }
    let dist = dist?;
    let root_key = run_dir.join("root_ed25519");
    let stack_key = run_dir.join("stack_ed25519");
    ssh::keygen(&root_key, "virthost-e2e-root")?;
    ssh::keygen(&stack_key, "virthost-e2e-stack")?;
    let root_pub = run_dir.join("root.pub");
    let stack_pub = run_dir.join("stack.pub");
    fs::copy(root_key.with_extension("pub"), &root_pub)?;
    fs::copy(stack_key.with_extension("pub"), &stack_pub)?;

    if let Some(dest) = &args.host {
        let (user, host) = dest.split_once('@').unwrap_or(("root", dest.as_str()));
        s.target = format!("host {user}@{host}");
        let admin = Remote {
            user: user.into(),
            host: host.into(),
            port: None,
            identity: None,
            config: args.ssh_config.clone(),
            host_keys: HostKeys::UserConfig,
            serial_log: None,
        };
        ph.time("ssh to host", || {
            admin.wait(Duration::from_secs(30), || Ok(()))
        })?;
        let stack = admin.as_user("stack", Some(stack_key.clone()));
        let input = drive::Input {
            admin,
            stack,
            bootstrap: dist.bootstrap,
            validate: dist.validate,
            root_pub: None,
            stack_pub,
            run_dir: run_dir.into(),
            interrupt: false,
            tcg_vm: args.host_is_tcg_vm,
            expect_fail: args.expect_fail.clone(),
            ansible: false,
        };
        return drive::drive(&input, ph, &mut s.outcome);
    }

    // The VM.
    let (accel, why) = vm::detect_accel();
    say(&format!("accelerator: {why}"));
    s.accel = why;
    let port = vm::free_port()?;
    let overlay = run_dir.join("disk.qcow2");
    let known_hosts = run_dir.join("known_hosts");
    let (boot, seed) = match &args.image {
        Some(user_image) => {
            s.target = format!("VM from {}", user_image.display());
            vm::overlay(user_image, &overlay, Some(RUN_DISK))?;
            let host_key = run_dir.join("host_ed25519");
            ssh::keygen(&host_key, "virthost-e2e-host")?;
            fs::write(
                &known_hosts,
                format!(
                    "[127.0.0.1]:{port} {}\n",
                    ssh::key_type_and_blob(&host_key.with_extension("pub"))?
                ),
            )?;
            let iso = seed::write(
                run_dir,
                &seed::Seed {
                    root_pub: &root_pub,
                    host_key: &host_key,
                    instance_id: &format!("virthost-e2e-{}", stamp()),
                },
            )?;
            (None, Some(iso))
        }
        None => {
            s.target = format!("VM from the built {} image", args.distro.name());
            let (img, _, _) = image.expect("built above");
            vm::overlay(&img.disk, &overlay, Some(RUN_DISK))?;
            fs::write(
                &known_hosts,
                format!("[127.0.0.1]:{port} {}\n", img.host_key),
            )?;
            let append = format!(
                "root=/dev/vda rw console=ttyS0 virthost.root_key={}",
                ssh::pub_blob(&root_pub)?
            );
            (Some((img.kernel, img.initrd, append)), None)
        }
    };
    let mut vm = vm::start(&vm::Boot {
        disk: overlay,
        kernel: boot,
        accel,
        run_dir: run_dir.into(),
        port,
        keep: args.keep,
        seed,
        net: args.guest_net,
    })?;
    let admin = Remote {
        user: "root".into(),
        host: "127.0.0.1".into(),
        port: Some(port),
        identity: Some(root_key.clone()),
        config: None,
        host_keys: HostKeys::Pinned(known_hosts.clone()),
        serial_log: Some(vm.serial.clone()),
    };
    say(&format!(
        "QEMU pid {}, SSH on 127.0.0.1:{port}, serial {}",
        vm.pid().unwrap_or(0),
        vm.serial.display()
    ));
    let timeout = Duration::from_secs(if accel == vm::Accel::Kvm { 180 } else { 420 });
    let cloud = args.image.is_some();
    ph.time("boot to ssh", || {
        admin.wait(timeout, || vm.check_alive()).map_err(|e| {
            let hint = if cloud {
                "\n(--image: the image must run cloud-init with the NoCloud datasource, as stock \
                 cloud images do; the run's key and host key reach it only through the seed)"
            } else {
                ""
            };
            anyhow::anyhow!(
                "{e:#}{hint}\n--- serial tail ({}):\n{}",
                vm.serial.display(),
                vm.serial_tail(30)
            )
        })
    })?;
    if cloud {
        ph.time("cloud-init", || wait_cloud_init(&admin, run_dir))?;
    } else {
        ph.time("grow root fs", || {
            let out = admin.capture("resize2fs /dev/vda >&2", GROW_FS)?;
            anyhow::ensure!(
                out.status.success(),
                "resize2fs /dev/vda failed: {}",
                out.status
            );
            Ok(())
        })?;
    }
    let stack = admin.as_user("stack", Some(stack_key.clone()));
    let input = drive::Input {
        admin: admin.clone(),
        stack,
        bootstrap: dist.bootstrap,
        validate: dist.validate,
        root_pub: Some(root_pub),
        stack_pub,
        run_dir: run_dir.into(),
        interrupt: true,
        tcg_vm: accel == vm::Accel::Tcg,
        expect_fail: args.expect_fail.clone(),
        ansible: !args.skip_ansible,
    };
    let driven = drive::drive(&input, ph, &mut s.outcome);

    if args.keep {
        let pid = vm.release();
        let config = write_ssh_config(run_dir, &admin)?;
        let ssh_cmd = ssh_command(&admin);
        say(&format!(
            "--keep: VM left running (QEMU pid {})",
            pid.unwrap_or(0)
        ));
        say(&format!("  ssh in:  {ssh_cmd}"));
        say(&format!(
            "  as stack: {}",
            ssh_command(&admin.as_user("stack", Some(stack_key)))
        ));
        say(&format!(
            "  e2e again, as against a real host: cargo xtask e2e --host {KEPT_HOST} --ssh-config {}{}",
            config.display(),
            if accel == vm::Accel::Tcg { " --host-is-tcg-vm" } else { "" }
        ));
        if let Some(pid) = pid {
            fs::write(run_dir.join("kept.pid"), format!("{pid}\n"))?;
            say(&format!("  stop it: kill {pid}"));
        }
        return driven;
    }
    let _ = ph.time("shutdown", || {
        let _ = admin
            .ssh("systemctl poweroff")
            .output_within(POWEROFF, Watch::Quiet);
        if !vm.wait_exit(Duration::from_secs(60))? {
            vm.kill();
            bail!("the guest did not power off within 60 s; QEMU killed");
        }
        Ok(())
    });
    driven
}

/// The host alias of a kept VM in the `ssh_config` its run writes.
const KEPT_HOST: &str = "virthost-e2e";

/// Waits for cloud-init's first boot to finish (`cloud-init status --wait`), keeping its long
/// status in `cloud-init.txt`. Exit 2 ("degraded": a module warned) is accepted and said; any
/// other failure stops the run.
fn wait_cloud_init(admin: &Remote, run_dir: &Path) -> Result<()> {
    let out = admin.capture(
        "cloud-init status --wait >/dev/null; rc=$?; cloud-init status --long; exit $rc",
        CLOUD_INIT,
    )?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    fs::write(run_dir.join("cloud-init.txt"), &text)?;
    match out.status.code() {
        Some(0) => Ok(()),
        Some(2) => {
            say("cloud-init finished degraded (a module warned; see cloud-init.txt)");
            Ok(())
        }
        _ => bail!(
            "cloud-init did not finish cleanly ({}):\n{text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// An `ssh_config` with the kept VM as host `virthost-e2e` (root, the run's key, the pinned
/// host key), for `ssh -F` and `cargo xtask e2e --host virthost-e2e --ssh-config FILE`.
fn write_ssh_config(run_dir: &Path, admin: &Remote) -> Result<PathBuf> {
    let abs = |p: &Path| fs::canonicalize(p).with_context(|| format!("{}", p.display()));
    let key = abs(admin
        .identity
        .as_deref()
        .context("the VM login has a key")?)?;
    let HostKeys::Pinned(kh) = &admin.host_keys else {
        bail!("the VM's host key is pinned");
    };
    let text = ssh::config_entry(
        KEPT_HOST,
        &admin.host,
        admin.port.context("the VM has a port")?,
        &key,
        &abs(kh)?,
    )?;
    let path = run_dir.join("ssh_config");
    fs::write(&path, text)?;
    abs(&path)
}

fn ssh_command(r: &Remote) -> String {
    // The options a person needs to type: key and host-key pinning, not the batch tuning.
    let quiet = ["BatchMode", "Server", "LogLevel", "ConnectTimeout"];
    let opts = r.opts();
    let mut line = String::from("ssh");
    let mut it = opts.iter().peekable();
    while let Some(a) = it.next() {
        if a == "-o"
            && it
                .peek()
                .is_some_and(|n| quiet.iter().any(|q| n.starts_with(q)))
        {
            it.next();
            continue;
        }
        line.push(' ');
        line.push_str(a);
    }
    if let Some(p) = r.port {
        line.push_str(&format!(" -p {p}"));
    }
    line.push(' ');
    line.push_str(&r.dest());
    line
}

fn print_summary(s: &Summary) {
    let mut o = String::new();
    o.push_str("\n=== e2e summary ===\n");
    o.push_str(&format!("target:  {}\n", s.target));
    if !s.accel.is_empty() {
        o.push_str(&format!("accel:   {}\n", s.accel));
    }
    o.push_str(&format!("logs:    {}\n", s.run_dir.display()));
    for p in &s.phases.list {
        o.push_str(&format!(
            "  {:<28} {:>7.1} s  {}\n",
            p.name,
            p.secs,
            if p.ok { "ok" } else { "FAILED" }
        ));
    }
    o.push_str(&format!("  {:<28} {:>7.1} s\n", "total", s.total_secs));
    let out = &s.outcome;
    if let Some(k) = &out.killed {
        o.push_str(&format!("bootstrap run 0: {k}\n"));
    }
    if let Some(n) = out.run1_changed_steps {
        o.push_str(&format!("bootstrap run 1: {n} step(s) changed\n"));
        for c in &out.run1_changes {
            o.push_str(&format!("    {c}\n"));
        }
    }
    if let Some(n) = out.run2_changed_steps {
        o.push_str(&format!("bootstrap run 2: {n} step(s) changed\n"));
    }
    if let Some(c) = &out.concurrent {
        o.push_str(&format!("bootstrap at once: {c}\n"));
    }
    for l in &out.power_remote {
        o.push_str(&format!("power over qemu+ssh: {l}\n"));
    }
    if out.validate_summary.is_some() {
        o.push_str(&format!(
            "validate: {}; outside its reach: {}\n",
            if out.owned_not_pass.is_empty() {
                "every check bootstrap owns PASSed".to_string()
            } else {
                format!(
                    "{} check(s) bootstrap owns did not PASS",
                    out.owned_not_pass.len()
                )
            },
            if out.outside_bootstrap.is_empty() {
                "all PASS".to_string()
            } else {
                out.outside_bootstrap.join(", ")
            }
        ));
    }
    if let Some(v) = &out.validate_summary {
        o.push_str(&format!(
            "validate{}: {} PASS, {} WARN, {} FAIL\n",
            match (out.allow_emulation, out.tcg_vm) {
                (true, false) => " (--allow-emulation: guest CPU has no vmx/svm)".to_string(),
                (true, true) => format!(
                    " (--allow-emulation: guest CPU has no vmx/svm; {}: a VM under TCG)",
                    drive::tcg_vm_validate_flags()
                ),
                (false, true) => format!(
                    " ({}: nested KVM on TCG's emulated AMD-V is unreliable)",
                    drive::tcg_vm_validate_flags()
                ),
                (false, false) => String::new(),
            },
            v["pass"],
            v["warn"],
            v["fail"]
        ));
        for w in &out.warns {
            o.push_str(&format!("    WARN {w}\n"));
        }
        for f in &out.expected_fails {
            o.push_str(&format!("    FAIL {f} (expected: --expect-fail)\n"));
        }
        for f in &out.nic_stall_retry {
            o.push_str(&format!(
                "    first run FAILed {f} (the NIC sent nothing: validate ran once more)\n"
            ));
        }
    }
    if !out.domain_type.is_empty() {
        o.push_str(&format!(
            "stack virsh: domain type '{}' ok\n",
            out.domain_type
        ));
    }
    for l in &out.ansible {
        o.push_str(&format!("ansible: {l}\n"));
    }
    let console = fs::read(s.run_dir.join("serial.log")).unwrap_or_default();
    for t in vm::kernel_trouble(&String::from_utf8_lossy(&console)) {
        o.push_str(&format!("guest kernel: {t}\n"));
    }
    match &s.error {
        None => o.push_str("result: PASS\n"),
        Some(e) => o.push_str(&format!("result: FAIL: {e}\n")),
    }
    eprint!("{o}");
}

/// A UTC run name like 20261125-083706.
fn stamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The workspace root (xtask's parent directory).
pub fn workspace_root() -> PathBuf {
    crate::dist::workspace_root()
}

/// Cargo's target directory.
pub fn target_dir() -> PathBuf {
    crate::dist::target_dir()
}

/// A deadline of `n` minutes.
pub const fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

/// Progress output, on stderr.
pub fn say(msg: &str) {
    eprintln!("e2e: {msg}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamp_is_a_sortable_utc_name() {
        let s = super::stamp();
        assert_eq!(s.len(), 15, "{s}");
        assert_eq!(&s[8..9], "-");
        assert!(s.starts_with("20"));
    }
}
