//! `pool`: the libvirt storage pool deployment tooling puts VM images in: `default`, a
//! `dir` pool at `/var/lib/libvirt/images` ([`desired::POOL_NAME`],
//! [`desired::IMAGES_DIR`]), active and started with libvirt. Debian's libvirt ships no
//! pool; on RHEL virt-install defines it only on first use.
//!
//! Through `virsh` ([`Virsh`]); `check` reads `pool-info` and `pool-dumpxml`, `apply` does
//! only what is missing, in order: `pool-define-as`, `pool-build` (when the directory does
//! not exist), `pool-start`, `pool-autostart`, so a run after an interrupted one finishes
//! it. A running transient pool (`pool-create-as`) at that path is made persistent from
//! its own XML. A pool of that name of another type or at another path is the user's
//! choice: it is reported and never touched.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::assess::pool::{self, Kind, PoolAction, PoolFacts, Want};
use crate::assess::Assessment;
use crate::desired;
use crate::hostroot::HostRoot;
use crate::step::{Check, Progress, Step, ToCheck};
use crate::virsh::{self, Failure, PoolDef, PoolInfo, Virsh};

pub struct PoolStep<'a> {
    /// The pool's name ([`desired::POOL_NAME`]; tests use their own).
    pub name: String,
    /// Its target directory ([`desired::IMAGES_DIR`]).
    pub path: String,
    pub virsh: &'a dyn Virsh,
    /// How long `apply` waits for libvirt to answer: the `libvirt` step may have just
    /// started the daemon, whose socket appears a moment later.
    pub wait: Duration,
}

impl<'a> PoolStep<'a> {
    /// The pool of the model: `default`, `dir` at `/var/lib/libvirt/images`.
    pub fn default_pool(virsh: &'a dyn Virsh) -> Self {
        Self {
            name: desired::POOL_NAME.into(),
            path: desired::IMAGES_DIR.into(),
            virsh,
            wait: Duration::from_secs(10),
        }
    }
}

/// What libvirt says about the pool.
enum Found {
    /// virsh cannot run (not installed yet); the error.
    NoVirsh(String),
    /// libvirt does not answer (no daemon yet, or access denied): the reason, the error.
    NoLibvirt(String, String),
    Missing,
    Pool(PoolInfo, PoolDef),
}

impl PoolStep<'_> {
    fn want(&self) -> Want {
        Want {
            name: self.name.clone(),
            path: self.path.clone(),
        }
    }

    /// What the assessment sees of what virsh said.
    fn facts(found: &Found) -> PoolFacts {
        match found {
            Found::NoVirsh(_) => PoolFacts::Unknown("virsh is not installed yet".into()),
            Found::NoLibvirt(reason, _) => {
                PoolFacts::Unknown(format!("libvirt does not answer: {reason}"))
            }
            Found::Missing => PoolFacts::Missing,
            Found::Pool(info, def) => PoolFacts::Pool(info.clone(), def.clone()),
        }
    }

    fn assess(&self, root: &HostRoot, found: &Found) -> Assessment<PoolAction> {
        pool::assess(
            &self.want(),
            &Self::facts(found),
            root.path(&self.path).is_dir(),
        )
    }

    fn read(&self) -> anyhow::Result<Found> {
        // Both calls at once: each virsh start costs ~30 ms, and this runs on every no-op
        // converge (`cargo xtask bench`). The definition is only used when the pool exists.
        let (info, xml) = std::thread::scope(|s| {
            let xml = s.spawn(|| self.virsh.run(&["pool-dumpxml", &self.name]));
            let info = self.virsh.run(&["pool-info", &self.name]);
            (info, xml.join())
        });
        let info = match info {
            Ok(text) => virsh::parse_pool_info(&text)
                .with_context(|| self.virsh.cmdline(&["pool-info", &self.name]))?,
            Err(e) => {
                return match virsh::classify(&e) {
                    Failure::NoSuchPool => Ok(Found::Missing),
                    Failure::NotInstalled => Ok(Found::NoVirsh(e.to_string())),
                    Failure::Unreachable => Ok(Found::NoLibvirt(virsh::reason(&e), e.to_string())),
                    Failure::Other => Err(e.into()),
                }
            }
        };
        let xml = xml.map_err(|_| anyhow::anyhow!("the pool-dumpxml thread panicked"))??;
        let def = virsh::parse_pool_xml(&xml)
            .with_context(|| self.virsh.cmdline(&["pool-dumpxml", &self.name]))?;
        Ok(Found::Pool(info, def))
    }

    /// [`Self::read`], asked again for up to `wait` while libvirt does not answer.
    fn read_waiting(&self) -> anyhow::Result<Found> {
        let start = Instant::now();
        loop {
            let found = self.read()?;
            if !matches!(found, Found::NoLibvirt(..)) || start.elapsed() >= self.wait {
                return Ok(found);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn act(&self, a: &PoolAction) -> anyhow::Result<()> {
        let n = self.name.as_str();
        match a.kind {
            Kind::Define => {
                let res = self.virsh.run(&[
                    "pool-define-as",
                    n,
                    desired::POOL_TYPE,
                    "--target",
                    &self.path,
                ]);
                if let Err(e) = res {
                    // libvirt allows one pool per directory: another name already has it.
                    if e.stderr().contains("Storage source conflict with pool") {
                        return Err(anyhow::Error::new(e).context(format!(
                            "another storage pool already uses {}; bootstrap does not touch \
                             it: to have it as '{n}', undefine it (`virsh pool-undefine \
                             NAME`, the images stay) and run bootstrap again",
                            self.path
                        )));
                    }
                    return Err(e.into());
                }
            }
            Kind::MakePersistent => {
                let xml = self.virsh.run(&["pool-dumpxml", n])?;
                let file = TempXml::write(n, &xml)?;
                self.virsh
                    .run(&["pool-define", &file.0.to_string_lossy()])?;
            }
            Kind::Build => {
                self.virsh.run(&["pool-build", n])?;
            }
            Kind::Start => {
                self.virsh.run(&["pool-start", n])?;
            }
            Kind::Autostart => {
                self.virsh.run(&["pool-autostart", n])?;
            }
        }
        Ok(())
    }
}

impl Step for PoolStep<'_> {
    fn id(&self) -> &'static str {
        "pool"
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &["packages", "libvirt"]
    }

    fn check(&self, root: &HostRoot) -> anyhow::Result<Check> {
        let found = self.read()?;
        self.assess(root, &found).to_check(|why| {
            format!(
                "storage pool '{}' ({} at {}): define, start and autostart what is missing \
                 (cannot tell now: {why})",
                self.name,
                desired::POOL_TYPE,
                self.path
            )
        })
    }

    fn apply(&self, root: &HostRoot, _progress: &dyn Progress) -> anyhow::Result<()> {
        let found = self.read_waiting()?;
        match &found {
            Found::NoVirsh(e) => bail!("{e} (virsh comes with libvirt's client package)"),
            Found::NoLibvirt(_, e) => bail!(
                "{e} (libvirt did not answer within {} s)",
                self.wait.as_secs()
            ),
            _ => {}
        }
        match self.assess(root, &found) {
            Assessment::NotMet { actions, .. } => actions.iter().try_for_each(|a| self.act(a)),
            Assessment::Blocked { detail, hint } => bail!("{detail}: {hint}"),
            Assessment::Met(_) | Assessment::Unknown(_) => Ok(()),
        }
    }
}

/// A pool's XML in a file of its own for `virsh pool-define`, removed when dropped.
struct TempXml(PathBuf);

impl TempXml {
    fn write(name: &str, xml: &str) -> anyhow::Result<TempXml> {
        let path =
            std::env::temp_dir().join(format!("virthost-pool-{name}-{}.xml", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let file = TempXml(path);
        f.write_all(xml.as_bytes())
            .with_context(|| format!("writing {}", file.0.display()))?;
        Ok(file)
    }
}

impl Drop for TempXml {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;
    use std::sync::Mutex;

    use super::*;
    use crate::cmd::CmdError;
    use crate::step::{run, Mode, Outcome, Quiet, Status};

    #[derive(Debug, Clone)]
    struct Pool {
        kind: &'static str,
        path: String,
        active: bool,
        persistent: bool,
        autostart: bool,
    }

    /// libvirt as far as this step sees it: one pool or none, answered in virsh 9.0's
    /// words (`fixtures/virsh/libvirt-9.0/`), every call recorded.
    struct FakeLibvirt {
        name: &'static str,
        pool: Mutex<Option<Pool>>,
        down: bool,
        /// A command that fails (`pool-start`), with this stderr.
        failing: Option<(&'static str, &'static str)>,
        calls: Mutex<Vec<String>>,
    }

    impl FakeLibvirt {
        fn new(pool: Option<Pool>) -> Self {
            FakeLibvirt {
                name: "default",
                pool: Mutex::new(pool),
                down: false,
                failing: None,
                calls: Mutex::new(vec![]),
            }
        }
        fn fail(&self, args: &[&str], stderr: &str) -> CmdError {
            CmdError::Failed {
                cmdline: self.cmdline(args),
                status: ExitStatus::from_raw(1 << 8),
                stderr: stderr.into(),
            }
        }
        fn changes(&self) -> Vec<String> {
            self.calls
                .lock()
                .unwrap()
                .iter()
                .filter(|c| !c.starts_with("pool-info") && !c.starts_with("pool-dumpxml"))
                .cloned()
                .collect()
        }
    }

    const MISSING: &str = "error: failed to get pool 'default'\nerror: Storage pool not found: no storage pool with matching name 'default'\n";
    const DOWN: &str = "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory\n";

    impl Virsh for FakeLibvirt {
        fn run(&self, args: &[&str]) -> Result<String, CmdError> {
            self.calls.lock().unwrap().push(args.join(" "));
            if self.down {
                return Err(self.fail(args, DOWN));
            }
            if let Some((cmd, stderr)) = self.failing {
                if args[0] == cmd {
                    return Err(self.fail(args, stderr));
                }
            }
            let mut pool = self.pool.lock().unwrap();
            let yes = |b: bool| if b { "yes" } else { "no" };
            match (args[0], pool.as_mut()) {
                ("pool-define-as", None) => {
                    assert_eq!(args[1..], [self.name, "dir", "--target", args[4]]);
                    *pool = Some(Pool {
                        kind: "dir",
                        path: args[4].into(),
                        active: false,
                        persistent: true,
                        autostart: false,
                    });
                }
                (_, None) => return Err(self.fail(args, MISSING)),
                ("pool-info", Some(p)) => {
                    return Ok(format!(
                        "Name:           {}\nUUID:           0152a5f6-1aa1-4094-ab98-fee32ba97bcb\nState:          {}\nPersistent:     {}\nAutostart:      {}\n\n",
                        self.name,
                        if p.active { "running" } else { "inactive" },
                        yes(p.persistent),
                        yes(p.autostart)
                    ))
                }
                ("pool-dumpxml", Some(p)) => {
                    return Ok(format!(
                        "<pool type='{}'>\n  <name>{}</name>\n  <source>\n  </source>\n  <target>\n    <path>{}</path>\n  </target>\n</pool>\n\n",
                        p.kind, self.name, p.path
                    ))
                }
                ("pool-define", Some(p)) => {
                    let xml = std::fs::read_to_string(args[1]).unwrap();
                    assert!(xml.contains(&p.path), "{xml}");
                    p.persistent = true;
                }
                ("pool-build", Some(p)) => std::fs::create_dir_all(&p.path).unwrap(),
                ("pool-start", Some(p)) => {
                    assert!(!p.active && std::path::Path::new(&p.path).is_dir());
                    p.active = true;
                }
                ("pool-autostart", Some(p)) => {
                    assert!(p.persistent, "libvirt: pool has no config file");
                    p.autostart = true;
                }
                (cmd, _) => panic!("unexpected virsh {cmd}"),
            }
            Ok(String::new())
        }
        fn cmdline(&self, args: &[&str]) -> String {
            format!("virsh -c qemu:///system {}", args.join(" "))
        }
    }

    fn step<'a>(v: &'a FakeLibvirt, path: &std::path::Path) -> PoolStep<'a> {
        PoolStep {
            name: "default".into(),
            path: path.display().to_string(),
            virsh: v,
            wait: Duration::ZERO,
        }
    }

    fn go(v: &FakeLibvirt, path: &std::path::Path, mode: Mode) -> Outcome {
        let steps: Vec<Box<dyn Step + '_>> = vec![Box::new(step(v, path))];
        run(&steps, &HostRoot::system(), mode, &Quiet, |_| {}).remove(0)
    }

    fn ours(path: &std::path::Path) -> Pool {
        Pool {
            kind: "dir",
            path: path.display().to_string(),
            active: false,
            persistent: true,
            autostart: false,
        }
    }

    #[test]
    fn a_missing_pool_is_defined_built_started_and_autostarted_once() {
        let d = tempfile::tempdir().unwrap();
        let images = d.path().join("images");
        let v = FakeLibvirt::new(None);
        let o = go(&v, &images, Mode::Check);
        let p = images.display();
        assert_eq!(
            (o.status, o.changes.clone()),
            (
                Status::Changed,
                vec![
                    format!("virsh pool-define-as default dir --target {p}"),
                    format!("virsh pool-build default (creates {p})"),
                    "virsh pool-start default".into(),
                    "virsh pool-autostart default".into(),
                ]
            )
        );
        assert!(v.changes().is_empty() && v.pool.lock().unwrap().is_none());
        let o = go(&v, &images, Mode::Apply);
        assert_eq!(o.status, Status::Changed, "{o:?}");
        assert_eq!(
            o.detail,
            format!("storage pool 'default': dir at {p}, running, autostart")
        );
        assert_eq!(
            v.changes(),
            [
                format!("pool-define-as default dir --target {p}"),
                "pool-build default".into(),
                "pool-start default".into(),
                "pool-autostart default".into()
            ]
        );
        v.calls.lock().unwrap().clear();
        let o = go(&v, &images, Mode::Apply);
        assert_eq!(o.status, Status::Ok, "{o:?}");
        assert!(v.changes().is_empty());
    }

    #[test]
    fn a_half_done_pool_gets_only_what_is_missing() {
        let d = tempfile::tempdir().unwrap();
        // Defined, directory there (no build), not started, not autostarted.
        let v = FakeLibvirt::new(Some(ours(d.path())));
        let o = go(&v, d.path(), Mode::Apply);
        assert_eq!(o.status, Status::Changed, "{o:?}");
        assert_eq!(
            v.changes(),
            ["pool-start default", "pool-autostart default"]
        );
        // Running, only autostart missing.
        let mut p = ours(d.path());
        p.active = true;
        let v = FakeLibvirt::new(Some(p));
        go(&v, d.path(), Mode::Apply);
        assert_eq!(v.changes(), ["pool-autostart default"]);
        // Autostarted but stopped (pool-destroy): start only.
        let mut p = ours(d.path());
        p.autostart = true;
        let v = FakeLibvirt::new(Some(p));
        go(&v, d.path(), Mode::Apply);
        assert_eq!(v.changes(), ["pool-start default"]);
    }

    #[test]
    fn a_transient_pool_at_the_path_is_made_persistent() {
        let d = tempfile::tempdir().unwrap();
        let v = FakeLibvirt::new(Some(Pool {
            active: true,
            persistent: false,
            ..ours(d.path())
        }));
        let o = go(&v, d.path(), Mode::Check);
        assert_eq!(o.changes.len(), 2, "{o:?}");
        assert!(o.changes[0].contains("transient"), "{o:?}");
        let o = go(&v, d.path(), Mode::Apply);
        assert_eq!(o.status, Status::Changed, "{o:?}");
        let changes = v.changes();
        assert!(changes[0].starts_with("pool-define /"), "{changes:?}");
        assert_eq!(changes[1], "pool-autostart default");
        // The XML file is gone.
        let file = changes[0].trim_start_matches("pool-define ");
        assert!(!std::path::Path::new(file).exists());
    }

    #[test]
    fn another_pool_named_default_is_left_alone() {
        let d = tempfile::tempdir().unwrap();
        for (kind, path) in [("dir", "/srv/vms"), ("logical", d.path().to_str().unwrap())] {
            // Running: the operator's pool meets the requirement, untouched.
            let v = FakeLibvirt::new(Some(Pool {
                kind,
                path: path.into(),
                active: true,
                autostart: true,
                ..ours(d.path())
            }));
            let o = go(&v, d.path(), Mode::Apply);
            assert_eq!(o.status, Status::Ok, "{o:?}");
            assert!(
                o.detail
                    .contains(&format!("is a {kind} pool at {path} (running, autostart)"))
                    && o.detail.contains("left as the user defined it"),
                "{o:?}"
            );
            assert!(v.changes().is_empty(), "{:?}", v.calls);
            // Not running: still untouched, but not ready, and bootstrap says what to do.
            let v = FakeLibvirt::new(Some(Pool {
                kind,
                path: path.into(),
                ..ours(d.path())
            }));
            let o = go(&v, d.path(), Mode::Apply);
            assert_eq!(o.status, Status::Failed, "{o:?}");
            assert!(
                o.detail.contains("(inactive, no autostart)")
                    && o.detail.contains("virsh pool-start default"),
                "{o:?}"
            );
            assert!(v.changes().is_empty(), "{:?}", v.calls);
        }
        // Same directory spelled with a trailing slash: ours.
        let v = FakeLibvirt::new(Some(Pool {
            path: format!("{}/", d.path().display()),
            ..ours(d.path())
        }));
        go(&v, d.path(), Mode::Apply);
        assert_eq!(
            v.changes(),
            ["pool-start default", "pool-autostart default"]
        );
    }

    #[test]
    fn without_libvirt_check_is_pending_and_apply_fails_naming_virsh() {
        let d = tempfile::tempdir().unwrap();
        let mut v = FakeLibvirt::new(None);
        v.down = true;
        let o = go(&v, d.path(), Mode::Check);
        assert_eq!(o.status, Status::Changed);
        assert!(
            o.changes[0].contains("libvirt does not answer: Failed to connect socket"),
            "{o:?}"
        );
        let o = go(&v, d.path(), Mode::Apply);
        assert_eq!(o.status, Status::Failed);
        assert!(
            o.detail.contains("failed to connect to the hypervisor")
                && o.detail.contains("did not answer within 0 s"),
            "{o:?}"
        );
        let world = crate::fixture::World::at(d.path());
        let none =
            crate::fixture::WorldVirsh::new(&world, &virthost_testkit::fixtures::virsh_templates());
        let s = PoolStep {
            wait: Duration::ZERO,
            ..PoolStep::default_pool(&none)
        };
        let steps: Vec<Box<dyn Step + '_>> = vec![Box::new(s)];
        let o = run(&steps, &HostRoot::at(d.path()), Mode::Check, &Quiet, |_| {}).remove(0);
        assert!(
            o.changes[0].contains("(cannot tell now: virsh is not installed yet)")
                && o.changes[0].contains("/var/lib/libvirt/images"),
            "{o:?}"
        );
    }

    #[test]
    fn a_failing_virsh_command_is_named_with_its_stderr() {
        let d = tempfile::tempdir().unwrap();
        let mut v = FakeLibvirt::new(Some(ours(d.path())));
        v.failing = Some((
            "pool-start",
            "error: Failed to start pool default\nerror: cannot open directory: Permission denied\n",
        ));
        let o = go(&v, d.path(), Mode::Apply);
        assert_eq!(o.status, Status::Failed);
        assert!(
            o.detail
                .contains("`virsh -c qemu:///system pool-start default` failed (exit status: 1)")
                && o.detail
                    .contains("cannot open directory: Permission denied"),
            "{o:?}"
        );
        // An unknown failure of the read is an error, not "missing".
        let mut v = FakeLibvirt::new(None);
        v.failing = Some(("pool-info", "error: internal error: something\n"));
        let o = go(&v, d.path(), Mode::Check);
        assert_eq!(o.status, Status::Failed);
        assert!(o.detail.contains("internal error: something"), "{o:?}");
    }

    #[test]
    fn a_directory_another_pool_has_fails_with_what_to_do() {
        let d = tempfile::tempdir().unwrap();
        let mut v = FakeLibvirt::new(None);
        // `virsh pool-define-as` where pool 'virthost-capture-a' has the directory.
        v.failing = Some((
            "pool-define-as",
            include_str!("../../../fixtures/virsh/libvirt-9.0/pool-define-as-conflict.stderr"),
        ));
        let o = go(&v, d.path(), Mode::Apply);
        assert_eq!(o.status, Status::Failed);
        assert!(
            o.detail.starts_with(&format!(
                "another storage pool already uses {}",
                d.path().display()
            )) && o
                .detail
                .contains("Storage source conflict with pool: 'virthost-capture-a'"),
            "{o:?}"
        );
    }

    #[test]
    fn an_inaccessible_pool_fails_with_what_to_do() {
        struct Inaccessible;
        impl Virsh for Inaccessible {
            fn run(&self, args: &[&str]) -> Result<String, CmdError> {
                Ok(match args[0] {
                    "pool-info" => "State: inaccessible\nPersistent: yes\nAutostart: yes\n".into(),
                    _ => "<pool type='dir'><target><path>/var/lib/libvirt/images</path></target></pool>".into(),
                })
            }
            fn cmdline(&self, args: &[&str]) -> String {
                args.join(" ")
            }
        }
        let steps: Vec<Box<dyn Step + '_>> = vec![Box::new(PoolStep::default_pool(&Inaccessible))];
        let o = run(&steps, &HostRoot::system(), Mode::Check, &Quiet, |_| {}).remove(0);
        assert_eq!(o.status, Status::Failed);
        assert!(
            o.detail.contains("is inaccessible") && o.detail.contains("virsh pool-start default"),
            "{o:?}"
        );
    }
}
