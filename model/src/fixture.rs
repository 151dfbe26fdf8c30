//! Readers of captured fixture hosts (`fixtures/README.md`), for tests only: the package
//! manager ([`FixturePackageDb`]) and virsh ([`FixtureVirsh`]) answer from captured output,
//! through the same parsers the real ones use. Built with `cfg(test)` or the `fixtures`
//! feature, which only dev-dependencies turn on: the shipped binaries hold none of it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use anyhow::Context;

use crate::cmd::CmdError;
use crate::os::Family;
use crate::pkg::*;
use crate::progress::Progress;
use crate::virsh::Virsh;

/// A host's package manager as captured in a fixture directory (fixtures/README.md):
/// `pkg/installed.txt` (the `rpm -qa --qf` or `dpkg-query -W -f` output of [`RPM_QF`] /
/// [`DPKG_QF`]); on rpm hosts `pkg/whatprovides/NAME`, the stdout of `rpm -q --whatprovides
/// --qf RPM_QF NAME` that [`PackageDb::installed`] reads (a name with no such file is
/// answered from `installed.txt` as rpm would answer for a package's own name that nothing
/// else provides); optionally `pkg/available.txt` (the family's availability query: `dnf
/// repoquery`, `yum list available` or `apt-cache policy`) and, on dnf hosts,
/// `pkg/repoquery-whatprovides/NAME` (the stdout of `dnf -q repoquery --available --qf DNF_QF
/// --whatprovides NAME`, asked for a name `available.txt` lacks). Installs and upgrades change
/// the in-memory state only, so a step's apply can be tested against it.
#[derive(Debug)]
pub struct FixturePackageDb {
    family: Family,
    state: RefCell<DpkgState>,
    /// rpm hosts: name -> captured stdout of `rpm -q --whatprovides` (installs update it).
    whatprovides: RefCell<BTreeMap<String, String>>,
    available: Available,
    /// dnf hosts: name -> captured stdout of `dnf repoquery --whatprovides`.
    available_provides: BTreeMap<String, String>,
    /// Every install/upgrade call, for tests (`install a b`, `upgrade c`).
    pub calls: RefCell<Vec<String>>,
}

impl FixturePackageDb {
    pub fn new(family: Family, installed_output: &str, available_output: &str) -> Self {
        let state = if family.is_rpm() {
            DpkgState {
                installed: parse_rpm_qa(installed_output),
                interrupted: vec![],
            }
        } else {
            parse_dpkg_query(installed_output)
        };
        let available = match family {
            Family::Dnf => parse_dnf_repoquery(available_output),
            Family::Yum => parse_yum_list(available_output),
            Family::Apt => parse_apt_cache_policy(available_output),
        };
        Self {
            family,
            state: RefCell::new(state),
            whatprovides: RefCell::new(BTreeMap::new()),
            available,
            available_provides: BTreeMap::new(),
            calls: RefCell::new(vec![]),
        }
    }

    /// Adds captured `rpm -q --whatprovides --qf RPM_QF NAME` answers (name, stdout).
    pub fn with_whatprovides<'a>(
        self,
        answers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        self.whatprovides.borrow_mut().extend(
            answers
                .into_iter()
                .map(|(n, o)| (n.to_string(), o.to_string())),
        );
        self
    }

    /// Adds captured `dnf repoquery --available --whatprovides NAME` answers (name, stdout).
    pub fn with_available_provides<'a>(
        mut self,
        answers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        self.available_provides.extend(
            answers
                .into_iter()
                .map(|(n, o)| (n.to_string(), o.to_string())),
        );
        self
    }

    /// Reads `DIR/pkg/installed.txt`, `DIR/pkg/available.txt` (missing: empty) and the
    /// per-name answers in `DIR/pkg/whatprovides/` and `DIR/pkg/repoquery-whatprovides/`.
    pub fn load(dir: &Path, family: Family) -> anyhow::Result<Self> {
        let pkg = dir.join("pkg");
        let read = |f: &str| -> anyhow::Result<String> {
            let p = pkg.join(f);
            match std::fs::read_to_string(&p) {
                Ok(s) => Ok(s),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
                Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
            }
        };
        let answers = |sub: &str| -> anyhow::Result<Vec<(String, String)>> {
            let d = pkg.join(sub);
            let entries = match std::fs::read_dir(&d) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
                Err(e) => return Err(e).with_context(|| format!("reading {}", d.display())),
            };
            let mut out = vec![];
            for e in entries {
                let e = e.with_context(|| format!("reading {}", d.display()))?;
                let name = e.file_name().to_string_lossy().into_owned();
                let text = std::fs::read_to_string(e.path())
                    .with_context(|| format!("reading {}", e.path().display()))?;
                out.push((name, text));
            }
            Ok(out)
        };
        let whatprovides = answers("whatprovides")?;
        let available_provides = answers("repoquery-whatprovides")?;
        Ok(
            Self::new(family, &read("installed.txt")?, &read("available.txt")?)
                .with_whatprovides(whatprovides.iter().map(|(n, o)| (n.as_str(), o.as_str())))
                .with_available_provides(
                    available_provides
                        .iter()
                        .map(|(n, o)| (n.as_str(), o.as_str())),
                ),
        )
    }

    /// The stdout of `rpm -q --whatprovides --qf RPM_QF name` on this host.
    fn rpm_answer(&self, name: &str) -> String {
        if let Some(out) = self.whatprovides.borrow().get(name) {
            return out.clone();
        }
        let st = self.state.borrow();
        rpm_whatprovides_output(name, st.installed.get(name).map(|v| (name, v.as_str())))
    }

    /// Records `name` as installed at `version` through `provider` (a package provides its
    /// own name).
    fn set_installed(&self, name: &str, provider: &str, version: &str) {
        self.state
            .borrow_mut()
            .installed
            .insert(provider.to_string(), version.to_string());
        if self.family.is_rpm() {
            let mut wp = self.whatprovides.borrow_mut();
            for n in [name, provider] {
                wp.insert(
                    n.to_string(),
                    rpm_whatprovides_output(n, Some((provider, version))),
                );
            }
        }
    }

    /// The package `dnf install name` would install and its candidate version.
    fn candidate(&self, name: &str) -> Option<(String, String)> {
        if let Some(v) = self.available.get(name) {
            return Some((name.to_string(), v.clone()));
        }
        if self.family != Family::Dnf {
            return None;
        }
        let out = self.available_provides.get(name)?;
        parse_dnf_repoquery(out).into_iter().next()
    }
}

impl PackageDb for FixturePackageDb {
    fn family(&self) -> Family {
        self.family
    }
    fn installed(&self, names: &[&str]) -> anyhow::Result<Installed> {
        if self.family.is_rpm() {
            return installed_from_whatprovides(names, |n| Ok(self.rpm_answer(n)));
        }
        Ok(self
            .state
            .borrow()
            .installed
            .iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect())
    }
    fn available(&self, names: &[&str]) -> anyhow::Result<Available> {
        let by_name: Available = self
            .available
            .iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        if self.family != Family::Dnf {
            return Ok(by_name);
        }
        available_with_provides(names, by_name, |n| {
            Ok(self.available_provides.get(n).cloned().unwrap_or_default())
        })
    }
    fn interrupted(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.state.borrow().interrupted.clone())
    }
    fn repair(&self, _: &dyn Progress) -> anyhow::Result<()> {
        self.calls.borrow_mut().push("repair".into());
        let mut st = self.state.borrow_mut();
        for n in std::mem::take(&mut st.interrupted) {
            if let Some(v) = self.available.get(&n) {
                st.installed.insert(n, v.clone());
            }
        }
        Ok(())
    }
    fn install(&self, names: &[&str], _: &dyn Progress) -> anyhow::Result<()> {
        self.calls
            .borrow_mut()
            .push(format!("install {}", names.join(" ")));
        for n in names {
            let (provider, v) = self
                .candidate(n)
                .with_context(|| format!("No package {n} available."))?;
            self.set_installed(n, &provider, &v);
        }
        Ok(())
    }
    fn upgrade(&self, names: &[&str], _: &dyn Progress) -> anyhow::Result<()> {
        self.calls
            .borrow_mut()
            .push(format!("upgrade {}", names.join(" ")));
        for n in names {
            if let Some(v) = self.available.get(*n) {
                self.set_installed(n, n, v);
            }
        }
        Ok(())
    }
}

/// virsh as captured in a fixture host directory: `virsh/<command>/<rest of the arguments,
/// space-separated>.stdout` is what it printed exiting 0, `.stderr` what it printed exiting
/// 1 (virsh's only failure code). Without a `virsh/` directory virsh is not installed. Read
/// only: a command with no captured answer cannot run.
#[derive(Debug, Clone)]
pub struct FixtureVirsh {
    dir: PathBuf,
}

impl FixtureVirsh {
    /// The fixture host at `host_dir` (the directory that stands for `/`).
    pub fn load(host_dir: &Path) -> Self {
        Self {
            dir: host_dir.join("virsh"),
        }
    }
}

impl Virsh for FixtureVirsh {
    fn run(&self, args: &[&str]) -> Result<String, CmdError> {
        let cmdline = self.cmdline(args);
        let spawn = |source| CmdError::Spawn {
            cmdline: cmdline.clone(),
            source,
        };
        if !self.dir.is_dir() {
            return Err(spawn(io::Error::from(io::ErrorKind::NotFound)));
        }
        let Some((command, rest)) = args.split_first() else {
            return Err(spawn(io::Error::other("no virsh command")));
        };
        let stem = self.dir.join(command).join(rest.join(" "));
        let read = |ext: &str| std::fs::read_to_string(format!("{}.{ext}", stem.display())).ok();
        if let Some(out) = read("stdout") {
            Ok(out)
        } else if let Some(stderr) = read("stderr") {
            Err(CmdError::Failed {
                cmdline,
                status: ExitStatus::from_raw(1 << 8),
                stderr,
            })
        } else {
            Err(spawn(io::Error::other(format!(
                "the fixture host has no captured answer ({}.stdout)",
                stem.display()
            ))))
        }
    }

    fn cmdline(&self, args: &[&str]) -> String {
        format!("virsh -c qemu:///system {}", args.join(" "))
    }
}
