//! `libvirt`: the libvirt daemons the host ships, running, and enabled at boot: monolithic
//! `libvirtd` or the modular daemons (`virtqemud`, `virtnetworkd`, ... sockets). Through
//! systemd where it is PID 1; where it is not (containers, CI) the daemons are started
//! directly and will not start at boot.

use anyhow::bail;

use crate::cmd::{self, Runner};
use crate::facts::{self, LibvirtDaemons, LibvirtMode};
use crate::hostroot::HostRoot;
use crate::os::Platform;
use crate::step::{Check, Progress, Step};

pub struct Libvirt<'a> {
    pub platform: Platform,
    /// Runs `systemctl` or the daemons.
    pub run: &'a dyn Runner,
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
        facts::is_running(root, daemon) || (systemd && root.exists(facts::libvirt_socket(daemon)))
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

impl Step for Libvirt<'_> {
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
        if want.systemd {
            self.run.run(
                cmd::tool("systemctl")
                    .args(["enable", "--now"])
                    .args(want.units()),
            )?;
        } else {
            for d in &want.daemons {
                if !Want::running(root, false, d) {
                    self.run.run(cmd::tool(d).arg("-d"))?;
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
    use crate::fixture::World;
    use crate::os::OsRelease;
    use crate::step::{run, Mode, Quiet, Status};

    use crate::steps::testroot::put as write;

    /// The step on the host under `d`, run in `mode` through a fixture world; its outcome
    /// and the commands it ran.
    fn step(d: &std::path::Path, os: &str, mode: Mode) -> (crate::step::Outcome, Vec<String>) {
        let platform = Platform::detect(&OsRelease::parse(os), None).unwrap();
        let world = World::at(d);
        let steps: Vec<Box<dyn Step>> = vec![Box::new(Libvirt {
            platform,
            run: &world,
        })];
        let o = run(&steps, world.root(), mode, &Quiet, |_| {}).remove(0);
        (o, world.calls())
    }

    fn check(d: &std::path::Path, os: &str) -> crate::step::Outcome {
        step(d, os, Mode::Check).0
    }

    #[test]
    fn without_systemd_the_daemons_are_started_directly() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "usr/sbin/libvirtd", "");
        write(d.path(), "usr/sbin/virtlogd", "");
        write(d.path(), "proc/10/comm", "virtlogd\n");
        let o = check(d.path(), "ID=debian\nVERSION_ID=12");
        assert_eq!(o.changes, ["start libvirtd -d (no systemd as PID 1)"]);
        let (o, calls) = step(d.path(), "ID=debian\nVERSION_ID=12", Mode::Apply);
        assert_eq!(
            (o.status, &calls[..]),
            (Status::Changed, &["libvirtd -d".to_string()][..])
        );
        assert!(o.detail.contains("will not start at boot"), "{}", o.detail);
        let (o, calls) = step(d.path(), "ID=debian\nVERSION_ID=12", Mode::Apply);
        assert_eq!((o.status, calls.len()), (Status::Ok, 0), "{o:?}");
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
        let enable = "systemctl enable --now virtlogd.socket virtqemud.socket virtnetworkd.socket virtstoraged.socket";
        assert_eq!(o.changes, [enable]);
        let (o, calls) = step(d.path(), "ID=rocky\nVERSION_ID=9.4", Mode::Apply);
        assert_eq!(
            (o.status, &calls[..]),
            (Status::Changed, &[enable.to_string()][..]),
            "{o:?}"
        );
        for u in ["virtlogd", "virtqemud", "virtnetworkd", "virtstoraged"] {
            let link = d.path().join(format!(
                "etc/systemd/system/sockets.target.wants/{u}.socket"
            ));
            assert!(link.symlink_metadata().is_ok(), "{u} enabled");
            assert!(
                d.path().join(format!("run/libvirt/{u}-sock")).exists(),
                "{u} listening"
            );
        }
        let o = check(d.path(), "ID=rocky\nVERSION_ID=9.4");
        assert_eq!(o.status, Status::Ok, "{o:?}");
    }

    #[test]
    fn a_daemon_that_is_not_installed_fails_the_step() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "usr/sbin/libvirtd", "");
        let (o, _) = step(d.path(), "ID=debian\nVERSION_ID=12", Mode::Apply);
        assert_eq!(o.status, Status::Changed, "{o:?}");
        std::fs::remove_file(d.path().join("usr/sbin/libvirtd")).unwrap();
        let (o, _) = step(d.path(), "ID=debian\nVERSION_ID=12", Mode::Apply);
        assert_eq!(o.status, Status::Failed, "{o:?}");
        assert!(o.detail.contains("no libvirt daemon"), "{}", o.detail);
    }
}
