//! The wait for one test domain's boot: every 25 ms the HTTP server's requests and the
//! serial console, once a second the domain's CPU time, until the callback, the deadline,
//! a signal, iPXE giving up, the domain stopping or a stall.

use std::path::Path;
use std::time::{Duration, Instant};

use virt::domain::Domain;

use super::cleanup::interrupted;
use super::{http, serial, stall, Timings};
use crate::options::DomainType;

/// What the wait saw.
pub(super) struct Observed {
    pub prog: serial::Progress,
    pub timings: Timings,
    /// `(mac, version)` of the callback with the right token.
    pub callback: Option<(String, String)>,
    /// Callbacks with a wrong token.
    pub bad_tokens: usize,
    /// The console, ANSI escapes stripped.
    pub text: String,
    pub hung: Option<stall::Stall>,
    /// Whether the domain still ran when the wait ended.
    pub domain_alive: Option<bool>,
    /// The NIC's packet counters when the wait ended, as libvirt reports them for the
    /// guest (its tap device's counters, swapped).
    pub nic: Option<NicCounters>,
}

/// Packets the guest's NIC sent and received (`virDomainInterfaceStats`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct NicCounters {
    pub sent: i64,
    pub received: i64,
}

/// The counters of `dom`'s NIC, read from its host-side device.
fn nic_counters(dom: &Domain) -> Option<NicCounters> {
    let dev = super::domain::nic_target(&dom.xml_desc(0).ok()?)?;
    let s = dom.interface_stats(&dev).ok()?;
    Some(NicCounters {
        sent: s.tx_packets,
        received: s.rx_packets,
    })
}

/// Watches `dom` from `t0` (just before it was created) for at most `timeout`.
pub(super) fn watch(
    dom: &Domain,
    server: &http::Server,
    serial_path: &Path,
    t0: Instant,
    timeout: Duration,
    dtype: DomainType,
) -> Observed {
    let secs = |t: Instant| t.saturating_duration_since(t0).as_secs_f64();
    let mut prog = serial::Progress::default();
    let mut timings = Timings::default();
    let mut callback: Option<(String, String)> = None;
    let mut bad_tokens = 0;
    let mut text = String::new();
    let deadline = t0 + timeout;
    let mut gave_up_at = None;
    let mut cpu = stall::CpuSamples::default();
    let mut hung = None;
    loop {
        let now = Instant::now();
        for ev in server.drain() {
            match ev {
                http::Event::Script { at } => {
                    timings.script_s.get_or_insert(secs(at));
                }
                http::Event::Callback {
                    at,
                    token_ok: true,
                    mac,
                    version,
                } => {
                    timings.callback_s = Some(secs(at));
                    callback = Some((mac, version));
                }
                http::Event::Callback { .. } => bad_tokens += 1,
            }
        }
        if let Ok(raw) = std::fs::read(serial_path) {
            text = serial::clean(&raw);
            prog.update(&text, now);
        }
        if let Some(last) = prog.last_output {
            let quiet = now.saturating_duration_since(last).as_secs_f64();
            let longest = timings.longest_quiet_s.get_or_insert(0.0);
            *longest = longest.max(quiet);
        }
        if callback.is_some() || now >= deadline || interrupted().is_some() {
            break;
        }
        if let Some(g) = prog.gave_up {
            // Let a late request still arrive, then stop.
            let g = *gave_up_at.get_or_insert(g);
            if now.duration_since(g) > Duration::from_secs(2) {
                break;
            }
        }
        if !dom.is_active().unwrap_or(true) {
            break;
        }
        if cpu.due(now) {
            if let Ok(info) = dom.info() {
                cpu.push(now, info.cpu_time);
            }
        }
        // Only once the firmware printed: a domain silent from the start is "no firmware
        // output" (TCG on a loaded host can take a while to print anything).
        if let Some(last) = prog.last_output {
            hung = stall::stalled(last, now, &cpu, stall::silence(dtype));
            if hung.is_some() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let domain_alive = Some(dom.is_active().unwrap_or(false));
    let nic = if callback.is_none() {
        nic_counters(dom)
    } else {
        None
    };
    timings.dhcp_s = match (prog.dhcp.map(secs), timings.script_s) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Observed {
        prog,
        timings,
        callback,
        bad_tokens,
        text,
        hung,
        domain_alive,
        nic,
    }
}
