//! Package queries and installs through the host's own package manager (`rpm` + `yum`/`dnf`,
//! `dpkg` + `apt-get`). Every output is read by a parser in this module, and the same parsers
//! read the captured outputs of fixture hosts (`crate::fixture::FixturePackageDb`, built for
//! tests only), so a fixture is read exactly as the real host would be.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;

use crate::cmd::{CmdError, CommandExt};
use crate::hostroot::HostRoot;
use crate::os::Family;
use crate::progress::Progress;

#[cfg(any(test, feature = "fixtures"))]
pub use crate::fixture::FixturePackageDb;

/// Installed packages: name -> version (`epoch:version-release` with no `(none):` on rpm
/// hosts, the Debian version on apt hosts). On rpm hosts the name is the one asked about and
/// the version is that of the installed package that provides it (`rpm -q --whatprovides`):
/// the package of that name, or a differently named one whose `Provides:` names it.
pub type Installed = BTreeMap<String, String>;
/// Packages the configured repositories offer: name -> candidate version. A name that is
/// absent is not available.
pub type Available = BTreeMap<String, String>;

/// `rpm -q --whatprovides --qf` format of [`PackageDb::installed`] on rpm hosts (and of the
/// `rpm -qa --qf` inventory of fixture hosts).
pub const RPM_QF: &str = "%{NAME}\t%{EPOCH}:%{VERSION}-%{RELEASE}\n";
/// `dpkg-query -W -f` format of [`PackageDb::installed`] on apt hosts.
pub const DPKG_QF: &str = "${Package}\t${Version}\t${db:Status-Abbrev}\n";
/// `dnf repoquery --qf` format of [`PackageDb::available`] on dnf hosts (dnf4 appends a
/// newline of its own, dnf5 does not: blank lines are skipped).
pub const DNF_QF: &str = "%{name}\t%{evr}\n";

/// Where the package manager's output goes while it works (relative to the host root).
pub const LOG_PATH: &str = "/var/log/virthost-bootstrap.log";

/// Parses `rpm -qa --qf '%{NAME}\t%{EPOCH}:%{VERSION}-%{RELEASE}\n'`.
pub fn parse_rpm_qa(text: &str) -> Installed {
    parse_rpm_qa_lines(text).collect()
}

/// The [`RPM_QF`] lines of `text` as (name, version); lines without a tab are skipped.
fn parse_rpm_qa_lines(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    text.lines().filter_map(|line| {
        let (name, evr) = line.trim_end().split_once('\t')?;
        let evr = evr.strip_prefix("(none):").unwrap_or(evr);
        Some((name.to_string(), evr.to_string()))
    })
}

/// What `rpm -q --whatprovides --qf RPM_QF NAME` printed on stdout (rpm prints both its
/// answers there: one [`RPM_QF`] line per installed provider, or `no package provides NAME`
/// and exit code 1; rpm's `lib/query.cc`, the same words since rpm 4.x, RHEL 7's 4.11
/// included), read: the providers as (package name, version), none when nothing provides
/// `name`. Any other output (a broken rpm database prints nothing on stdout) is an error, so
/// it is never mistaken for "not installed".
pub fn parse_rpm_whatprovides(name: &str, stdout: &str) -> Result<Vec<(String, String)>, String> {
    let providers: Vec<(String, String)> = parse_rpm_qa_lines(stdout).collect();
    if !providers.is_empty() {
        return Ok(providers);
    }
    let nothing = format!("no package provides {name}");
    if stdout.lines().any(|l| l.trim_end_matches('\r') == nothing) {
        return Ok(vec![]);
    }
    Err(format!(
        "rpm -q --whatprovides {name}: unexpected output {:?}",
        stdout.chars().take(200).collect::<String>()
    ))
}

/// The arguments of the rpm query [`PackageDb::installed`] runs for one name.
pub fn rpm_whatprovides_args(name: &str) -> [&str; 6] {
    ["-q", "--whatprovides", "--qf", RPM_QF, "--", name]
}

/// The stdout `rpm -q --whatprovides --qf RPM_QF NAME` prints when `provider` at `version`
/// (as [`Installed`] holds it) provides NAME, or when nothing does.
pub fn rpm_whatprovides_output(name: &str, provider: Option<(&str, &str)>) -> String {
    match provider {
        Some((p, v)) if v.contains(':') => format!("{p}\t{v}\n"),
        Some((p, v)) => format!("{p}\t(none):{v}\n"),
        None => format!("no package provides {name}\n"),
    }
}

/// Reads the answers of `rpm -q --whatprovides` for `names` (`answer` gives the stdout of
/// the query of one name) into [`Installed`]: a name maps to the version of its first
/// provider.
pub(crate) fn installed_from_whatprovides(
    names: &[&str],
    mut answer: impl FnMut(&str) -> anyhow::Result<String>,
) -> anyhow::Result<Installed> {
    let mut found = Installed::new();
    for name in names {
        let stdout = answer(name)?;
        let providers = parse_rpm_whatprovides(name, &stdout).map_err(anyhow::Error::msg)?;
        if let Some((_, version)) = providers.into_iter().next() {
            found.insert(name.to_string(), version);
        }
    }
    Ok(found)
}

/// The candidates of `names` on dnf hosts: `by_name` (`dnf repoquery NAMES`, package names
/// only), and for each name it lacks, the newest provider `whatprovides` finds (the stdout of
/// `dnf repoquery --whatprovides NAME`): `dnf install NAME` resolves a name through
/// `Provides:` too.
pub(crate) fn available_with_provides(
    names: &[&str],
    mut by_name: Available,
    mut whatprovides: impl FnMut(&str) -> anyhow::Result<String>,
) -> anyhow::Result<Available> {
    for name in names {
        if by_name.contains_key(*name) {
            continue;
        }
        let providers = parse_dnf_repoquery(&whatprovides(name)?);
        // Several providers (Fedora 43's wget1-wget and wget2-wget): the plan names the
        // first one's candidate; `dnf install NAME` makes its own choice among them.
        if let Some(evr) = providers.into_values().next() {
            by_name.insert(name.to_string(), evr);
        }
    }
    Ok(by_name)
}

/// `dpkg-query -W -f='${Package}\t${Version}\t${db:Status-Abbrev}\n'`, read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DpkgState {
    /// Packages whose status is `ii` (the only ones that count as installed).
    pub installed: Installed,
    /// Packages an interrupted dpkg left half-installed, unpacked or half-configured
    /// (`dpkg --configure -a` repairs them).
    pub interrupted: Vec<String>,
}

pub fn parse_dpkg_query(text: &str) -> DpkgState {
    let mut st = DpkgState::default();
    for line in text.lines() {
        let mut f = line.split('\t');
        let (Some(name), Some(version), Some(status)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let s = status.as_bytes();
        let current = s.get(1).copied().unwrap_or(b'n');
        let reinst_required = s.get(2) == Some(&b'R');
        if status.starts_with("ii") && !reinst_required {
            st.installed.insert(name.to_string(), version.to_string());
        } else if b"HUFWt".contains(&current) || reinst_required {
            st.interrupted.push(name.to_string());
        }
    }
    st
}

/// Parses `dnf -q repoquery --available --qf '%{name}\t%{evr}\n' NAMES`.
pub fn parse_dnf_repoquery(text: &str) -> Available {
    let mut out = Available::new();
    for line in text.lines() {
        if let Some((name, evr)) = line.trim().split_once('\t') {
            let evr = evr.trim();
            let evr = evr.strip_prefix("0:").unwrap_or(evr);
            keep_newest(&mut out, name, evr);
        }
    }
    out
}

const RPM_ARCHES: &[&str] = &[
    "noarch", "x86_64", "i686", "i386", "aarch64", "ppc64le", "s390x",
];

/// Parses `yum -q list available NAMES` (EL7, where `repoquery` needs yum-utils). Columns
/// are `name.arch  version  repo`; a long `name.arch` pushes the rest onto the next line,
/// so the output is read as a stream of words.
pub fn parse_yum_list(text: &str) -> Available {
    let mut out = Available::new();
    let words: Vec<&str> = text
        .lines()
        .filter(|l| {
            let l = l.trim();
            !(l.ends_with(" Packages") || l.starts_with("Loaded plugins"))
        })
        .flat_map(str::split_whitespace)
        .collect();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        let arch_ok = w
            .rsplit_once('.')
            .is_some_and(|(_, arch)| RPM_ARCHES.contains(&arch));
        if arch_ok && i + 1 < words.len() {
            let name = w.rsplit_once('.').map(|(n, _)| n).unwrap_or(w);
            let ver = words[i + 1];
            let ver = ver.strip_prefix("0:").unwrap_or(ver);
            keep_newest(&mut out, name, ver);
            i += 3;
        } else {
            i += 1;
        }
    }
    out
}

/// Parses `apt-cache policy NAMES`: `Candidate: (none)` and names apt does not know (they
/// print nothing) are unavailable.
pub fn parse_apt_cache_policy(text: &str) -> Available {
    let mut out = Available::new();
    let mut current: Option<&str> = None;
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            current = Some(line.trim_end_matches(':'));
        } else if let (Some(name), Some(c)) = (current, line.trim().strip_prefix("Candidate:")) {
            let c = c.trim();
            if c != "(none)" && !c.is_empty() {
                out.insert(name.to_string(), c.to_string());
            }
        }
    }
    out
}

fn keep_newest(out: &mut Available, name: &str, ver: &str) {
    // Repositories list oldest first (yum, dnf); the last seen is the newest.
    out.insert(name.to_string(), ver.to_string());
}

/// The package manager of a host, as `bootstrap` and `validate` see it.
pub trait PackageDb {
    fn family(&self) -> Family;
    /// Which of `names` are installed, with their versions. On rpm hosts a name that only
    /// a differently named package provides (`Provides:`) maps to that package's version.
    fn installed(&self, names: &[&str]) -> anyhow::Result<Installed>;
    /// Which of `names` the configured repositories offer, with the candidate version.
    fn available(&self, names: &[&str]) -> anyhow::Result<Available>;
    /// [`PackageDb::available`], showing `progress` meanwhile: the question may refresh the
    /// package lists or download repository metadata first, which takes a while.
    fn available_progress(
        &self,
        names: &[&str],
        progress: &dyn Progress,
    ) -> anyhow::Result<Available> {
        let _ = progress;
        self.available(names)
    }
    /// Whether an empty [`PackageDb::available`] answer may only mean stale package lists
    /// that an install refreshes first (apt in check mode).
    fn lists_may_be_stale(&self) -> bool {
        false
    }
    /// Packages an interrupted earlier run left half-installed.
    fn interrupted(&self) -> anyhow::Result<Vec<String>>;
    /// Finishes an interrupted earlier run (`dpkg --configure -a`).
    fn repair(&self, progress: &dyn Progress) -> anyhow::Result<()>;
    fn install(&self, names: &[&str], progress: &dyn Progress) -> anyhow::Result<()>;
    /// Upgrades installed packages to the newest version the repositories offer.
    fn upgrade(&self, names: &[&str], progress: &dyn Progress) -> anyhow::Result<()>;
}

/// The real package manager of the host at `root` (`/`, or a chroot: commands then run
/// under `chroot ROOT`).
pub struct SystemPackageDb {
    family: Family,
    root: HostRoot,
    /// Whether `apt-get update` may run when apt knows none of the packages (apply only).
    refresh: bool,
    refreshed: Cell<bool>,
}

impl SystemPackageDb {
    pub fn new(family: Family, root: HostRoot, refresh: bool) -> Self {
        Self {
            family,
            root,
            refresh,
            refreshed: Cell::new(false),
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut c = if self.root.is_system() {
            Command::new(program)
        } else {
            let mut c = Command::new("chroot");
            c.arg(self.root.dir()).arg(program);
            c
        };
        c.env("LC_ALL", "C");
        if self.family == Family::Apt {
            c.env("DEBIAN_FRONTEND", "noninteractive");
        }
        c
    }

    /// `dpkg-query -W` of `names` (all packages when empty). Unknown names make it exit 1
    /// with a message on stderr: the output is read whatever the exit code.
    fn dpkg_state(&self, names: &[&str]) -> anyhow::Result<DpkgState> {
        let mut c = self.command("dpkg-query");
        c.args(["-W", &format!("-f={DPKG_QF}")]).args(names);
        let out = c.run_get_output()?;
        if !out.status.success() && out.stdout.is_empty() && names.is_empty() {
            return Err(CmdError::Failed {
                cmdline: c.cmdline(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
            .into());
        }
        Ok(parse_dpkg_query(&String::from_utf8_lossy(&out.stdout)))
    }

    /// `rpm -q --whatprovides --qf RPM_QF NAME` for each of `names`, side by side (one rpm
    /// per name: rpm prints nothing that ties a provider line to the name it answers when
    /// several names are asked at once); each answer is its stdout, read whatever the exit
    /// code (1 when nothing provides the name).
    fn rpm_whatprovides(&self, names: &[&str]) -> anyhow::Result<Vec<String>> {
        let commands: Vec<Command> = names
            .iter()
            .map(|name| {
                let mut c = self.command("rpm");
                c.args(rpm_whatprovides_args(name));
                c
            })
            .collect();
        let outputs: Vec<Result<(String, std::process::Output), CmdError>> =
            std::thread::scope(|s| {
                let handles: Vec<_> = commands
                    .into_iter()
                    .map(|mut c| {
                        s.spawn(move || {
                            let cmdline = c.cmdline();
                            c.run_get_output().map(|o| (cmdline, o))
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("an rpm query thread panicked"))
                    .collect()
            });
        outputs
            .into_iter()
            .map(|r| {
                let (cmdline, out) = r?;
                if out.stdout.is_empty() {
                    // rpm answers on stdout even when nothing provides the name.
                    return Err(CmdError::Failed {
                        cmdline,
                        status: out.status,
                        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                    }
                    .into());
                }
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            })
            .collect()
    }

    /// `dnf -q repoquery --available --whatprovides NAME`: the packages that provide a name
    /// no package is called (`dnf repoquery NAME` matches package names only).
    fn dnf_whatprovides(&self, name: &str, progress: &dyn Progress) -> anyhow::Result<String> {
        let mut c = self.command("dnf");
        c.args([
            "-q",
            "repoquery",
            "--available",
            "--qf",
            DNF_QF,
            "--whatprovides",
            name,
        ]);
        progress.tick(&c.cmdline());
        Ok(c.run_get_string()?)
    }

    fn apt_policy(&self, names: &[&str]) -> anyhow::Result<Available> {
        let out = self
            .command("apt-cache")
            .arg("policy")
            .args(names)
            .run_get_string()?;
        Ok(parse_apt_cache_policy(&out))
    }

    fn log_path(&self) -> PathBuf {
        self.root.path(LOG_PATH)
    }

    fn stream(&self, mut cmd: Command, progress: &dyn Progress) -> anyhow::Result<()> {
        stream_to_log(&mut cmd, &self.log_path(), progress)
    }
}

/// Keep configuration files a user changed (no prompt), and wait for the dpkg lock rather
/// than fail at once (a fresh Ubuntu runs unattended-upgrades at first boot).
const DPKG_CONF_OPTS: [&str; 6] = [
    "-o",
    "Dpkg::Options::=--force-confdef",
    "-o",
    "Dpkg::Options::=--force-confold",
    "-o",
    "DPkg::Lock::Timeout=300",
];

impl PackageDb for SystemPackageDb {
    fn family(&self) -> Family {
        self.family
    }

    fn installed(&self, names: &[&str]) -> anyhow::Result<Installed> {
        if names.is_empty() {
            return Ok(Installed::new());
        }
        if !self.family.is_rpm() {
            return Ok(self.dpkg_state(names)?.installed);
        }
        // What rpm resolves: a name counts as installed when a package that provides it is,
        // whatever that package is called (Fedora 40's `wget` is `wget2-wget`).
        let answers = self.rpm_whatprovides(names)?;
        let answers: BTreeMap<String, String> =
            names.iter().map(|n| n.to_string()).zip(answers).collect();
        installed_from_whatprovides(names, |n| Ok(answers.get(n).cloned().unwrap_or_default()))
    }

    fn available(&self, names: &[&str]) -> anyhow::Result<Available> {
        self.available_progress(names, &crate::progress::Quiet)
    }

    fn available_progress(
        &self,
        names: &[&str],
        progress: &dyn Progress,
    ) -> anyhow::Result<Available> {
        if names.is_empty() {
            return Ok(Available::new());
        }
        match self.family {
            Family::Dnf => {
                let mut c = self.command("dnf");
                c.args(["-q", "repoquery", "--available", "--qf", DNF_QF])
                    .args(names);
                progress.tick(&c.cmdline());
                let by_name = parse_dnf_repoquery(&c.run_get_string()?);
                available_with_provides(names, by_name, |n| self.dnf_whatprovides(n, progress))
            }
            Family::Yum => {
                let mut c = self.command("yum");
                c.args(["-q", "list", "available"]).args(names);
                progress.tick(&c.cmdline());
                let out = c.run_get_output()?;
                let stdout = String::from_utf8_lossy(&out.stdout);
                let stderr = String::from_utf8_lossy(&out.stderr);
                // Exit 1 with "No matching Packages to list" when none is available.
                if !out.status.success() && !stderr.contains("No matching Packages") {
                    return Err(CmdError::Failed {
                        cmdline: c.cmdline(),
                        status: out.status,
                        stderr: stderr.into_owned(),
                    }
                    .into());
                }
                Ok(parse_yum_list(&stdout))
            }
            Family::Apt => {
                let found = self.apt_policy(names)?;
                if found.is_empty() && self.refresh && !self.refreshed.get() {
                    self.refreshed.set(true);
                    self.stream(
                        {
                            let mut c = self.command("apt-get");
                            c.args(["-q", "update"]);
                            c
                        },
                        progress,
                    )?;
                    return self.apt_policy(names);
                }
                Ok(found)
            }
        }
    }

    fn lists_may_be_stale(&self) -> bool {
        self.family == Family::Apt && !self.refresh
    }

    fn interrupted(&self) -> anyhow::Result<Vec<String>> {
        if self.family != Family::Apt {
            return Ok(vec![]);
        }
        let mut names = self.dpkg_state(&[])?.interrupted;
        // dpkg journals an unpack in updates/ before the status file: apt refuses to run
        // ("dpkg was interrupted") while it is not empty.
        let updates = self.root.path("/var/lib/dpkg/updates");
        if names.is_empty() && std::fs::read_dir(&updates).is_ok_and(|mut d| d.next().is_some()) {
            names.push("(dpkg journal in /var/lib/dpkg/updates)".into());
        }
        Ok(names)
    }

    fn repair(&self, progress: &dyn Progress) -> anyhow::Result<()> {
        if self.family != Family::Apt {
            return Ok(());
        }
        // apt-get waits for dpkg's locks (DPKG_CONF_OPTS), dpkg fails at once: wait here.
        crate::dpkglock::wait(&self.root, crate::dpkglock::TIMEOUT, progress)?;
        let mut c = self.command("dpkg");
        c.args(["--force-confdef", "--force-confold", "--configure", "-a"]);
        self.stream(c, progress)
    }

    fn install(&self, names: &[&str], progress: &dyn Progress) -> anyhow::Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let mut c = self.command(self.family.package_manager());
        match self.family {
            Family::Yum | Family::Dnf => {
                c.args(["-y", "install"]);
            }
            Family::Apt => {
                c.args(["install", "-y", "--no-install-recommends"])
                    .args(DPKG_CONF_OPTS);
            }
        }
        c.args(names);
        self.stream(c, progress)
    }

    fn upgrade(&self, names: &[&str], progress: &dyn Progress) -> anyhow::Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let mut c = self.command(self.family.package_manager());
        match self.family {
            Family::Yum => {
                c.args(["-y", "update"]);
            }
            Family::Dnf => {
                c.args(["-y", "upgrade"]);
            }
            Family::Apt => {
                c.args(["install", "-y", "--only-upgrade", "--no-install-recommends"])
                    .args(DPKG_CONF_OPTS);
            }
        }
        c.args(names);
        self.stream(c, progress)
    }
}

/// Runs `cmd` with stdout and stderr appended to `log`, passing each output line to
/// `progress`. A failure carries the command line, the exit status and the last lines of
/// the output.
pub fn stream_to_log(cmd: &mut Command, log: &Path, progress: &dyn Progress) -> anyhow::Result<()> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file: File = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let cmdline = cmd.cmdline();
    writeln!(file, "==> {cmdline}")?;
    let err_file = file.try_clone()?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(err_file))
        .spawn()
        .map_err(|source| CmdError::Spawn {
            cmdline: cmdline.clone(),
            error: source,
        })?;
    progress.tick(&cmdline);
    if let Some(out) = child.stdout.take() {
        let mut r = BufReader::new(out);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if r.read_until(b'\n', &mut buf)? == 0 {
                break;
            }
            file.write_all(&buf)?;
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim();
            if !line.is_empty() {
                progress.tick(line);
            }
        }
    }
    let status = child.wait()?;
    file.sync_all().ok();
    if status.success() {
        return Ok(());
    }
    // The stderr lines are in the log only: show the end of the log.
    let logged = std::fs::read_to_string(log).unwrap_or_default();
    let last: Vec<&str> = logged.lines().rev().take(12).collect();
    let last: Vec<&str> = last.into_iter().rev().collect();
    Err(anyhow::Error::new(CmdError::Failed {
        cmdline,
        status,
        stderr: last.join("\n"),
    })
    .context(format!("full output in {}", log.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn rpm_qa_normalises_missing_epochs() {
        let got = parse_rpm_qa(
            "libvirt\t(none):4.5.0-10.el7\nqemu-kvm\t10:1.5.3-141.el7\nipxe-roms-qemu\t(none):20130517-8.gitc4bce43.el7\n\ngarbage\n",
        );
        assert_eq!(got["libvirt"], "4.5.0-10.el7");
        assert_eq!(got["qemu-kvm"], "10:1.5.3-141.el7");
        assert_eq!(got.len(), 3);
    }

    /// rpm's own words (lib/query.cc, `RPMQV_WHATPROVIDES`): the providers in the query
    /// format, or "no package provides NAME" on stdout; anything else is not "not installed".
    #[test]
    fn rpm_whatprovides_reads_providers_nothing_and_refuses_the_rest() {
        assert_eq!(
            parse_rpm_whatprovides(
                "libguestfs-tools-c",
                "guestfs-tools\t(none):1.52.0-3.fc40\n"
            ),
            Ok(vec![("guestfs-tools".into(), "1.52.0-3.fc40".into())])
        );
        assert_eq!(
            parse_rpm_whatprovides(
                "wget",
                "wget1-wget\t(none):1.25.0-4.fc43\nwget2-wget\t(none):2.2.1-3.fc43\n"
            )
            .unwrap()
            .len(),
            2
        );
        assert_eq!(
            parse_rpm_whatprovides("libguestfs-tools", "no package provides libguestfs-tools\n"),
            Ok(vec![])
        );
        // Another name's answer, an rpm -q answer, or nothing at all is an error.
        for out in [
            "no package provides libguestfs-xfs\n",
            "package libguestfs-tools is not installed\n",
            "",
        ] {
            assert!(
                parse_rpm_whatprovides("libguestfs-tools", out).is_err(),
                "{out:?}"
            );
        }
        assert_eq!(
            rpm_whatprovides_output("qemu-kvm", Some(("qemu-kvm", "17:9.1.0-15.el9"))),
            "qemu-kvm\t17:9.1.0-15.el9\n"
        );
        assert_eq!(
            parse_rpm_whatprovides(
                "wget",
                &rpm_whatprovides_output("wget", Some(("wget2-wget", "2.1.0-9.fc40")))
            ),
            Ok(vec![("wget2-wget".into(), "2.1.0-9.fc40".into())])
        );
    }

    /// The real rpm (this Debian machine's `rpm` package, when installed): a package built
    /// here that provides `libguestfs-tools-c`, in a database of its own, answers the query
    /// `installed` runs as the parser expects; and the system database of this machine
    /// through `SystemPackageDb`.
    #[test]
    fn the_real_rpm_answers_whatprovides_as_parsed() {
        // The one gate: a skip said on stderr, or a failure under VIRTHOST_REQUIRE_REAL=1
        // (`cargo xtask test`, whose install-deps.sh installs Debian's rpm).
        if virthost_testkit::tool("rpm", "rpm").is_none()
            || virthost_testkit::tool("rpmbuild", "rpm").is_none()
        {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path();
        std::fs::write(
            top.join("f.spec"),
            "Name: guestfs-tools\nVersion: 1.52.0\nRelease: 3.fc40\nSummary: stand-in\n\
             License: MIT\nBuildArch: noarch\n\
             Provides: libguestfs-tools-c = 1:%{version}-%{release}\n\
             %description\nstand-in\n%files\n",
        )
        .unwrap();
        let run = |c: &mut Command| {
            let out = c.env("LC_ALL", "C").output().unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        let topdir = format!("_topdir {}", top.display());
        let (code, _) = run(Command::new("rpmbuild")
            .args(["--define", &topdir, "-bb"])
            .arg(top.join("f.spec")));
        assert_eq!(code, Some(0));
        let rpmfile = top.join("RPMS/noarch/guestfs-tools-1.52.0-3.fc40.noarch.rpm");
        let db = top.join("db");
        let dbpath = db.to_str().unwrap();
        let (code, _) = run(Command::new("rpm").args(["--dbpath", dbpath, "--initdb"]));
        assert_eq!(code, Some(0));
        let (code, _) = run(Command::new("rpm")
            .args([
                "--dbpath",
                dbpath,
                "-i",
                "--justdb",
                "--nodeps",
                "--noscripts",
            ])
            .arg(&rpmfile));
        assert_eq!(code, Some(0));
        let query = |name: &str| {
            run(Command::new("rpm")
                .args(["--dbpath", dbpath])
                .args(rpm_whatprovides_args(name)))
        };
        let want = Ok(vec![(
            "guestfs-tools".to_string(),
            "1.52.0-3.fc40".to_string(),
        )]);
        for name in ["guestfs-tools", "libguestfs-tools-c"] {
            let (code, out) = query(name);
            assert_eq!(
                (code, parse_rpm_whatprovides(name, &out)),
                (Some(0), want.clone())
            );
        }
        let (code, out) = query("libguestfs-tools");
        assert_eq!(out, "no package provides libguestfs-tools\n");
        assert_eq!(
            (code, parse_rpm_whatprovides("libguestfs-tools", &out)),
            (Some(1), Ok(vec![]))
        );
        // This machine's own rpm database holds no such package.
        let sys = SystemPackageDb::new(Family::Dnf, HostRoot::system(), false);
        assert!(sys
            .installed(&["virthost-no-such-capability"])
            .unwrap()
            .is_empty());
    }

    /// A Fedora 40 host with guestfs-tools and wget2-wget: rpm resolves `libguestfs-tools-c`
    /// and `wget` to them, `libguestfs-tools` to nothing (only virt-win-reg provides it).
    #[test]
    fn installed_is_what_rpm_resolves() {
        let db = FixturePackageDb::new(
            Family::Dnf,
            "guestfs-tools\t(none):1.52.0-3.fc40\nwget2-wget\t(none):2.1.0-9.fc40\n",
            "",
        )
        .with_whatprovides([
            ("libguestfs-tools", "no package provides libguestfs-tools\n"),
            (
                "libguestfs-tools-c",
                "guestfs-tools\t(none):1.52.0-3.fc40\n",
            ),
            ("wget", "wget2-wget\t(none):2.1.0-9.fc40\n"),
        ]);
        let got = db
            .installed(&[
                "guestfs-tools",
                "libguestfs-tools",
                "libguestfs-tools-c",
                "wget",
                "libvirt",
            ])
            .unwrap();
        assert_eq!(
            got.get("guestfs-tools").map(String::as_str),
            Some("1.52.0-3.fc40")
        );
        assert_eq!(
            got.get("libguestfs-tools-c").map(String::as_str),
            Some("1.52.0-3.fc40")
        );
        assert_eq!(got.get("wget").map(String::as_str), Some("2.1.0-9.fc40"));
        assert!(!got.contains_key("libguestfs-tools") && !got.contains_key("libvirt"));
        // An answer that is no answer (rpm failed) fails the query instead of reading as absent.
        let broken =
            FixturePackageDb::new(Family::Dnf, "", "").with_whatprovides([("libvirt", "")]);
        assert!(broken.installed(&["libvirt"]).is_err());
    }

    /// A name only a `Provides:` offers (Fedora 40's wget) is available through dnf's
    /// `--whatprovides`, installed through it, and seen installed afterwards.
    #[test]
    fn a_provided_name_is_available_installed_and_then_seen() {
        let db = FixturePackageDb::new(Family::Dnf, "", "libvirt\t10.1.0-1.fc40\n\n")
            .with_available_provides([("wget", "wget2-wget\t2.1.0-9.fc40\n\n")]);
        let avail = db.available(&["libvirt", "wget", "nope"]).unwrap();
        assert_eq!(avail.get("wget").map(String::as_str), Some("2.1.0-9.fc40"));
        assert!(!avail.contains_key("nope"));
        db.install(&["wget"], &crate::progress::Quiet).unwrap();
        assert_eq!(
            db.installed(&["wget", "wget2-wget"]).unwrap(),
            Installed::from([
                ("wget".to_string(), "2.1.0-9.fc40".to_string()),
                ("wget2-wget".to_string(), "2.1.0-9.fc40".to_string())
            ])
        );
        // yum hosts resolve names only (EL7's names are all package names).
        let yum = FixturePackageDb::new(Family::Yum, "", "")
            .with_available_provides([("wget", "wget\t1.14-15.el7\n")]);
        assert!(yum.available(&["wget"]).unwrap().is_empty());
    }

    #[test]
    fn dpkg_query_counts_only_ii_and_sees_interrupted_runs() {
        let st = parse_dpkg_query(
            "libvirt-daemon-system\t9.0.0-4+deb12u2\tii \nwget\t1.21.3-1+b2\trc \nqemu-system-x86\t1:7.2+dfsg-7+deb12u7\tiU \nipxe-qemu\t1.0.0+git-20190125.36a4c85-5.1\tiF \nvim\t2:9.0\tun \nlibc6\t2.36-9\tiiR\n",
        );
        assert_eq!(
            st.installed.keys().collect::<Vec<_>>(),
            ["libvirt-daemon-system"]
        );
        assert_eq!(st.interrupted, ["qemu-system-x86", "ipxe-qemu", "libc6"]);
    }

    #[test]
    fn dnf_repoquery_reads_dnf4_and_dnf5_output() {
        // dnf4 adds its own newline after the format's, dnf5 does not.
        let got = parse_dnf_repoquery(
            "libvirt\t10.0.0-6.el9_5\n\nwget\t1.21.1-8.el9_4\n\nipxe-roms-qemu\t20200823-9.git4bd064de.el9\nqemu-kvm\t17:9.0.0-10.el9_5\n",
        );
        assert_eq!(got["ipxe-roms-qemu"], "20200823-9.git4bd064de.el9");
        assert_eq!(got["qemu-kvm"], "17:9.0.0-10.el9_5");
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn yum_list_reads_wrapped_columns() {
        let text = "Available Packages\n\
libguestfs-tools.noarch                   1:1.36.3-6.el7                rhel-7-server-rpms\n\
libguestfs-xfs.x86_64                     1:1.36.3-6.el7                rhel-7-server-rpms\n\
ipxe-roms-qemu.noarch\n\
                        20170123-1.git4e85b27.el7_4.1         rhel-7-server-rpms\n\
wget.x86_64                               1.14-15.el7                   rhel-7-server-rpms\n";
        let got = parse_yum_list(text);
        assert_eq!(got["ipxe-roms-qemu"], "20170123-1.git4e85b27.el7_4.1");
        assert_eq!(got["libguestfs-tools"], "1:1.36.3-6.el7");
        assert_eq!(got["wget"], "1.14-15.el7");
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn apt_cache_policy_none_candidate_is_unavailable() {
        let text = "libvirt-daemon-system:\n  Installed: (none)\n  Candidate: 9.0.0-4+deb12u2\n  Version table:\n     9.0.0-4+deb12u2 500\n        500 http://deb.debian.org/debian bookworm/main amd64 Packages\n\
policykit-1:\n  Installed: (none)\n  Candidate: (none)\n  Version table:\n";
        let got = parse_apt_cache_policy(text);
        assert_eq!(got["libvirt-daemon-system"], "9.0.0-4+deb12u2");
        assert!(!got.contains_key("policykit-1"));
    }

    #[test]
    fn stream_logs_output_and_fails_with_the_tail() {
        struct Rec(RefCell<Vec<String>>);
        impl Progress for Rec {
            fn tick(&self, m: &str) {
                self.0.borrow_mut().push(m.to_string());
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("var/log/x.log");
        let rec = Rec(RefCell::new(vec![]));
        let mut ok = Command::new("sh");
        ok.args(["-c", "echo one; echo two"]);
        stream_to_log(&mut ok, &log, &rec).unwrap();
        assert_eq!(rec.0.borrow()[1..], ["one", "two"]);
        let mut bad = Command::new("sh");
        bad.args([
            "-c",
            "echo working; echo 'E: Unable to locate package nope' >&2; exit 100",
        ]);
        let err = format!("{:#}", stream_to_log(&mut bad, &log, &rec).unwrap_err());
        assert!(err.contains("Unable to locate package nope"), "{err}");
        assert!(err.contains("exit status: 100"), "{err}");
        assert!(err.contains("x.log"), "{err}");
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(logged.contains("==> sh -c") && logged.contains("two\n"));
    }

    /// The real package manager of this machine (Debian in CI), read with the same parsers.
    #[test]
    fn the_system_db_reads_this_machine() {
        if virthost_testkit::tool("dpkg-query", "dpkg").is_none() {
            return;
        }
        let db = SystemPackageDb::new(Family::Apt, HostRoot::system(), false);
        let got = db.installed(&["dpkg", "virthost-no-such-package"]).unwrap();
        assert!(got.contains_key("dpkg"), "{got:?}");
        assert_eq!(got.len(), 1);
        let avail = db.available(&["dpkg", "virthost-no-such-package"]).unwrap();
        assert!(avail.contains_key("dpkg") && !avail.contains_key("virthost-no-such-package"));
        assert!(db.lists_may_be_stale());
    }

    #[test]
    fn fixture_db_installs_only_what_is_available() {
        let db = FixturePackageDb::new(
            Family::Dnf,
            "wget\t(none):1.21.1-8.el9_4\n",
            "libvirt\t10.0.0-6.el9_5\n",
        );
        db.install(&["libvirt"], &crate::progress::Quiet).unwrap();
        assert_eq!(
            db.installed(&["libvirt"]).unwrap()["libvirt"],
            "10.0.0-6.el9_5"
        );
        assert!(db.install(&["nope"], &crate::progress::Quiet).is_err());
    }
}
