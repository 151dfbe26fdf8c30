//! One lane of the boot proof: an isolated network with its own HTTP server and token, and
//! the test domains booted on it one after the other. Sequentially one lane boots every
//! (mode, NIC model); side by side each boot mode has a lane of its own (its network, its
//! server, its token, its serial files), in a thread of its own.
//!
//! Everything a lane creates is torn down on every path: at its end, on error, on
//! SIGINT/SIGTERM (its loop sees the signal) and on panic ([`Drop`]).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Instant;

use virt::connect::Connect;
use virt::domain::Domain;
use virt::network::Network;

use super::cleanup::{interrupted, serial_dir};
use super::domain::{self, create_readable, domain_xml, uefi_files, DomainSpec};
use super::messages::{self, mode_word, About};
use super::names::{random_hex_from, NoRandomness, RandomSource, RANDOM_HINT};
use super::{check_id, http, net, poll, tftp, verdict, NicBoot, Proof, Timings};
use crate::check::CheckResult;
use crate::checks::libvirt::version_string;
use crate::options::{BootMode, DomainType};

pub(super) struct Lane {
    conn: Connect,
    /// The run's name (`virthost-validate-<pid>-<random>`).
    name: String,
    /// The network's name after the run's: `-<attempt>` (one lane, and the BIOS lane side
    /// by side) or `-uefi-<attempt>` (the UEFI lane side by side).
    net_infix: &'static str,
    random: RandomSource,
    network: Option<Network>,
    domain: Option<Domain>,
    files: Vec<PathBuf>,
    /// The network whose TFTP root [`tftp::prepare`] made, to remove at teardown.
    tftp_net: Option<String>,
}

/// Held while a lane picks its subnet and creates its network.
static NETWORK_CREATION: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The network a lane boots on, once it is up.
struct Up {
    server: http::Server,
    net_name: String,
    gateway: Ipv4Addr,
    notes: String,
}

impl Lane {
    pub(super) fn new(
        conn: Connect,
        name: String,
        net_infix: &'static str,
        random: RandomSource,
    ) -> Lane {
        Lane {
            conn,
            name,
            net_infix,
            random,
            network: None,
            domain: None,
            files: Vec::new(),
            tftp_net: None,
        }
    }

    /// `n` random bytes as hex, or the FAIL detail.
    fn hex(&self, n: usize) -> Result<String, NoRandomness> {
        random_hex_from(n, self.random)
    }

    fn destroy_domain(&mut self) {
        if let Some(d) = self.domain.take() {
            let _ = d.destroy();
        }
    }

    pub(super) fn teardown(&mut self) {
        self.destroy_domain();
        if let Some(n) = self.network.take() {
            let _ = n.destroy();
        }
        for f in self.files.drain(..) {
            let _ = std::fs::remove_file(f);
        }
        if let Some(n) = self.tftp_net.take() {
            tftp::remove(&n);
        }
    }

    /// Creates the network (retrying on a subnet collision) and boots each of `targets`,
    /// then tears down.
    pub(super) fn boot_all(
        &mut self,
        p: &Proof,
        targets: &[(BootMode, String)],
        dtype: DomainType,
        progress: &mut dyn FnMut(&str),
        start: Instant,
    ) -> Vec<NicBoot> {
        let fail_all = |detail: String, hint: String| -> Vec<NicBoot> {
            targets
                .iter()
                .map(|(mode, nic)| NicBoot {
                    result: CheckResult::fail(check_id(*mode, nic), detail.clone(), hint.clone())
                        .took(start.elapsed()),
                    mode: *mode,
                    nic: nic.clone(),
                    timings: Timings::default(),
                })
                .collect()
        };
        let up = match self.network_up(p, progress) {
            Ok(up) => up,
            Err((detail, hint)) => return fail_all(detail, hint),
        };
        progress(&format!(
            "boot: network {} up, boot script at http://{}:{}/boot.ipxe",
            up.net_name, up.gateway, up.server.port
        ));

        let mut out = Vec::new();
        for (mode, nic) in targets {
            if interrupted().is_some() {
                break;
            }
            progress(&format!(
                "boot: booting a {} {} domain, NIC model {nic}",
                dtype.as_str(),
                mode_word(*mode)
            ));
            let b = self.boot_one(p, *mode, nic, dtype, &up);
            progress(&format!(
                "boot: {} {nic}: {} {}",
                mode.as_str(),
                b.result.status,
                b.result.detail
            ));
            out.push(b);
        }
        drop(up);
        if let Some(sig) = interrupted() {
            for (mode, nic) in &targets[out.len()..] {
                out.push(NicBoot {
                    mode: *mode,
                    nic: nic.clone(),
                    result: CheckResult::fail(
                        check_id(*mode, nic),
                        format!("interrupted by {sig}"),
                        "run validate again",
                    ),
                    timings: Timings::default(),
                });
            }
        }
        progress("boot: removing the test network");
        self.teardown();
        out
    }

    /// The isolated network with the HTTP server on its gateway, or the FAIL detail and
    /// hint of every boot.
    fn network_up(
        &mut self,
        p: &Proof,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Up, (String, String)> {
        let lib_version = self.conn.lib_version().unwrap_or(0);
        let mut tuning = p.tuning;
        let mut notes = String::new();
        if tuning.needs_dnsmasq_options() && lib_version < net::DNSMASQ_OPTIONS_SINCE {
            tuning.no_ping = false;
            tuning.no_pxedhcp = false;
            notes.push_str(&format!(
                "; libvirt {} < 5.6 takes no dnsmasq options: no-ping and no-pxedhcp not set, \
                 DHCP takes a few seconds longer",
                version_string(lib_version)
            ));
        }
        let netns_pid = net::libvirt_daemon_pid();
        let netns = netns_pid.and_then(net::foreign_netns);
        let (token, start_at) = match (self.hex(16), self.hex(2)) {
            (Ok(t), Ok(s)) => (t, u16::from_str_radix(&s, 16).unwrap_or(0) as usize),
            (Err(e), _) | (_, Err(e)) => return Err((e.to_string(), RANDOM_HINT.into())),
        };
        let firewalld_zone = net::firewalld_running().then(|| "trusted".to_string());

        progress("boot: creating the isolated test network");
        let mut last_err = String::new();
        for attempt in 0..4 {
            // One lane at a time from reading the used subnets to the network being up, so
            // two lanes side by side never pick the same subnet.
            let _creating = NETWORK_CREATION
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut used = net::host_routes(netns_pid);
            if let Ok(nets) = self.conn.list_all_networks(0) {
                for n in nets {
                    if let Ok(x) = n.xml_desc(0) {
                        used.extend(net::parse_network_ips(&x));
                    }
                }
            }
            let Some(subnet) = net::pick(&used, start_at + attempt) else {
                return Err((
                    "no free candidate subnet (10.213.x, 172.31.2xx, 192.168.2xx are all routed)"
                        .into(),
                    "free one of these /24s for the test network".into(),
                ));
            };
            let gateway = subnet.gateway();
            let srv = match http::Server::start(gateway, netns.clone(), token.clone()) {
                Ok(s) => s,
                Err(e) => {
                    return Err((
                        format!("cannot start the HTTP server on {gateway}: {e}"),
                        "run validate as root (it binds inside libvirt's network namespace)".into(),
                    ))
                }
            };
            let name = format!("{}{}-{attempt}", self.name, self.net_infix);
            let ula = match self.hex(5) {
                Ok(h) => format!("fd{}:{}:{}:{:x}::", &h[..2], &h[2..6], &h[6..], attempt + 1),
                Err(e) => return Err((e.to_string(), RANDOM_HINT.into())),
            };
            // UEFI: chain the host's snponly.efi over TFTP (needs dnsmasq options); without
            // one, the NIC ROM's iPXE must boot the URL itself (Debian 12's ROMs do).
            let uefi_chain = match tftp::snponly() {
                Some(src)
                    if p.modes.contains(&BootMode::Uefi)
                        && p.offer_boot_file
                        && lib_version >= net::DNSMASQ_OPTIONS_SINCE =>
                {
                    if let Some(old) = self.tftp_net.take() {
                        tftp::remove(&old);
                    }
                    match tftp::prepare(&name, src) {
                        Ok(root) => {
                            self.tftp_net = Some(name.clone());
                            Some(root)
                        }
                        Err(e) => {
                            notes.push_str(&format!("; no TFTP root for UEFI ({e})"));
                            None
                        }
                    }
                }
                _ => None,
            };
            // `vhv` and 9 random hex digits: 12 bytes, under Linux's 15, and no `virbrN`
            // that libvirt could hand out twice (net::NetworkSpec::bridge).
            let bridge = match self.hex(5) {
                Ok(h) => format!("vhv{}", &h[..9]),
                Err(e) => return Err((e.to_string(), RANDOM_HINT.into())),
            };
            let spec = net::NetworkSpec {
                name: name.clone(),
                bridge,
                subnet,
                ula,
                boot_url: p
                    .offer_boot_file
                    .then(|| format!("http://{gateway}:{}/boot.ipxe", srv.port)),
                uefi_chain,
                tuning,
                firewalld_zone: firewalld_zone.clone(),
            };
            match self.conn.create_network_xml(&spec.xml()) {
                Ok(n) => {
                    let net_name = n.name().unwrap_or_default();
                    self.network = Some(n);
                    return Ok(Up {
                        server: srv,
                        net_name,
                        gateway,
                        notes,
                    });
                }
                Err(e) => last_err = e.message().to_string(),
            }
            if tuning.ipv6_ra && last_err.to_ascii_lowercase().contains("ipv6") {
                // A host with IPv6 off: boot without router advertisements, and say so.
                tuning.ipv6_ra = false;
                notes.push_str(
                    "; IPv6 unavailable for the test network: without router advertisements \
                     iPXE waits ~12 s for IPv6 before DHCP completes",
                );
            }
            if interrupted().is_some() {
                break;
            }
        }
        Err((
            format!("cannot create the test network: {last_err}"),
            "check that dnsmasq is installed (dnsmasq-base) and libvirtd can create bridges".into(),
        ))
    }

    /// Boots one test domain on the lane's network and judges what it did.
    fn boot_one(
        &mut self,
        p: &Proof,
        mode: BootMode,
        nic: &str,
        dtype: DomainType,
        up: &Up,
    ) -> NicBoot {
        let id = check_id(mode, nic);
        let began = Instant::now();
        let nic_boot = |result: CheckResult, timings: Timings| NicBoot {
            mode,
            nic: nic.into(),
            result,
            timings,
        };
        let dom_name = domain::name(&self.name, mode, nic);
        let serial_path = serial_dir().join(format!("{dom_name}.serial"));
        let mac = match self.hex(3) {
            Ok(h) => format!("52:54:00:{}:{}:{}", &h[..2], &h[2..4], &h[4..]),
            Err(e) => {
                return nic_boot(
                    CheckResult::fail(id, e.to_string(), RANDOM_HINT),
                    Timings::default(),
                );
            }
        };
        let _ = std::fs::remove_file(&serial_path);
        if let Err(e) = create_readable(&serial_path) {
            return nic_boot(
                CheckResult::fail(
                    id,
                    format!("cannot create {}: {e}", serial_path.display()),
                    "run validate as root",
                ),
                Timings::default(),
            );
        }
        self.files.push(serial_path.clone());
        let xml = domain_xml(&DomainSpec {
            name: &dom_name,
            dtype,
            nic,
            mac: &mac,
            network: &up.net_name,
            serial: &serial_path,
            rom: &p.rom,
            mode,
        });
        up.server.drain();
        let t0 = Instant::now();
        let dom = match self
            .conn
            .create_domain_xml(&xml, virt::sys::VIR_DOMAIN_START_AUTODESTROY)
        {
            Ok(d) => d,
            Err(e) => {
                return nic_boot(
                    messages::did_not_start(&id, nic, &dom_name, e.message())
                        .took(began.elapsed())
                        .started(began),
                    Timings::default(),
                );
            }
        };
        // UEFI: the firmware libvirt chose, and the NVRAM file it made for the domain,
        // removed with the rest (also after a SIGKILL: `sweep`).
        let mut firmware = String::new();
        if mode == BootMode::Uefi {
            let (loader, nvram) = dom.xml_desc(0).map(|x| uefi_files(&x)).unwrap_or_default();
            if let Some(n) = nvram {
                self.files.push(PathBuf::from(n));
            }
            firmware = loader.map(|l| format!(" ({l})")).unwrap_or_default();
        }
        let dom = self.domain.insert(dom);
        let seen = poll::watch(dom, &up.server, &serial_path, t0, p.timeout, dtype);
        self.destroy_domain();
        let verdict = verdict::judge(&seen, interrupted());
        let server = format!("{}:{}", up.gateway, up.server.port);
        let about = About {
            id: &id,
            dtype,
            mode,
            nic,
            mac: &mac,
            firmware: &firmware,
            note: &up.notes,
            dom_name: &dom_name,
            server: &server,
            timeout: p.timeout,
            t0,
        };
        let result = messages::result(&about, &seen, verdict);
        let timings = seen.timings;
        nic_boot(result.took(began.elapsed()).started(began), timings)
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        self.teardown();
    }
}
