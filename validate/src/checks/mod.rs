//! One module per concern. Each `run` reads the host only through [`Host`] (a [`Probe`]
//! and facts parsed once) and returns its [`CheckResult`]s.

pub mod capacity;
pub mod cpu;
pub mod firmware;
pub mod images;
pub mod kvm;
pub mod libvirt;
pub mod os;
pub mod packages;
pub mod ssh;
pub mod user;

use virthost_model::cpu::CpuInfo;
use virthost_model::os::{Family, OsRelease, Platform};

use crate::probe::Probe;
use virthost_model::accounts::Accounts;

/// Facts every check module needs, read once.
pub struct Host<'a> {
    pub probe: &'a dyn Probe,
    pub os: OsRelease,
    /// `None` when the OS is not one virthost knows and no package manager was recognised.
    pub platform: Option<Platform>,
    pub cpu: CpuInfo,
    pub accounts: Accounts,
}

impl<'a> Host<'a> {
    pub fn load(probe: &'a dyn Probe) -> Host<'a> {
        let root = probe.root();
        let os = OsRelease::parse(
            &root
                .read_optional("/etc/os-release")
                .ok()
                .flatten()
                .unwrap_or_default(),
        );
        let platform = Platform::detect(&os, None).ok().or_else(|| {
            // An OS virthost does not know: best effort through the package manager it has.
            let family = if root.exists("/var/lib/dpkg/status") {
                Family::Apt
            } else if root.exists("/var/lib/rpm") {
                Family::Dnf
            } else {
                return None;
            };
            Platform::detect(&os, Some(family)).ok()
        });
        let cpu = CpuInfo::parse(
            &root
                .read_optional("/proc/cpuinfo")
                .ok()
                .flatten()
                .unwrap_or_default(),
        );
        Host {
            probe,
            os,
            platform,
            cpu,
            // A missing /etc/passwd reads as no users: the user checks then FAIL.
            accounts: Accounts::read(root).unwrap_or_default(),
        }
    }

    /// A host file's content, `None` when missing or unreadable.
    pub fn read(&self, host_path: &str) -> Option<String> {
        self.probe.root().read_optional(host_path).ok().flatten()
    }
}

#[cfg(test)]
mod tests;
