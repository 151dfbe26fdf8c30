//! Property tests: every `validate` parser that reads bytes it did not write survives
//! arbitrary input: no panic, no hang, bounded time (each call runs under a watchdog).
//!
//! Covered (inputs: arbitrary strings, lossy UTF-8 of arbitrary bytes, and real fixture text
//! from `fixtures/` mutated: cut at random points, random bytes spliced in, lines
//! duplicated, dropped and swapped, the parser's own tokens mixed with garbage):
//!
//! - `boot::xmlscan::escape`: the XML validate writes
//! - `checks::libvirt::{offered_types, domain_types_from, pool_target_path, pool_result,
//!   domain_type_result}`, `DomainTypes::{best, choose}`: capabilities, domain
//!   capabilities, pool XML
//! - `boot::net::{parse_proc_route, parse_network_ips, pick}`: `/proc/net/route`, network XML
//! - `boot::serial::{clean, tail, Progress::update}`: the test domain's serial console
//! - `boot::http`: `percent_decode` and the callback server's request parsing, over real
//!   TCP requests (`Server::start` on 127.0.0.1): the server must answer every request and
//!   still serve after it
//! - `checks::capacity::{meminfo, mount_of, xfs_ftype}`: `/proc/meminfo`, `/proc/mounts`,
//!   `xfs_info` output
//! - `checks::ssh::{config_ports, parse_listening, sshd_ports, listening_tcp_ports}`:
//!   sshd_config (and drop-ins), `/proc/net/tcp{,6}`
//! - `options::{parse_nodes, uri_host}`
//! - `probe::FixtureProbe::load` (probe.json, its octal modes)
//! - every host check at once (`run::run_host`: os, cpu, kvm incl. qemu.conf, packages,
//!   capacity, user, ssh; `report::Report` JSON and human output) over (a) hosts laid out
//!   from generated files and answers, (b) copies of the `fixtures/validate/*` cases and
//!   the shared `fixtures/hosts/*` with one file (probe.json included) mutated
//!
//! Not here: SSH key files and `authorized_keys` lines (`virthost_model::sshkey`, tested in
//! `model/src/sshkey.rs`; the whole-host properties still read authorized_keys).
//!
//! `PROPTEST_CASES=N` raises every case count (deeper runs); `PROPTEST_RNG_SEED=N` replays a
//! run.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestRunner;

use validate::boot::{http, net, serial, xmlscan};
use validate::checks::libvirt::{self as lv, DomainTypes};
use validate::checks::{capacity, ssh};
use validate::options::DomainType;
use validate::options::{self, Options};
use validate::probe::{
    CommandOutput, FileKind, FileMeta, FixtureAnswers, FixtureProbe, KvmAnswer, Space,
};
use virthost_model::hostroot::HostRoot;

// The shared machinery (watchdog, configuration, fixture seeds, generators) is
// `virthost_testkit::props`.
use virthost_testkit::props::*;

// ---------------------------------------------------------------------------------------
// Tokens of each format.
// ---------------------------------------------------------------------------------------

#[rustfmt::skip]
const XML_WORDS: &[&str] = &[
    "<capabilities>", "</capabilities>", "<guest>", "</guest>", "<os_type>hvm</os_type>",
    "<os_type>", "</os_type>", "hvm", "<arch name='x86_64'>", "<arch name=\"x86_64\">",
    "</arch>", "<arch", "<domain type='kvm'/>", "<domain type='qemu'/>", "<domain",
    "<domain>kvm</domain>", "</domain>", "<domainCapabilities>", "<pool type='dir'>", "</pool>",
    "<target>", "</target>", "<path>", "</path>", "<path/>", "<ip", "<ip ",
    "<ip address='10.0.0.1' netmask='255.255.255.0'/>",
    "<ip family='ipv6' address='fd00::1' prefix='64'/>", "address=", "netmask=", "prefix=",
    "family=", "name=", "type=", "='", "=\"", "'", "\"", "<", ">", "/>", "</", " ", "\n", "\t",
    "<!--", "-->", "<![CDATA[", "]]>", "&amp;", "x86_64", "aarch64", "kvm", "qemu", "32", "33",
    "0", "255.255.255.255", "999.1.1.1",
];

#[rustfmt::skip]
const SERIAL_WORDS: &[&str] = &[
    "SeaBIOS (version 1.16.3)", "iPXE", "iPXE ", " -- Open Source Network Boot Firmware",
    "iPXE 1.0.0+git-20190125.36a4c85-5.1 -- Open Source Network Boot Firmware -- http://ipxe.org",
    "Configuring (net0 52:54:00:41:e0:13)", "Configuring (net", "...... ok", " ok",
    "Nothing to boot", "No bootable device", "No more network devices", "\u{1b}[2J",
    "\u{1b}[1;1H", "\u{1b}[", "\u{1b}", "\u{1b}c", "\r\n", "\r", "\u{7}", "\u{8}",
];

#[rustfmt::skip]
const HTTP_WORDS: &[&str] = &[
    "GET ", "POST ", " HTTP/1.0", " HTTP/1.1", "\r\n", "\r\n\r\n", "\n", "Host: x\r\n",
    "/boot.ipxe", "/booted", "?", "&", "token=", "mac=", "ver=", "%3A", "%41", "%", "%4", "%zz",
    "%é", "%aé", "%+1", "=", "52:54:00:00:00:01", "1.0.0+git", " ", "  ", "/",
];

#[rustfmt::skip]
const MEM_WORDS: &[&str] = &[
    "MemTotal:       16384 kB", "MemFree:        18014398509481983 kB",
    "Buffers:        18446744073709551615 kB", "Cached:         18014398509481984 kB",
    "MemAvailable:   18446744073709551615 kB", "MemTotal:", "MemFree:", "MemAvailable:",
    "Buffers:", "Cached:", " kB", "kB", ":", "18446744073709551615", "18014398509481984",
    "18014398509481983", "0", "-1", "  ",
];

#[rustfmt::skip]
const MOUNT_WORDS: &[&str] = &[
    "/", "/var", "/var/lib/libvirt/images", "/srv/vms", "xfs", "ext4", "rw,relatime", "0 0",
    "\\040", "\\011", "\\134", "\\", " ", "proc", "/dev/sda1", "naming", "=version 2", "ftype=",
    "ftype=1", "ftype=0", "ftype=x", "ftype=99999999999", "ascii-ci=0,",
];

#[rustfmt::skip]
const SSH_WORDS: &[&str] = &[
    "Port", "port", "PORT", "Port=", "port =", "Match", "match", "User", "22", "2222", "0",
    "65535", "65536", "-1", "#", "ListenAddress", "Include", "sl", "local_address",
    "00000000:0016", "00000000:0016 00000000:0000 0A", "0A", "0a", "01", ":", "::", ":FFFF",
    ":10000", "   0: ",
];

#[rustfmt::skip]
const NODE_WORDS: &[&str] = &[
    "undercloud", "controller", "compute", "ceph", "networker", "ironic", "aio", "edge", ":",
    ",", "/", "+", "1", "0", "3", "10000", "10001", "4096", "4097", "65536", "65537", "1000000",
    "1000001", "18446744073709551616", "8/24/100", "2/6/46+47", " ", "",
];

#[rustfmt::skip]
const URI_WORDS: &[&str] = &[
    "qemu", "qemu+ssh", "qemu+unix", "test", "://", ":///", "/system", "/session", "user@", "@",
    "host", "[", "]", "[::1]", ":22", "?", "#", "/", "socket=/x", "",
];

#[rustfmt::skip]
const PROBE_WORDS: &[&str] = &[
    "{", "}", "[", "]", "\"", ":", ",", "\"mode\": \"0660\"", "\"mode\": \"9\"",
    "\"mode\": \"-1\"", "\"mode\": \"77777777777\"", "\"uid\": 0", "\"gid\": 4294967296",
    "\"kind\": \"char\"", "\"kind\": \"pipe\"", "\"result\": \"answered\"",
    "\"result\": \"open_failed\"", "\"api_version\": 12", "\"api_version\": null", "null",
    "\"commands\"", "\"meta\"", "\"space\"", "\"kvm\"", "\"_comment\"", "\"stdout\"",
    "\"success\": true", "\"available\": 1", "\"total\": 18446744073709551616", "\\u0000",
    "\\ud800", "1e999", "-0",
];

#[rustfmt::skip]
const HOST_WORDS: &[&str] = &[
    "\n", ":", "=", "\t", " ", "ii", "(none):", "0:", "Y", "N", "1", "0", "vmx", "svm",
    "processor", "flags", "ID", "VERSION_ID", "ID_LIKE", "kvm", "stack", "root", "<target>",
    "<path>", "</path>", "MemTotal:", "MemAvailable:", " kB", "xfs", "Port", "0A", "user =",
    "group =", "\"", "qemu", "/srv/vms", "/var/lib/libvirt/images", "é", "😀", "{", "}",
    "\"mode\": \"0660\"", "\"kind\": \"char\"",
];

// ---------------------------------------------------------------------------------------
// XML readers.
// ---------------------------------------------------------------------------------------

fn xml_seeds() -> Vec<String> {
    let mut v = fixture_files(&[
        "validate/libvirt-9.0/capabilities.xml",
        "validate/libvirt-9.0/domcapabilities-kvm.xml",
        "validate/libvirt-9.0/domcapabilities-qemu.xml",
        "validate/libvirt-9.0/pool-dir.xml",
        "virsh/libvirt-9.0/pool-dumpxml-running.xml",
    ]);
    v.extend(host_files("etc/libvirt/storage/default.xml"));
    v.push(
        "<network><ip address='172.31.200.1' netmask='255.255.255.0'/>\
         <ip family='ipv6' address='fd00::1' prefix='64'/><ip address='172.31.201.1' prefix='24'/></network>"
            .into(),
    );
    v
}

/// XML documents: the inputs of [`input`], plus seeds mutated at the tag level (whole
/// elements spliced in), up to [`XML_MAX`].
fn xml() -> BoxedStrategy<String> {
    input(xml_seeds(), XML_WORDS, XML_MAX)
}

/// Mostly libvirt's capabilities and domain capabilities, lightly mutated (so guests,
/// arches and domain types are still found), else any XML.
fn caps_xml() -> BoxedStrategy<String> {
    let caps = fixture_files(&[
        "validate/libvirt-9.0/capabilities.xml",
        "validate/libvirt-9.0/domcapabilities-kvm.xml",
        "validate/libvirt-9.0/domcapabilities-qemu.xml",
    ]);
    prop_oneof![
        2 => mutated(caps, XML_WORDS, XML_MAX, 0..4),
        1 => xml(),
    ]
    .boxed()
}

fn check_xmlscan(doc: String) -> Result<(), TestCaseError> {
    let esc = xmlscan::escape(&doc);
    prop_assert!(!esc.contains(['<', '>', '\'', '"']));
    Ok(())
}

fn check_libvirt_xml(doc: String, other: String) -> Result<(), TestCaseError> {
    for arch in ["x86_64", "aarch64", "", "é"] {
        let offered = lv::offered_types(&doc, arch);
        let mut dedup = offered.clone();
        dedup.sort();
        dedup.dedup();
        prop_assert_eq!(dedup.len(), offered.len(), "repeats in {:?}", offered);
        for hw in [false, true] {
            let t = lv::domain_types_from(&doc, Some(&other), arch, hw);
            let _ = lv::domain_types_from(&doc, None, arch, hw);
            check_domain_types(&t)?;
        }
    }
    if let Some(p) = lv::pool_target_path(&doc) {
        prop_assert!(!p.as_os_str().is_empty());
    }
    let _ = virthost_model::virsh::parse_pool_xml(&doc);
    let _ = net::parse_network_ips(&doc);
    Ok(())
}

fn check_domain_types(t: &DomainTypes) -> Result<(), TestCaseError> {
    let _ = lv::domain_type_result(t, Duration::ZERO);
    let _ = lv::domain_type_result(t, Duration::from_secs(60));
    for wanted in [None, Some(DomainType::Kvm), Some(DomainType::Qemu)] {
        if let Ok(d) = t.choose(wanted) {
            if let Some(w) = wanted {
                prop_assert_eq!(d, w);
            }
        }
    }
    Ok(())
}

#[test]
fn libvirt_captures_parse() {
    let f = fixture_files(&[
        "validate/libvirt-9.0/capabilities.xml",
        "validate/libvirt-9.0/domcapabilities-kvm.xml",
        "validate/libvirt-9.0/pool-dir.xml",
    ]);
    let offered = lv::offered_types(&f[0], "x86_64");
    assert!(offered.iter().any(|t| t == "qemu"), "{offered:?}");
    let t = lv::domain_types_from(&f[0], Some(&f[1]), "x86_64", true);
    assert!(t.best().is_some(), "{t:?}");
    assert!(lv::pool_target_path(&f[2]).is_some());
}

fn check_network(route: String, xml: String, start: usize) -> Result<(), TestCaseError> {
    let mut used = net::parse_proc_route(&route);
    used.extend(net::parse_network_ips(&xml));
    for (n, m) in &used {
        prop_assert_eq!(n & m, *n, "prefix {:08x}/{:08x} has host bits", n, m);
    }
    if let Some(s) = net::pick(&used, start) {
        prop_assert_eq!(s.base.octets()[3], 0);
    }
    Ok(())
}

fn check_serial(raw: Vec<u8>) -> Result<(), TestCaseError> {
    let text = serial::clean(&raw);
    prop_assert!(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "control characters left in {text:?}"
    );
    let mut p = serial::Progress::default();
    let now = Instant::now();
    // The console grows: feed every prefix at a char boundary, as the boot loop does.
    let cuts: Vec<usize> = (0..=text.len())
        .step_by(61)
        .chain([text.len()])
        .filter(|i| text.is_char_boundary(*i))
        .collect();
    for c in cuts {
        p.update(&text[..c], now);
    }
    if let Some(v) = &p.version {
        prop_assert!(!v.is_empty());
        no_newline("the iPXE version", v)?;
    }
    prop_assert_eq!(serial::tail(&text, 0), "");
    for n in [1, 3, 1000] {
        no_newline("the console tail", &serial::tail(&text, n))?;
    }
    Ok(())
}

fn serial_input() -> BoxedStrategy<Vec<u8>> {
    let seed = "\u{1b}[2J\u{1b}[1;1HSeaBIOS (version 1.16.3-debian-1.16.3-2)\r\n\
        iPXE (PCI 00:03.0) starting execution...ok\r\n\
        iPXE initialising devices...ok\r\n\r\n\r\n\
        \u{1b}[1miPXE 1.0.0+git-20190125.36a4c85-5.1\u{1b}[0m -- Open Source Network Boot Firmware -- http://ipxe.org\r\n\
        Features: DNS HTTP iSCSI NFS TFTP AoE ELF MBOOT PXE bzImage Menu PXEXT\r\n\r\n\
        net0: 52:54:00:41:e0:13 using virtio-net on 0000:00:03.0 (open)\r\n\
        Configuring (net0 52:54:00:41:e0:13)...... ok\r\n\
        net0: 10.213.0.13/255.255.255.0\r\n\
        Nothing to boot: No such file or directory\r\n";
    prop_oneof![
        3 => input(vec![seed.to_string()], SERIAL_WORDS, TEXT_MAX).prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..TEXT_MAX),
        // A cut inside a multi-byte character or an escape sequence.
        1 => (prop::collection::vec(any::<u8>(), 0..64), 0usize..4)
            .prop_map(|(mut b, k)| { b.extend_from_slice(&"é😀\u{1b}[1m".as_bytes()[..k * 2]); b }),
    ]
    .boxed()
}

fn check_capacity(text: String) -> Result<(), TestCaseError> {
    if let Some((total, _avail)) = capacity::meminfo(&text) {
        prop_assert!(total % 1024 == 0 || total == u64::MAX);
        prop_assert!(text.contains("MemTotal"));
    }
    for path in [
        "/var/lib/libvirt/images",
        "/",
        "",
        "relative",
        "/srv/vms/images",
    ] {
        if let Some((mp, _fs, _opts)) = capacity::mount_of(&text, path) {
            prop_assert!(Path::new(path).starts_with(&mp), "{path} is not under {mp}");
        }
    }
    let _ = capacity::xfs_ftype(&text);
    Ok(())
}

fn check_ssh(text: String) -> Result<(), TestCaseError> {
    let ports = ssh::config_ports(&text);
    prop_assert!(ports.len() <= text.lines().count());
    let listening = ssh::parse_listening(&text);
    prop_assert!(listening.len() <= text.lines().count());
    Ok(())
}

fn check_nodes(spec: String) -> Result<(), TestCaseError> {
    if let Ok(groups) = options::parse_nodes(&spec) {
        prop_assert!(!groups.is_empty());
        for g in &groups {
            prop_assert!(g.count >= 1 && u64::from(g.count) <= options::MAX_COUNT);
            prop_assert!(!g.name.is_empty());
            prop_assert!(u64::from(g.size.vcpus) <= options::MAX_VCPUS);
            prop_assert!(g.size.memory_gib <= options::MAX_MEMORY_GIB);
            prop_assert!(g.size.disk_gb <= options::MAX_DISK_GB);
            prop_assert!(g.size.extra_disks_gb.len() <= options::MAX_DATA_DISKS);
        }
        let opts = Options {
            nodes: groups,
            ..Options::default()
        };
        let _ = capacity::planned(&opts);
    }
    Ok(())
}

fn check_uri(uri: String) -> Result<(), TestCaseError> {
    if let Some(h) = options::uri_host(&uri) {
        prop_assert!(!h.is_empty() && uri.contains(h));
    }
    Ok(())
}

fn check_percent(s: String) -> Result<(), TestCaseError> {
    let d = http::percent_decode(&s);
    prop_assert!(d.chars().count() <= s.chars().count());
    if !s.contains('%') {
        prop_assert_eq!(d, s);
    }
    Ok(())
}

#[test]
fn percent_decode_decodes() {
    assert_eq!(
        http::percent_decode("52%3A54%3a00%3A00%3A00%3A01"),
        "52:54:00:00:00:01"
    );
    assert_eq!(http::percent_decode("1.0.0+git"), "1.0.0+git");
    assert_eq!(http::percent_decode("%zz%4"), "%zz%4");
    assert_eq!(http::percent_decode("%aé"), "%aé");
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn xmlscan_never_panics(doc in xml()) {
        bounded(move || check_xmlscan(doc))?;
    }

    #[test]
    fn libvirt_xml_readers_never_panic(doc in caps_xml(), other in caps_xml()) {
        bounded(move || check_libvirt_xml(doc, other))?;
    }

    #[test]
    fn network_readers_never_panic(
        route in input(
            vec![
                "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                 eth0\t0000D50A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n".into(),
            ],
            &["\t", "00000000", "0000D50A", "FFFFFFFF", "0000FFFF", "eth0", "virbr0", "G", "-", "+1"],
            TEXT_MAX,
        ),
        xml in xml(),
        start in any::<usize>(),
    ) {
        bounded(move || check_network(route, xml, start))?;
    }

    #[test]
    fn serial_console_never_panics(raw in serial_input()) {
        bounded(move || check_serial(raw))?;
    }

    #[test]
    fn capacity_readers_never_panic(text in prop_oneof![
        input(host_files("proc/meminfo"), MEM_WORDS, TEXT_MAX),
        input(
            [
                host_files("proc/mounts"),
                fixture_files(&[
                    "validate/xfs_info/xfsprogs6.1-ftype1.txt",
                    "validate/xfs_info/xfsprogs6.1-v4-ftype0.txt",
                ]),
            ]
            .concat(),
            MOUNT_WORDS,
            TEXT_MAX,
        ),
    ]) {
        bounded(move || check_capacity(text))?;
    }

    #[test]
    fn ssh_readers_never_panic(text in input(
        [host_files("etc/ssh/sshd_config"), host_files("proc/net/tcp"), host_files("proc/net/tcp6")].concat(),
        SSH_WORDS,
        TEXT_MAX,
    )) {
        bounded(move || check_ssh(text))?;
    }

    #[test]
    fn node_specs_never_panic(spec in prop_oneof![
        prop::collection::vec(token(NODE_WORDS), 0..16).prop_map(|t| t.concat()),
        input(
            vec!["undercloud:1,controller:3,compute:2,edge:2:4/16/80+100".into(), "ceph:3:2/6/46+47+47".into()],
            NODE_WORDS,
            512,
        ),
    ]) {
        bounded(move || check_nodes(spec))?;
    }

    #[test]
    fn uri_host_never_panics(uri in prop_oneof![
        prop::collection::vec(token(URI_WORDS), 0..10).prop_map(|t| t.concat()),
        input(vec!["qemu+ssh://root@[fd00::1]:22/system?socket=/x".into()], URI_WORDS, 512),
    ]) {
        bounded(move || check_uri(uri))?;
    }

    #[test]
    fn percent_decode_never_panics(s in prop_oneof![
        prop::collection::vec(token(HTTP_WORDS), 0..16).prop_map(|t| t.concat()),
        input(vec!["token=t0k&mac=52%3A54%3A00%3A00%3A00%3A01&ver=1.0.0".into()], HTTP_WORDS, 1024),
    ]) {
        bounded(move || check_percent(s))?;
    }
}

// ---------------------------------------------------------------------------------------
// The callback server, over TCP.
// ---------------------------------------------------------------------------------------

/// Sends `request` (then closes the writing side) and reads the answer.
fn exchange(port: u16, request: &[u8]) -> std::io::Result<String> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(request)?;
    s.shutdown(Shutdown::Write)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn http_request() -> BoxedStrategy<Vec<u8>> {
    let seeds = vec![
        "GET /booted?token=t0k&mac=52%3A54%3A00%3A00%3A00%3A01&ver=1.0.0+git-20190125 HTTP/1.0\r\nHost: x\r\n\r\n".to_string(),
        "GET /boot.ipxe HTTP/1.1\r\nHost: 10.213.0.1\r\nUser-Agent: iPXE/1.0.0\r\n\r\n".to_string(),
    ];
    prop_oneof![
        4 => input(seeds, HTTP_WORDS, 2048).prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..512),
        2 => prop::collection::vec(token(HTTP_WORDS), 0..24).prop_map(|t| t.concat().into_bytes()),
    ]
    .boxed()
}

/// Arbitrary requests never kill the server: after each one (sent to a server of its own,
/// so a failure shrinks to the request that killed it), `/boot.ipxe` is still served.
#[test]
fn callback_server_survives_arbitrary_requests() {
    let mut runner = TestRunner::new(config(64));
    let result = runner.run(&http_request(), |req| {
        let srv = http::Server::start(Ipv4Addr::LOCALHOST, None, "t0k".into())
            .expect("the HTTP server starts on 127.0.0.1");
        let answer = exchange(srv.port, &req);
        // The server may close without an answer (a request line that is not UTF-8), but
        // it must take the next request.
        if let Ok(a) = &answer {
            prop_assert!(a.is_empty() || a.starts_with("HTTP/1.0 "), "answer {a:?}");
        }
        let next = exchange(srv.port, b"GET /boot.ipxe HTTP/1.0\r\n\r\n");
        prop_assert!(
            next.as_deref()
                .is_ok_and(|a| a.starts_with("HTTP/1.0 200") && a.contains("#!ipxe")),
            "after {:?} the server no longer serves /boot.ipxe: {:?}",
            String::from_utf8_lossy(&req),
            next
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // A callback still reports what it carried.
    let srv = http::Server::start(Ipv4Addr::LOCALHOST, None, "t0k".into()).unwrap();
    exchange(
        srv.port,
        b"GET /booted?token=t0k&mac=52%3A54&ver=1.0 HTTP/1.0\r\n\r\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let events = srv.drain();
    assert!(
        events.iter().any(
            |e| matches!(e, http::Event::Callback { token_ok: true, mac, .. } if mac == "52:54")
        ),
        "{events:?}"
    );
}

// ---------------------------------------------------------------------------------------
// probe.json and whole hosts.
// ---------------------------------------------------------------------------------------

fn probe_seeds() -> Vec<String> {
    cases()
        .iter()
        .map(|c| std::fs::read_to_string(c.join("probe.json")).unwrap())
        .collect()
}

/// A probe.json built field by field. `valid`: every value of its field's type (so the
/// document loads and the checks read it), else any type and any value (numbers out of
/// range, modes that are not octal, unknown kinds and results: refused, never a panic).
fn probe_json_structured(valid: bool) -> BoxedStrategy<String> {
    use serde_json::{json, Value};
    let wrong = || -> BoxedStrategy<Value> {
        prop_oneof![
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<bool>().prop_map(|b| json!(b)),
            Just(Value::Null),
            garbage().prop_map(Value::String),
        ]
        .boxed()
    };
    let or_wrong = move |right: BoxedStrategy<Value>| -> BoxedStrategy<Value> {
        if valid {
            right
        } else {
            prop_oneof![right, wrong()].boxed()
        }
    };
    let u32v = move || {
        or_wrong(
            prop_oneof![Just(0u32), Just(36), Just(1000), any::<u32>()]
                .prop_map(|n| json!(n))
                .boxed(),
        )
    };
    let u64v = move || or_wrong(any::<u64>().prop_map(|n| json!(n)).boxed());
    let octal = if valid {
        prop_oneof![
            select(
                &[
                    "0660",
                    "0600",
                    "0666",
                    "0777",
                    "7777",
                    "17777",
                    "0",
                    "1",
                    "37777777777"
                ][..]
            )
            .prop_map(str::to_string),
            any::<u32>().prop_map(|m| format!("{m:o}")),
        ]
        .boxed()
    } else {
        prop_oneof![
            select(
                &[
                    "9",
                    "-1",
                    "",
                    "0x1",
                    "77777777777",
                    "+7",
                    " 0600",
                    "0600\n",
                    "\u{0}"
                ][..]
            )
            .prop_map(str::to_string),
            garbage(),
        ]
        .boxed()
    };
    let mode = or_wrong(octal.prop_map(|m| json!(m)).boxed());
    let kinds: &[&str] = if valid {
        &["file", "dir", "char", "other"]
    } else {
        &["pipe", "FILE", ""]
    };
    let kind = or_wrong(select(kinds).prop_map(|k| json!(k)).boxed());
    let meta = (u32v(), u32v(), mode, kind, any::<bool>()).prop_map(
        |(uid, gid, mode, kind, with_kind)| {
            let mut m = json!({"uid": uid, "gid": gid, "mode": mode});
            if with_kind {
                m["kind"] = kind;
            }
            m
        },
    );
    let meta_paths = &[
        "/dev/kvm",
        "/dev/vhost-net",
        "/dev/net/tun",
        "/root",
        "/root/.ssh",
        "/root/.ssh/authorized_keys",
        "/home/stack",
        "/home/stack/.ssh",
        "/home/stack/.ssh/authorized_keys",
        "",
    ][..];
    let xfs = fixture_files(&[
        "validate/xfs_info/xfsprogs6.1-ftype1.txt",
        "validate/xfs_info/xfsprogs6.1-v4-ftype0.txt",
    ]);
    let command = (any::<bool>(), input(xfs, MOUNT_WORDS, TEXT_MAX))
        .prop_map(|(success, stdout)| json!({"success": success, "stdout": stdout}));
    let api = or_wrong(
        prop_oneof![
            Just(json!(12)),
            any::<i32>().prop_map(|n| json!(n)),
            Just(Value::Null)
        ]
        .boxed(),
    );
    let kvm = prop_oneof![
        garbage().prop_map(|e| json!({"result": "open_failed", "error": e})),
        (api, prop::option::of(garbage())).prop_map(
            |(v, e)| json!({"result": "answered", "api_version": v, "create_vm_error": e})
        ),
        Just(Value::Null),
    ];
    let space = (u64v(), u64v()).prop_map(|(a, t)| json!({"available": a, "total": t}));
    (
        prop::collection::btree_map(select(meta_paths), meta, 0..10),
        prop::collection::btree_map(
            select(
                &[
                    "xfs_info /",
                    "xfs_info /var",
                    "xfs_info /srv/vms",
                    "xfs_info /var/lib/libvirt/images",
                ][..],
            ),
            command,
            0..3,
        ),
        prop::collection::btree_map(
            select(&["/", "/var", "/srv/vms", "", "relative"][..]),
            space,
            0..4,
        ),
        kvm,
        if valid {
            Just(None).boxed()
        } else {
            prop::option::weighted(0.2, garbage()).boxed()
        },
    )
        .prop_map(|(meta, commands, space, kvm, unknown)| {
            let mut v = json!({"meta": meta, "commands": commands, "space": space, "kvm": kvm});
            if let Some(u) = unknown {
                // deny_unknown_fields: refused, never a panic.
                v[u] = json!(1);
            }
            serde_json::to_string_pretty(&v).unwrap()
        })
        .boxed()
}

/// A validate fixture case with its probe.json replaced.
fn check_probe_json(case: PathBuf, json: String) -> Result<(), TestCaseError> {
    let dir = scratch();
    copy_tree(&case, dir.path());
    std::fs::write(dir.path().join("probe.json"), &json).unwrap();
    if let Ok(p) = materialized(dir.path()) {
        run_all(&p)?;
    }
    Ok(())
}

/// Every host check, with a few option sets, and both report formats.
fn run_all(probe: &FixtureProbe) -> Result<(), TestCaseError> {
    let variants = [
        Options::default(),
        Options {
            nodes: options::parse_nodes("undercloud:1,controller:3,compute:2").unwrap(),
            allow_emulation: true,
            overcommit: true,
            nics: vec![
                "virtio".into(),
                "e1000".into(),
                "rtl8139".into(),
                "bogus".into(),
            ],
            ..Options::default()
        },
    ];
    for opts in &variants {
        let report = validate::run::run_host(opts, probe);
        let json = report.to_json();
        prop_assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());
        let _ = report.to_human(false);
        let _ = report.failed();
    }
    Ok(())
}

/// Files for a generated host, each possibly absent.
fn host_specs() -> Vec<(&'static str, Vec<String>)> {
    vec![
        ("/etc/os-release", host_files("etc/os-release")),
        ("/proc/cpuinfo", host_files("proc/cpuinfo")),
        ("/proc/meminfo", host_files("proc/meminfo")),
        ("/proc/mounts", host_files("proc/mounts")),
        ("/proc/net/tcp", host_files("proc/net/tcp")),
        ("/proc/net/tcp6", host_files("proc/net/tcp6")),
        (
            "/proc/sys/kernel/hostname",
            host_files("proc/sys/kernel/hostname"),
        ),
        (
            "/proc/sys/kernel/osrelease",
            host_files("proc/sys/kernel/osrelease"),
        ),
        ("/proc/1/comm", vec!["systemd\n".into(), "sshd\n".into()]),
        ("/etc/ssh/sshd_config", host_files("etc/ssh/sshd_config")),
        (
            "/etc/ssh/sshd_config.d/50-x.conf",
            vec!["Port 2222\n".into(), "port=22\n".into()],
        ),
        (
            "/etc/libvirt/qemu.conf",
            host_files("etc/libvirt/qemu.conf"),
        ),
        (
            "/etc/libvirt/storage/default.xml",
            host_files("etc/libvirt/storage/default.xml"),
        ),
        ("/etc/passwd", host_files("etc/passwd")),
        ("/etc/group", host_files("etc/group")),
        (
            "/sys/module/kvm_intel/parameters/nested",
            vec!["Y\n".into(), "1\n".into()],
        ),
        ("/sys/module/kvm_amd/parameters/nested", vec!["0\n".into()]),
        (
            "/sys/module/kvm/parameters/halt_poll_ns",
            vec!["200000\n".into()],
        ),
        ("/pkg/installed.txt", host_files("pkg/installed.txt")),
        ("/var/lib/dpkg/status", vec![String::new()]),
    ]
}

fn file_meta() -> BoxedStrategy<FileMeta> {
    (
        prop_oneof![Just(0u32), Just(36), Just(1000), any::<u32>()],
        prop_oneof![Just(0u32), Just(36), Just(1000), any::<u32>()],
        prop_oneof![
            Just(0o600u32),
            Just(0o660),
            Just(0o666),
            Just(0o777),
            any::<u32>()
        ],
        select(
            &[
                FileKind::File,
                FileKind::Dir,
                FileKind::Char,
                FileKind::Other,
            ][..],
        ),
    )
        .prop_map(|(uid, gid, mode, kind)| FileMeta {
            uid,
            gid,
            mode,
            kind,
        })
        .boxed()
}

fn answers() -> BoxedStrategy<FixtureAnswers> {
    let meta_paths = &[
        "/dev/kvm",
        "/dev/vhost-net",
        "/dev/net/tun",
        "/root",
        "/root/.ssh",
        "/root/.ssh/authorized_keys",
        "/home/stack",
        "/home/stack/.ssh",
        "/home/stack/.ssh/authorized_keys",
    ][..];
    let xfs = fixture_files(&[
        "validate/xfs_info/xfsprogs6.1-ftype1.txt",
        "validate/xfs_info/xfsprogs6.1-v4-ftype0.txt",
    ]);
    let command =
        (any::<bool>(), input(xfs, MOUNT_WORDS, TEXT_MAX)).prop_map(|(success, stdout)| {
            CommandOutput {
                success,
                stdout,
                stderr: String::new(),
            }
        });
    let kvm = prop_oneof![
        garbage().prop_map(|error| KvmAnswer::OpenFailed { error }),
        (
            prop::option::of(prop_oneof![Just(12i32), any::<i32>()]),
            prop::option::of(garbage()),
        )
            .prop_map(|(api_version, create_vm_error)| KvmAnswer::Answered {
                api_version,
                create_vm_error
            }),
    ];
    let space =
        (any::<u64>(), any::<u64>()).prop_map(|(available, total)| Space { available, total });
    (
        prop::collection::btree_map(select(meta_paths), file_meta(), 0..10),
        prop::collection::btree_map(
            select(&["/", "/var", "/var/lib/libvirt/images", "/srv/vms"][..]),
            space,
            0..4,
        ),
        prop::collection::btree_map(
            select(
                &[
                    "xfs_info /",
                    "xfs_info /var",
                    "xfs_info /srv/vms",
                    "xfs_info /var/lib/libvirt/images",
                ][..],
            ),
            command,
            0..3,
        ),
        prop::option::of(kvm),
    )
        .prop_map(|(meta, space, commands, kvm)| FixtureAnswers {
            meta: meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            space: space.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            commands: commands
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            kvm,
            ..FixtureAnswers::default()
        })
        .boxed()
}

#[derive(Debug, Clone)]
struct GeneratedHost {
    files: Vec<HostFile>,
    answers: FixtureAnswers,
}

fn generated_host() -> BoxedStrategy<GeneratedHost> {
    let files: Vec<BoxedStrategy<HostFile>> = host_specs()
        .into_iter()
        .map(|(path, seeds)| {
            prop::option::weighted(0.85, file_bytes(seeds, HOST_WORDS))
                .prop_map(move |c| (path, c))
                .boxed()
        })
        .collect();
    (files, answers())
        .prop_map(|(files, answers)| GeneratedHost { files, answers })
        .boxed()
}

fn check_generated_host(h: GeneratedHost) -> Result<(), TestCaseError> {
    let dir = scratch();
    let root = HostRoot::at(dir.path());
    for (path, content) in &h.files {
        if let Some(c) = content {
            let p = root.path(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, c).unwrap();
        }
    }
    prop_assert!(!ssh::sshd_ports(&root).is_empty());
    let _ = ssh::listening_tcp_ports(&root);
    let probe = FixtureProbe::new(root, h.answers);
    run_all(&probe)
}

fn check_mutated_fixture(m: MutatedFixture) -> Result<(), TestCaseError> {
    let t = m.lay_down();
    // A mutated probe.json may not parse: that is an error, never a report.
    let Ok(probe) = materialized(t.path()) else {
        return Ok(());
    };
    run_all(&probe)
}

/// A copied fixture host given the owners and modes git cannot store (root), then loaded. An
/// error is the mutated input's (a probe.json that does not parse): the case is not a host.
/// Without root every case would be one, and the properties would hold of nothing: that
/// fails loudly instead.
fn materialized(dir: &Path) -> anyhow::Result<FixtureProbe> {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the fixture properties read materialized hosts (chown): run the tests as root, as \
         `cargo xtask test` does"
    );
    virthost_model::fixture::World::at(dir).give_owners_and_modes()?;
    Ok(FixtureProbe::load(dir)?)
}

#[test]
fn every_fixture_case_runs() {
    for c in cases() {
        let t = scratch();
        copy_tree(&c, t.path());
        let p = materialized(t.path()).unwrap_or_else(|e| panic!("{}: {e:#}", c.display()));
        let r = validate::run::run_host(&Options::default(), &p);
        assert!(!r.to_json().is_empty());
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn probe_json_never_panics(
        case in select(cases()),
        json in prop_oneof![
            input(probe_seeds(), PROBE_WORDS, XML_MAX),
            probe_json_structured(true),
            probe_json_structured(false),
        ],
    ) {
        bounded(move || check_probe_json(case, json))?;
    }

    #[test]
    fn host_checks_on_a_generated_host_never_panic(h in generated_host()) {
        bounded(move || check_generated_host(h))?;
    }

    #[test]
    fn host_checks_on_a_mutated_fixture_never_panic(
        m in mutated_fixture(virthost_testkit::fixtures::all(), HOST_WORDS)
    ) {
        bounded(move || check_mutated_fixture(m))?;
    }
}
