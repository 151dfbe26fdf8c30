//! `libvirt`: the libvirt daemons the host ships, running, and enabled at boot: monolithic
//! `libvirtd` or the modular daemons (`virtqemud`, `virtnetworkd`, ... sockets). Through
//! systemd where it is PID 1; where it is not (containers, CI) the daemons are started
//! directly and will not start at boot.

use std::process::Command;

use anyhow::bail;

use crate::cmd::CommandExt;
use crate::facts::{self, LibvirtDaemons, LibvirtMode};
use crate::hostroot::HostRoot;
use crate::os::Platform;
use crate::step::{Check, Progress, Step};

pub struct Libvirt {
    pub platform: Platform,
}

/// What one mode needs on one host.
struct Want {
    mode: LibvirtMode,
    systemd: bool,
    /// Daemons, in start order.
    daemons: Vec<&'static str>,
}

impl Want {
    fn read(root: &HostRoot, platform: &Platform) -> Option<Want> {
        let d = LibvirtDaemons::read(root);
        let mode = d.mode(root, platform)?;
        let mut daemons = vec![];
        if d.virtlogd {
            daemons.push("virtlogd");
        }
        match mode {
            LibvirtMode::Monolithic => daemons.push("libvirtd"),
            LibvirtMode::Modular => daemons.extend(d.modular.iter().copied()),
        }
        Some(Want {
            mode,
            systemd: facts::systemd_is_pid1(root),
            daemons,
        })
    }

    /// The units `systemctl enable --now` gets.
    fn units(&self) -> Vec<String> {
        self.daemons
            .iter()
            .map(|d| match (self.mode, *d) {
                (_, "virtlogd") => "virtlogd.socket".to_string(),
                (LibvirtMode::Monolithic, d) => format!("{d}.service"),
                (LibvirtMode::Modular, d) => format!("{d}.socket"),
            })
            .collect()
    }

    /// Running: the process, or (under systemd) its listening socket.
    fn running(root: &HostRoot, systemd: bool, daemon: &str) -> bool {
        let sock = match daemon {
            "libvirtd" => "/run/libvirt/libvirt-sock".to_string(),
            d => format!("/run/libvirt/{d}-sock"),
        };
        facts::is_running(root, daemon) || (systemd && root.exists(&sock))
    }

    fn pending(&self, root: &HostRoot) -> Vec<String> {
        let mut out = vec![];
        if self.systemd {
            let units = self.units();
            let not_enabled: Vec<&String> = units
                .iter()
                .filter(|u| {
                    let service = u.replace(".socket", ".service");
                    !facts::unit_enabled(root, u) && !facts::unit_enabled(root, &service)
                })
                .collect();
            let stopped: Vec<&str> = self
                .daemons
                .iter()
                .copied()
                .filter(|d| !Self::running(root, true, d))
                .collect();
            if !not_enabled.is_empty() || !stopped.is_empty() {
                out.push(format!("systemctl enable --now {}", units.join(" ")));
            }
        } else {
            for d in &self.daemons {
                if !Self::running(root, false, d) {
                    out.push(format!("start {d} -d (no systemd as PID 1)"));
                }
            }
        }
        out
    }
}

impl Step for Libvirt {
    fn id(&self) -> &'static str {
        "libvirt"
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &["packages"]
    }

    fn check(&self, root: &HostRoot) -> anyhow::Result<Check> {
        let Some(want) = Want::read(root, &self.platform) else {
            return Ok(Check::Pending(vec![
                "start and enable libvirt once the packages step installs it".into(),
            ]));
        };
        let pending = want.pending(root);
        if !pending.is_empty() {
            return Ok(Check::Pending(pending));
        }
        let mode = match want.mode {
            LibvirtMode::Monolithic => "monolithic",
            LibvirtMode::Modular => "modular",
        };
        Ok(Check::Converged(if want.systemd {
            format!("{mode}: {} enabled and running", want.units().join(", "))
        } else {
            format!(
                "{mode}: {} running; no systemd as PID 1, so it will not start at boot",
                want.daemons.join(", ")
            )
        }))
    }

    fn apply(&self, root: &HostRoot, _progress: &dyn Progress) -> anyhow::Result<()> {
        let Some(want) = Want::read(root, &self.platform) else {
            bail!("no libvirt daemon (libvirtd or virtqemud) is installed");
        };
        if !root.is_system() {
            bail!("daemons can only be started on the running system (root /)");
        }
        if want.systemd {
            Command::new("systemctl")
                .args(["enable", "--now"])
                .args(want.units())
                .run()?;
        } else {
            for d in &want.daemons {
                if !Want::running(root, false, d) {
                    Command::new(d).arg("-d").run()?;
                }
            }
            // A daemon that forks reports success before it may have exited on a bad
            // config; give it a moment so the check after apply sees the truth.
            for _ in 0..20 {
                if want.pending(root).is_empty() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::OsRelease;
    use crate::step::{run, Mode, Quiet, Status};

    use crate::steps::testroot::put as write;

    fn check(d: &std::path::Path, os: &str) -> crate::step::Outcome {
        let platform = Platform::detect(&OsRelease::parse(os), None).unwrap();
        let steps: Vec<Box<dyn Step>> = vec![Box::new(Libvirt { platform })];
        run(&steps, &HostRoot::at(d), Mode::Check, &Quiet, |_| {}).remove(0)
    }

    #[test]
    fn without_systemd_the_daemons_are_started_directly() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "usr/sbin/libvirtd", "");
        write(d.path(), "usr/sbin/virtlogd", "");
        write(d.path(), "proc/10/comm", "virtlogd\n");
        let o = check(d.path(), "ID=debian\nVERSION_ID=12");
        assert_eq!(o.changes, ["start libvirtd -d (no systemd as PID 1)"]);
        write(d.path(), "proc/11/comm", "libvirtd\n");
        let o = check(d.path(), "ID=debian\nVERSION_ID=12");
        assert_eq!(o.status, Status::Ok);
        assert!(o.detail.contains("will not start at boot"), "{}", o.detail);
    }

    #[test]
    fn modular_under_systemd_is_enabled_by_socket() {
        let d = tempfile::tempdir().unwrap();
        for b in [
            "libvirtd",
            "virtlogd",
            "virtqemud",
            "virtnetworkd",
            "virtstoraged",
        ] {
            write(d.path(), &format!("usr/sbin/{b}"), "");
        }
        std::fs::create_dir_all(d.path().join("run/systemd/system")).unwrap();
        let o = check(d.path(), "ID=rocky\nVERSION_ID=9.4");
        assert_eq!(
            o.changes,
            ["systemctl enable --now virtlogd.socket virtqemud.socket virtnetworkd.socket virtstoraged.socket"]
        );
        let wants = d.path().join("etc/systemd/system/sockets.target.wants");
        std::fs::create_dir_all(&wants).unwrap();
        for u in ["virtlogd", "virtqemud", "virtnetworkd", "virtstoraged"] {
            std::os::unix::fs::symlink("/dev/null", wants.join(format!("{u}.socket"))).unwrap();
            write(d.path(), &format!("run/libvirt/{u}-sock"), "");
        }
        let o = check(d.path(), "ID=rocky\nVERSION_ID=9.4");
        assert_eq!(o.status, Status::Ok, "{o:?}");
    }
}
