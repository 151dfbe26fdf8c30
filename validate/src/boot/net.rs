//! The test network: a subnet that collides with no route and no libvirt network, and the
//! libvirt network XML tuned for a fast iPXE boot (ENVIRONMENT.md: an IPv6 prefix so
//! dnsmasq sends router advertisements, dnsmasq's ping check off, iPXE's ProxyDHCP wait
//! off with `no-pxedhcp`).

use std::net::Ipv4Addr;
use std::path::Path;

use virthost_model::hostroot::HostRoot;

use super::xmlscan::escape;

/// An IPv4 /24 (`base` ends in .0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub base: Ipv4Addr,
}

impl Subnet {
    pub fn gateway(self) -> Ipv4Addr {
        let o = self.base.octets();
        Ipv4Addr::new(o[0], o[1], o[2], 1)
    }

    fn host(self, n: u8) -> Ipv4Addr {
        let o = self.base.octets();
        Ipv4Addr::new(o[0], o[1], o[2], n)
    }
}

/// An IPv4 prefix in use: `(network, mask)` as host-order integers.
pub type Used = (u32, u32);

/// The candidate /24s, in order: 10.213.0-255.0, 172.31.200-255.0, 192.168.200-255.0.
pub fn candidates() -> Vec<Subnet> {
    let mut out = Vec::new();
    out.extend((0..=255).map(|c| Subnet {
        base: Ipv4Addr::new(10, 213, c, 0),
    }));
    out.extend((200..=255).map(|c| Subnet {
        base: Ipv4Addr::new(172, 31, c, 0),
    }));
    out.extend((200..=255).map(|c| Subnet {
        base: Ipv4Addr::new(192, 168, c, 0),
    }));
    out
}

fn overlaps(a: Used, b: Used) -> bool {
    let m = a.1 & b.1;
    a.0 & m == b.0 & m
}

/// The first candidate, starting at `start` (modulo the list, so concurrent runs spread
/// out), that overlaps no `used` prefix.
pub fn pick(used: &[Used], start: usize) -> Option<Subnet> {
    let c = candidates();
    (0..c.len()).map(|i| c[(start + i) % c.len()]).find(|s| {
        let me = (u32::from(s.base), 0xffff_ff00);
        !used.iter().any(|u| overlaps(me, *u))
    })
}

/// The non-default routes of a `/proc/net/route` table, read by procfs's `RouteEntries`;
/// none from a table it cannot read whole (the kernel writes none).
pub fn parse_proc_route(text: &str) -> Vec<Used> {
    use procfs::FromBufRead;
    let Ok(procfs::net::RouteEntries(routes)) =
        procfs::net::RouteEntries::from_buf_read(text.as_bytes())
    else {
        return Vec::new();
    };
    routes
        .iter()
        .map(|r| (u32::from(r.destination), u32::from(r.mask)))
        .filter(|(_, mask)| *mask != 0)
        .map(|(dest, mask)| (dest & mask, mask))
        .collect()
}

/// The IPv4 prefixes of a libvirt network XML (`<ip address=... netmask=|prefix=>`);
/// nothing from a document that is no XML.
pub fn parse_network_ips(xml: &str) -> Vec<Used> {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return Vec::new();
    };
    doc.descendants()
        .filter(|n| n.has_tag_name("ip"))
        .filter(|n| matches!(n.attribute("family"), None | Some("ipv4")))
        .filter_map(|n| {
            let addr: Ipv4Addr = n.attribute("address")?.parse().ok()?;
            let mask = if let Some(m) = n.attribute("netmask") {
                u32::from(m.parse::<Ipv4Addr>().ok()?)
            } else {
                let p: u32 = n.attribute("prefix").unwrap_or("24").parse().ok()?;
                if p == 0 {
                    0
                } else {
                    u32::MAX << (32 - p.min(32))
                }
            };
            Some((u32::from(addr) & mask, mask))
        })
        .collect()
}

/// Whether firewalld runs (a process named `firewalld`).
pub fn firewalld_running() -> bool {
    virthost_model::facts::is_running(&HostRoot::system(), "firewalld")
}

/// Routes of this process's and of `netns_pid`'s network namespace (the one the bridge will
/// live in).
pub fn host_routes(netns_pid: Option<u32>) -> Vec<Used> {
    let mut out = Vec::new();
    let mut files = vec!["/proc/net/route".to_string()];
    if let Some(p) = netns_pid {
        files.push(format!("/proc/{p}/net/route"));
    }
    for f in files {
        if let Ok(t) = std::fs::read_to_string(Path::new(&f)) {
            out.extend(parse_proc_route(&t));
        }
    }
    out
}

/// The network tweaks that make an iPXE boot fast (ENVIRONMENT.md: 18.9 s without any,
/// about 3 s to the callback with all of them under TCG here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// An IPv6 ULA prefix: dnsmasq sends router advertisements, so iPXE's IPv6
    /// autoconfiguration completes instead of holding DHCP's "ok" for ~12 s.
    pub ipv6_ra: bool,
    /// dnsmasq `no-ping`: no ~3 s ping check before offering an address.
    pub no_ping: bool,
    /// iPXE's `no-pxedhcp` (DHCP option 175.176 = 1): no ProxyDHCP wait.
    pub no_pxedhcp: bool,
}

impl Tuning {
    pub const FAST: Tuning = Tuning {
        ipv6_ra: true,
        no_ping: true,
        no_pxedhcp: true,
    };
    /// A plain isolated network, for comparison.
    pub const NAIVE: Tuning = Tuning {
        ipv6_ra: false,
        no_ping: false,
        no_pxedhcp: false,
    };

    /// `<dnsmasq:options>` is needed.
    pub fn needs_dnsmasq_options(self) -> bool {
        self.no_ping || self.no_pxedhcp
    }
}

/// What the network offers.
#[derive(Debug, Clone)]
pub struct NetworkSpec {
    pub name: String,
    pub subnet: Subnet,
    /// A ULA `/64` prefix such as `fd12:3456:789a:1::` (the gateway is `::1`); used when
    /// `tuning.ipv6_ra`.
    pub ula: String,
    /// The boot file URL; `None` offers no boot file (a negative test).
    pub boot_url: Option<String>,
    /// UEFI: a TFTP root holding `snponly.efi` (iPXE for the firmware's own PXE client).
    /// iPXE clients (DHCP option 175) then get `boot_url`, all others `snponly.efi` over
    /// TFTP, the way Ironic chains UEFI nodes: Debian 13's `efi-*.rom` carry no iPXE, only
    /// a network driver (docs/uefi-debian13.md). Needs `<dnsmasq:options>`.
    pub uefi_chain: Option<std::path::PathBuf>,
    /// `no_ping` and `no_pxedhcp` need `<dnsmasq:options>` (libvirt >= 5.6): the caller
    /// turns them off on older libvirt.
    pub tuning: Tuning,
    /// The bridge's name, chosen by validate (at most 15 bytes): with libvirt's own
    /// `virbrN` two networks created at once (the boot modes side by side) were once given
    /// the same bridge, and the failed start of one removed the other's
    /// (`Cannot get interface MTU on 'virbr1': No such device`, Debian 13, libvirt 11.3).
    pub bridge: String,
    /// The firewalld zone of the bridge. Where firewalld runs, libvirt puts bridges in its
    /// `libvirt` zone, which rejects everything but DHCP, DNS, TFTP and SSH from guests:
    /// the HTTP callback needs `trusted` (the network holds only the test domain).
    pub firewalld_zone: Option<String>,
}

/// libvirt's version (`major * 1_000_000 + minor * 1000 + micro`) from which network XML
/// takes `<dnsmasq:options>`.
pub const DNSMASQ_OPTIONS_SINCE: u32 = 5_006_000;

impl NetworkSpec {
    /// The network XML: isolated (no `<forward>`), DHCP with the boot file, the tuning.
    pub fn xml(&self) -> String {
        let gw = self.subnet.gateway();
        let chain = self.uefi_chain.as_ref().zip(self.boot_url.as_ref());
        let bootp = match (&self.boot_url, chain) {
            (Some(u), None) => format!("\n      <bootp file='{}'/>", escape(u)),
            _ => String::new(),
        };
        let tftp = match chain {
            Some((root, _)) => format!(
                "\n    <tftp root='{}'/>",
                escape(&root.display().to_string())
            ),
            None => String::new(),
        };
        let ipv6 = if self.tuning.ipv6_ra {
            format!(
                "\n  <ip family='ipv6' address='{}1' prefix='64'/>",
                self.ula
            )
        } else {
            String::new()
        };
        let mut options = String::new();
        if self.tuning.needs_dnsmasq_options() || chain.is_some() {
            options.push_str("\n  <dnsmasq:options>");
            if self.tuning.no_ping {
                options.push_str("\n    <dnsmasq:option value='no-ping'/>");
            }
            if self.tuning.no_pxedhcp {
                options
                    .push_str("\n    <dnsmasq:option value='dhcp-option-force=encap:175,176,1b'/>");
            }
            if let Some((_, url)) = chain {
                options.push_str("\n    <dnsmasq:option value='dhcp-match=set:ipxe,175'/>");
                options.push_str(&format!(
                    "\n    <dnsmasq:option value='dhcp-boot=tag:ipxe,{}'/>",
                    escape(url)
                ));
                options.push_str("\n    <dnsmasq:option value='dhcp-boot=tag:!ipxe,snponly.efi'/>");
            }
            options.push_str("\n  </dnsmasq:options>");
        }
        let zone = match &self.firewalld_zone {
            Some(z) => format!(" zone='{}'", escape(z)),
            None => String::new(),
        };
        format!(
            "<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>\n  \
             <name>{name}</name>\n  \
             <bridge name='{bridge}' stp='off' delay='0'{zone}/>\n  \
             <dns enable='no'/>\n  \
             <ip address='{gw}' netmask='255.255.255.0'>{tftp}\n    <dhcp>\n      \
             <range start='{lo}' end='{hi}'/>{bootp}\n    </dhcp>\n  </ip>{ipv6}{options}\n</network>\n",
            name = escape(&self.name),
            bridge = escape(&self.bridge),
            lo = self.subnet.host(10),
            hi = self.subnet.host(100),
        )
    }
}

/// The pid of the libvirt daemon that creates bridges (`virtnetworkd` on modular hosts).
pub fn libvirt_daemon_pid() -> Option<u32> {
    for f in [
        "/run/virtnetworkd.pid",
        "/run/libvirtd.pid",
        "/var/run/libvirtd.pid",
    ] {
        if let Ok(s) = std::fs::read_to_string(f) {
            if let Ok(pid) = s.trim().parse::<u32>() {
                if Path::new(&format!("/proc/{pid}")).exists() {
                    return Some(pid);
                }
            }
        }
    }
    virthost_model::facts::processes(&HostRoot::system(), |c| {
        matches!(c, "virtnetworkd" | "libvirtd")
    })
    .first()
    .map(|p| p.pid)
}

/// `/proc/<pid>/ns/net` when that differs from ours (libvirtd in its own namespace).
pub fn foreign_netns(pid: u32) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let theirs = std::path::PathBuf::from(format!("/proc/{pid}/ns/net"));
    let a = std::fs::metadata(&theirs).ok()?;
    let b = std::fs::metadata("/proc/self/ns/net").ok()?;
    (a.ino() != b.ino() || a.dev() != b.dev()).then_some(theirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_networks_are_avoided() {
        let route =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            eth0\t0000D50A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let used = parse_proc_route(route);
        assert_eq!(
            used,
            [(u32::from(Ipv4Addr::new(10, 213, 0, 0)), 0xffff_0000)]
        );
        let net = "<network><ip address='172.31.200.1' netmask='255.255.255.0'/>\
            <ip family='ipv6' address='fd00::1' prefix='64'/><ip address='172.31.201.1' prefix='24'/></network>";
        let mut all = used.clone();
        all.extend(parse_network_ips(net));
        assert_eq!(all.len(), 3);
        assert_eq!(pick(&all, 0).unwrap().base, Ipv4Addr::new(172, 31, 202, 0));
        assert_eq!(pick(&[], 3).unwrap().base, Ipv4Addr::new(10, 213, 3, 0));
        // A /8 route covering 10.x leaves the 172.31 candidates.
        assert_eq!(
            pick(&[(0x0a00_0000, 0xff00_0000)], 0).unwrap().base,
            Ipv4Addr::new(172, 31, 200, 0)
        );
    }

    #[test]
    fn network_xml_is_isolated_and_tuned() {
        let spec = NetworkSpec {
            name: "virthost-validate-1-ab".into(),
            subnet: Subnet {
                base: Ipv4Addr::new(10, 213, 7, 0),
            },
            ula: "fd01:2:3:4::".into(),
            boot_url: Some("http://10.213.7.1:8080/boot.ipxe".into()),
            uefi_chain: None,
            tuning: Tuning::FAST,
            bridge: "vhv0123abcd0".into(),
            firewalld_zone: Some("trusted".into()),
        };
        let xml = spec.xml();
        assert!(!xml.contains("<forward"));
        assert!(xml.contains("<bootp file='http://10.213.7.1:8080/boot.ipxe'/>"));
        assert!(xml.contains("address='fd01:2:3:4::1' prefix='64'"));
        assert!(xml.contains("no-ping"));
        assert!(xml.contains("<bridge name='vhv0123abcd0' stp='off' delay='0' zone='trusted'/>"));
        let plain = NetworkSpec {
            boot_url: None,
            tuning: Tuning::NAIVE,
            firewalld_zone: None,
            ..spec.clone()
        }
        .xml();
        assert!(!plain.contains("bootp") && !plain.contains("dnsmasq:option"));
        assert!(!plain.contains("ipv6") && !plain.contains("zone="));
        let uefi = NetworkSpec {
            uefi_chain: Some("/var/lib/libvirt/dnsmasq/t.tftp".into()),
            tuning: Tuning::NAIVE,
            ..spec.clone()
        }
        .xml();
        assert!(!uefi.contains("<bootp"));
        assert!(uefi.contains("<tftp root='/var/lib/libvirt/dnsmasq/t.tftp'/>"));
        assert!(uefi.contains("dhcp-match=set:ipxe,175"));
        assert!(uefi.contains("dhcp-boot=tag:ipxe,http://10.213.7.1:8080/boot.ipxe"));
        assert!(uefi.contains("dhcp-boot=tag:!ipxe,snponly.efi"));
    }
}
