//! Reading the test domain's serial console: how far the boot got, and when.

use std::time::Instant;

/// Milestones seen on the console, each with the time it was first seen.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Any output at all (SeaBIOS prints first).
    pub firmware: Option<Instant>,
    /// `iPXE (PCI ...) starting execution` or the iPXE banner.
    pub ipxe: Option<Instant>,
    /// `Configuring (net0 ...)`.
    pub configuring: Option<Instant>,
    /// `ok` after `Configuring`: DHCP done.
    pub dhcp: Option<Instant>,
    /// iPXE's version from its banner.
    pub version: Option<String>,
    /// iPXE or the BIOS gave up (`Nothing to boot`, `No bootable device`, ...).
    pub gave_up: Option<Instant>,
    /// When the console last grew.
    pub last_output: Option<Instant>,
    seen_len: usize,
}

impl Progress {
    /// Updates the milestones from the whole console text so far, seen at `now`.
    pub fn update(&mut self, text: &str, now: Instant) {
        if text.len() != self.seen_len {
            self.seen_len = text.len();
            self.last_output = Some(now);
        }
        if self.firmware.is_none() && !text.trim().is_empty() {
            self.firmware = Some(now);
        }
        if self.ipxe.is_none() && text.contains("iPXE") {
            self.ipxe = Some(now);
        }
        if self.version.is_none() {
            self.version = text.lines().find_map(|l| {
                let (before, _) = l.split_once(" -- Open Source Network Boot Firmware")?;
                let v = before.rsplit_once("iPXE ")?.1.trim();
                (!v.is_empty()).then(|| v.to_string())
            });
        }
        if let Some(i) = text.find("Configuring (net") {
            if self.configuring.is_none() {
                self.configuring = Some(now);
            }
            let rest = &text[i..];
            let line_end = rest.find('\n').unwrap_or(rest.len());
            if self.dhcp.is_none() && rest[..line_end].contains(" ok") {
                self.dhcp = Some(now);
            }
        }
        if self.gave_up.is_none()
            && [
                "Nothing to boot",
                "No bootable device",
                "No more network devices",
            ]
            .iter()
            .any(|m| text.contains(m))
        {
            self.gave_up = Some(now);
        }
    }
}

/// Console bytes as text: ANSI escape sequences and carriage returns removed.
pub fn clean(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                // CSI: ESC [ params final-byte; other escapes: ESC + one char.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for d in chars.by_ref() {
                        if ('@'..='~').contains(&d) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => {}
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// The last `n` non-empty lines, joined with ` | `.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[u8] = b"\x1b[2J\x1b[1;1HSeaBIOS (version 1.16.3-debian-1.16.3-2)\r\n\
        iPXE (PCI 00:03.0) starting execution...ok\r\n\
        iPXE initialising devices...ok\r\n\r\n\r\n\
        \x1b[1miPXE 1.0.0+git-20190125.36a4c85-5.1\x1b[0m -- Open Source Network Boot Firmware -- http://ipxe.org\r\n\
        Features: DNS HTTP iSCSI NFS TFTP AoE ELF MBOOT PXE bzImage Menu PXEXT\r\n\r\n\
        net0: 52:54:00:41:e0:13 using virtio-net on 0000:00:03.0 (open)\r\n\
        Configuring (net0 52:54:00:41:e0:13)...... ok\r\n\
        net0: 10.213.0.13/255.255.255.0\r\n";

    #[test]
    fn milestones_and_version() {
        let text = clean(LOG);
        let mut p = Progress::default();
        let t = Instant::now();
        p.update(&text, t);
        assert!(p.firmware.is_some() && p.ipxe.is_some() && p.configuring.is_some());
        assert!(p.dhcp.is_some());
        assert!(p.gave_up.is_none());
        assert_eq!(p.version.as_deref(), Some("1.0.0+git-20190125.36a4c85-5.1"));
        assert_eq!(
            tail(&text, 2),
            "Configuring (net0 52:54:00:41:e0:13)...... ok | net0: 10.213.0.13/255.255.255.0"
        );
    }

    #[test]
    fn no_dhcp_yet() {
        let mut p = Progress::default();
        p.update(
            "iPXE 1.0 -- Open Source Network Boot Firmware\nConfiguring (net0 52:54:00:41:e0:13)....",
            Instant::now(),
        );
        assert!(p.configuring.is_some() && p.dhcp.is_none());
        p.update("Nothing to boot: No such file or directory", Instant::now());
        assert!(p.gave_up.is_some());
    }
}
