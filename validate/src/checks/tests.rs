//! The os, cpu, capacity, packages, user and ssh checks on throwaway hosts (the kvm checks
//! test themselves in kvm.rs; whole fixture hosts are snapshotted in tests/fixtures.rs).

use super::*;
use crate::check::{CheckResult, Status};
use crate::options::{parse_nodes, Options};
use crate::probe::testing::TestHost;
use crate::probe::FileKind;

const DEBIAN: &str = "ID=debian\nVERSION_ID=12\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
const GIB_KB: u64 = 1 << 20;

fn get<'a>(r: &'a [CheckResult], id: &str) -> &'a CheckResult {
    r.iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no {id} in {r:#?}"))
}

fn with_host<T>(t: &TestHost, f: impl FnOnce(&Host) -> T) -> T {
    let probe = t.probe();
    let host = Host::load(&probe);
    f(&host)
}

#[test]
fn os_support_levels() {
    let cases = [
        (
            "ID=rhel\nVERSION_ID=7.3\nPRETTY_NAME=RHEL",
            Status::Pass,
            "tested",
        ),
        (DEBIAN, Status::Pass, "expected to work"),
        (
            "ID=arch\nPRETTY_NAME=Arch",
            Status::Warn,
            "unknown to virthost",
        ),
    ];
    for (text, status, needle) in cases {
        let t = TestHost::new().file("/etc/os-release", text);
        let r = with_host(&t, os::run);
        assert_eq!(r[0].status, status, "{text}");
        assert!(r[0].detail.contains(needle), "{}", r[0].detail);
    }
    // Unknown OS with a dpkg database: best effort through apt.
    let t = TestHost::new()
        .file(
            "/etc/os-release",
            "ID=devuan\nVERSION_ID=5\nPRETTY_NAME=Devuan",
        )
        .file("/var/lib/dpkg/status", "");
    let r = with_host(&t, os::run);
    assert_eq!(r[0].status, Status::Warn);
    assert!(r[0].detail.contains("best effort"), "{}", r[0].detail);
}

#[test]
fn fewer_than_four_threads_warn() {
    let cpu = |n: usize| {
        (0..n)
            .map(|i| format!("processor : {i}\nmodel name : Test CPU\ncpu MHz : 3000.0\n"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (n, status) in [
        (2, Status::Warn),
        (3, Status::Warn),
        (4, Status::Pass),
        (0, Status::Fail),
    ] {
        let t = TestHost::new().file("/proc/cpuinfo", &cpu(n));
        let r = with_host(&t, cpu::run);
        assert_eq!(r[0].status, status, "{n} threads");
        if n > 0 {
            assert!(
                r[0].detail.contains("Test CPU @ 3.00 GHz"),
                "{}",
                r[0].detail
            );
        }
    }
}

fn capacity_host(mem_avail_gib: u64, free_gb: u64) -> TestHost {
    TestHost::new()
        .file("/etc/os-release", DEBIAN)
        .file(
            "/proc/cpuinfo",
            "processor : 0\nprocessor : 1\nprocessor : 2\nprocessor : 3\n",
        )
        .file(
            "/proc/meminfo",
            &format!(
                "MemTotal: {} kB\nMemFree: 1 kB\nMemAvailable: {} kB\n",
                64 * GIB_KB,
                mem_avail_gib * GIB_KB
            ),
        )
        .file("/proc/mounts", "/dev/vda / ext4 rw 0 0\n")
        .dir("/var/lib")
        .space("/", free_gb * 1_000_000_000, 1_000_000_000_000)
}

fn capacity(t: &TestHost, nodes: &str, overcommit: bool, pool: Option<&str>) -> Vec<CheckResult> {
    let opts = Options {
        nodes: if nodes.is_empty() {
            Vec::new()
        } else {
            parse_nodes(nodes).unwrap()
        },
        overcommit,
        ..Options::default()
    };
    with_host(t, |h| capacity::run(&opts, h, pool.map(String::from)))
}

#[test]
fn memory_band_and_overcommit() {
    // Default: the spec's minimum VM, 8 GiB.
    let cases = [
        (8, "", false, Status::Pass),
        (7, "", false, Status::Warn), // 8 <= 7 * 1.2
        (6, "", false, Status::Fail), // 8 > 6 * 1.2
        (6, "", true, Status::Warn),
        (40, "compute:4", false, Status::Pass), // 32 GiB
        (30, "compute:4", false, Status::Warn),
        (20, "compute:4", false, Status::Fail),
    ];
    for (avail, nodes, over, status) in cases {
        let r = capacity(&capacity_host(avail, 1000), nodes, over, None);
        let m = get(&r, "capacity.memory");
        assert_eq!(
            m.status, status,
            "{avail} GiB available, nodes '{nodes}', overcommit {over}"
        );
        assert!(m.detail.contains("page cache counts as free"));
    }
}

#[test]
fn disk_counts_every_disk_and_says_images_are_thin() {
    // 3 ceph nodes: 3 * (46 + 5 * 47) = 843 GB.
    let r = capacity(&capacity_host(64, 900), "ceph:3", false, None);
    let d = get(&r, "capacity.disk");
    assert_eq!(d.status, Status::Pass);
    assert!(
        d.detail.contains("843 GB") && d.detail.contains("thin-provisioned"),
        "{}",
        d.detail
    );
    // Images dir absent: its nearest existing parent is measured.
    assert!(
        d.detail
            .contains("free on /var/lib for /var/lib/libvirt/images"),
        "{}",
        d.detail
    );
    let r = capacity(&capacity_host(64, 800), "ceph:3", false, None);
    assert_eq!(get(&r, "capacity.disk").status, Status::Warn);
    let r = capacity(&capacity_host(64, 500), "ceph:3", false, None);
    assert_eq!(get(&r, "capacity.disk").status, Status::Fail);
    let r = capacity(&capacity_host(64, 500), "ceph:3", true, None);
    assert_eq!(get(&r, "capacity.disk").status, Status::Warn);
}

#[test]
fn disk_and_filesystem_follow_the_pool_path() {
    let t = capacity_host(64, 10)
        .file(
            "/proc/mounts",
            "/dev/vda / ext4 rw 0 0\n/dev/vdb /data xfs rw 0 0\n",
        )
        .dir("/data/pool")
        .space("/data", 5_000_000_000_000, 6_000_000_000_000)
        .command(
            "xfs_info /data",
            "naming   =version 2   bsize=4096   ascii-ci=0, ftype=1\n",
            true,
        );
    let r = capacity(&t, "", false, Some("/data/pool"));
    assert_eq!(get(&r, "capacity.disk").status, Status::Pass);
    assert!(get(&r, "capacity.disk")
        .detail
        .contains("the default pool's path /data/pool"));
    let f = get(&r, "capacity.filesystem");
    assert_eq!(f.status, Status::Pass);
    assert!(f.detail.contains("xfs with ftype=1"));
    // xfs_info missing: WARN, not a guess.
    let t = capacity_host(64, 10)
        .file("/proc/mounts", "/dev/vdb / xfs rw 0 0\n")
        .dir("/var/lib/libvirt/images");
    let r = capacity(&t, "", false, None);
    let f = get(&r, "capacity.filesystem");
    assert_eq!(f.status, Status::Warn);
    // The shared command error says which command and why.
    assert!(
        f.detail.contains("cannot run `xfs_info /`") && f.detail.contains("not captured"),
        "{}",
        f.detail
    );
    // xfs_info that fails: its command line and exit status.
    let t = capacity_host(64, 10)
        .file("/proc/mounts", "/dev/vdb / xfs rw 0 0\n")
        .dir("/var/lib/libvirt/images")
        .command("xfs_info /", "", false);
    let r = capacity(&t, "", false, None);
    let f = get(&r, "capacity.filesystem");
    assert!(
        f.detail.contains("`xfs_info /` failed (exit status: 1)"),
        "{}",
        f.detail
    );
}

#[test]
fn a_plan_too_big_for_u64_fails_instead_of_wrapping() {
    use crate::options::{NodeGroup, NodeSize};
    // Built by hand, past what --nodes accepts: 2^34 + 1 GiB once wrapped to a 1 GiB need
    // (and panicked in debug builds); disks likewise.
    let huge = NodeGroup {
        name: "edge".into(),
        count: u32::MAX,
        size: NodeSize {
            extra_disks_gb: vec![u64::MAX, 1],
            ..NodeSize::new(u32::MAX, (1 << 34) + 1, 1)
        },
    };
    let opts = Options {
        nodes: vec![huge.clone(), huge],
        ..Options::default()
    };
    let r = with_host(&capacity_host(64, 1000), |h| capacity::run(&opts, h, None));
    let m = get(&r, "capacity.memory");
    assert_eq!(m.status, Status::Fail);
    assert!(m.detail.contains("need more than 16 EiB"), "{}", m.detail);
    let d = get(&r, "capacity.disk");
    assert_eq!(d.status, Status::Fail);
    assert!(d.detail.contains("need more than 18 EB"), "{}", d.detail);
    assert_eq!(get(&r, "capacity.vcpus").status, Status::Warn);
    // With --overcommit still only a WARN, never a PASS.
    let opts = Options {
        overcommit: true,
        ..opts
    };
    let r = with_host(&capacity_host(64, 1000), |h| capacity::run(&opts, h, None));
    assert_eq!(get(&r, "capacity.memory").status, Status::Warn);
}

#[test]
fn vcpus_warn_when_one_vm_is_wider_than_the_host() {
    let r = capacity(&capacity_host(64, 1000), "undercloud:1", false, None);
    assert_eq!(get(&r, "capacity.vcpus").status, Status::Warn);
    let r = capacity(&capacity_host(64, 1000), "compute:3", false, None);
    let v = get(&r, "capacity.vcpus");
    assert_eq!(v.status, Status::Pass);
    assert!(v.detail.contains("overcommitted 3.0:1"), "{}", v.detail);
}

/// `dpkg-query -W -f='${Package}\t${Version}\t${db:Status-Abbrev}\n'` output, as
/// `virthost_model::pkg::FixturePackageDb` reads it from `/pkg/installed.txt`.
fn dpkg(pkgs: &[(&str, &str)]) -> String {
    let mut s: String = pkgs
        .iter()
        .map(|(n, v)| format!("{n}\t{v}\tii \n"))
        .collect();
    s.push_str("removed\t1.0\trc \n");
    s
}

#[test]
fn packages_on_apt_with_versions_build_date_and_roms() {
    let all = [
        ("libvirt-daemon-system", "9.0.0"),
        ("libvirt-clients", "9.0.0"),
        ("qemu-system-x86", "1:7.2"),
        ("qemu-utils", "1:7.2"),
        ("libguestfs-tools", "1:1.48"),
        ("libguestfs-xfs", "1:1.48"),
        ("virtinst", "1:4.1"),
        ("wget", "1.21"),
        ("ipxe-qemu", "1.0.0+git-20131111.c3d1e78-2ubuntu1"),
        ("dnsmasq-base", "2.90"),
        ("polkitd", "122-3"),
    ];
    let t = TestHost::new()
        .file("/etc/os-release", DEBIAN)
        .file("/pkg/installed.txt", &dpkg(&all[1..]))
        .file("/usr/share/qemu/pxe-virtio.rom", "");
    let opts = Options {
        nics: vec!["virtio".into(), "rtl8139".into()],
        ..Options::default()
    };
    let r = with_host(&t, |h| packages::run(&opts, h));
    let missing = get(&r, "package.libvirt-daemon-system");
    assert_eq!(missing.status, Status::Fail);
    assert!(missing
        .hint
        .as_ref()
        .unwrap()
        .contains("apt-get install libvirt-daemon-system"));
    assert_eq!(get(&r, "package.wget").detail, "wget 1.21");
    let b = get(&r, "ipxe.build");
    assert_eq!(b.status, Status::Fail);
    assert!(b.detail.contains("built 2013-11-11"), "{}", b.detail);
    assert_eq!(
        get(&r, "ipxe.rom.virtio").detail,
        "/usr/share/qemu/pxe-virtio.rom"
    );
    assert_eq!(get(&r, "ipxe.rom.rtl8139").status, Status::Fail);
    // A version without a date: WARN.
    let mut undated = all;
    undated[8] = ("ipxe-qemu", "1.0.0-1");
    let t = TestHost::new()
        .file("/etc/os-release", DEBIAN)
        .file("/pkg/installed.txt", &dpkg(&undated));
    let r = with_host(&t, |h| packages::run(&Options::default(), h));
    assert_eq!(get(&r, "ipxe.build").status, Status::Warn);
}

#[test]
fn packages_on_rpm_and_without_a_package_manager() {
    // rpm output with epochs, one package missing.
    let t = TestHost::new()
        .file("/etc/os-release", "ID=rhel\nVERSION_ID=9.4\n")
        .file(
            "/pkg/installed.txt",
            "libvirt\t(none):10.0.0-6.el9\nqemu-kvm\t17:8.2.0-11.el9\n",
        );
    let r = with_host(&t, |h| packages::run(&Options::default(), h));
    assert_eq!(get(&r, "package.libvirt").detail, "libvirt 10.0.0-6.el9");
    assert_eq!(
        get(&r, "package.qemu-kvm").detail,
        "qemu-kvm 17:8.2.0-11.el9"
    );
    let v = get(&r, "package.virt-install");
    assert_eq!(v.status, Status::Fail);
    assert!(v
        .hint
        .as_ref()
        .unwrap()
        .contains("dnf install virt-install"));
    // No OS and no package database: one FAIL, not a list of guesses.
    let t = TestHost::new().file("/etc/os-release", "ID=plan9\n");
    let r = with_host(&t, |h| packages::run(&Options::default(), h));
    assert_eq!(r.len(), 1);
    assert_eq!(get(&r, "package.query").status, Status::Fail);
}

fn users() -> TestHost {
    TestHost::new()
        .file("/etc/os-release", DEBIAN)
        .file(
            "/etc/passwd",
            "root:x:0:0::/root:/bin/bash\nstack:x:1000:1000::/home/stack:/bin/bash\nops:x:1001:1001::/home/ops:/usr/sbin/nologin\n",
        )
        .file("/etc/group", "root:x:0:\nstack:x:1000:\n")
        .meta("/home/stack", 1000, 1000, 0o700, FileKind::Dir)
        .meta("/home/ops", 1001, 1001, 0o700, FileKind::Dir)
}

#[test]
fn user_exists_with_home_and_shell() {
    let run_for = |t: &TestHost, name: &str| {
        let opts = Options {
            user: name.parse().unwrap(),
            ..Options::default()
        };
        with_host(t, |h| user::run(&opts, h)).remove(0)
    };
    assert_eq!(run_for(&users(), "stack").status, Status::Pass);
    let r = run_for(&users(), "nobody");
    assert!(r.status == Status::Fail && r.hint.unwrap().contains("bootstrap --user nobody"));
    assert!(run_for(&users(), "ops").detail.contains("no login shell"));
    let t = users().meta("/home/stack", 1000, 1000, 0o700, FileKind::File);
    assert!(run_for(&t, "stack")
        .detail
        .contains("exists and is not a directory"));
    // What bootstrap's user step wants, validate wants: the home owned by the user.
    let t = users().meta("/home/stack", 0, 0, 0o755, FileKind::Dir);
    let r = run_for(&t, "stack");
    assert_eq!(r.status, Status::Fail);
    assert!(r.detail.contains("owned by 0:0, not by stack"), "{r:?}");
    assert!(
        r.hint
            .unwrap()
            .starts_with("run bootstrap (its `user` step: chown /home/stack"),
        "{:?}",
        run_for(&t, "stack")
    );
}

fn key(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../fixtures/validate/keys/{name}.pub"))
}

#[test]
fn ssh_keys_and_modes() {
    let infrared = std::fs::read_to_string(key("infrared")).unwrap();
    let t = users()
        .file("/proc/77/comm", "sshd\n")
        .file("/proc/1/comm", "init\n")
        .file(
            "/root/.ssh/authorized_keys",
            &format!("# keys\nno-pty {infrared}"),
        )
        .meta("/root/.ssh", 0, 0, 0o700, FileKind::Dir)
        .meta("/root/.ssh/authorized_keys", 0, 0, 0o600, FileKind::File)
        .file("/home/stack/.ssh/authorized_keys", &infrared)
        .meta("/home/stack/.ssh", 1000, 1000, 0o750, FileKind::Dir)
        .meta(
            "/home/stack/.ssh/authorized_keys",
            0,
            1000,
            0o620,
            FileKind::File,
        );
    let opts = Options {
        root_keys: vec![key("infrared")],
        stack_keys: vec![key("undercloud"), key("infrared")],
        ..Options::default()
    };
    let r = with_host(&t, |h| ssh::run(&opts, h));
    assert_eq!(get(&r, "ssh.sshd").detail, "sshd running (pid 77)");
    assert_eq!(get(&r, "ssh.keys.root").status, Status::Pass);
    assert_eq!(get(&r, "ssh.perms.root").status, Status::Pass);
    let k = get(&r, "ssh.keys.stack");
    assert_eq!(k.status, Status::Fail);
    assert!(
        k.detail.contains("lacks 1 of 2") && k.detail.contains("undercloud@fixture"),
        "{}",
        k.detail
    );
    let p = get(&r, "ssh.perms.stack");
    assert_eq!(p.status, Status::Fail);
    // A 0750 ~/.ssh is fine for StrictModes; the group-writable authorized_keys is not.
    assert_eq!(
        p.detail,
        "/home/stack/.ssh/authorized_keys root:stack 0620 is group- or world-writable",
    );
    // No keys asked for, no ~/.ssh: nothing to check but the modes, which are fine.
    let r = with_host(&users(), |h| ssh::run(&Options::default(), h));
    assert_eq!(get(&r, "ssh.sshd").status, Status::Fail);
    assert!(r.iter().all(|c| !c.id.starts_with("ssh.keys")));
    assert_eq!(get(&r, "ssh.perms.stack").status, Status::Pass);
    // Keys for a user that does not exist.
    let opts = Options {
        user: "ghost".parse().unwrap(),
        stack_keys: vec![key("undercloud")],
        ..Options::default()
    };
    let r = with_host(&users(), |h| ssh::run(&opts, h));
    assert!(get(&r, "ssh.keys.ghost").detail.contains("no user ghost"));
}

/// `/proc/net/tcp` as this kernel writes it (captured here, padded lines included): a
/// loopback listener, one on all addresses, and an established connection.
const PROC_NET_TCP_HEAD: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     \n   0: 0100007F:A501 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 726894 1 00000000308696cb 100 0 0 10 0                    \n   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1525 1 0000000058883b05 100 0 0 10 0                      \n";
/// A LISTEN socket on 0.0.0.0:22 (0x0016).
const TCP_LISTEN_22: &str = "   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 18422 1 0000000094a5c2d7 100 0 0 10 0                     \n";
/// An established connection whose local port is 22: a client of a running sshd, not a
/// listener.
const TCP_ESTABLISHED_22: &str = "   3: 0F02000A:0016 0202000A:D2B4 01 00000000:00000000 02:0009C2CF 00000000     0        0 1018286 2 000000007c1e753b 20 4 30 18 -1                  \n";
const PROC_NET_TCP6_HEAD: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
/// A LISTEN socket on [::]:2222 (0x08AE).
const TCP6_LISTEN_2222: &str = "   0: 00000000000000000000000000000000:08AE 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1046914 1 00000000a426bde1 100 0 0 10 0\n";

fn sshd_check(t: &TestHost) -> CheckResult {
    let r = with_host(t, |h| ssh::run(&Options::default(), h));
    get(&r, "ssh.sshd").clone()
}

#[test]
fn sshd_socket_activated_passes_on_a_listening_port() {
    // Ubuntu >= 22.10: no sshd process until a client connects, systemd listens on 22.
    let t = users()
        .file("/proc/1/comm", "systemd\n")
        .file(
            "/proc/net/tcp",
            &format!("{PROC_NET_TCP_HEAD}{TCP_LISTEN_22}"),
        )
        .file("/proc/net/tcp6", PROC_NET_TCP6_HEAD);
    let c = sshd_check(&t);
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert_eq!(
        c.detail,
        "no sshd process, but port 22 listening (socket-activated?)"
    );
    // A process named sshd still wins, and says so.
    let c = sshd_check(&t.file("/proc/900/comm", "sshd\n"));
    assert_eq!(c.detail, "sshd running (pid 900)");
}

#[test]
fn sshd_fails_when_nothing_listens_on_its_port() {
    // Port 22 only in an established connection (state 01): not a listener.
    let t = users()
        .file(
            "/proc/net/tcp",
            &format!("{PROC_NET_TCP_HEAD}{TCP_ESTABLISHED_22}"),
        )
        .file("/proc/net/tcp6", PROC_NET_TCP6_HEAD);
    let c = sshd_check(&t);
    assert_eq!(c.status, Status::Fail);
    assert_eq!(c.detail, "no sshd process, and nothing listens on port 22");
    assert!(c.hint.unwrap().contains("ssh.socket"));
    // No /proc/net/tcp at all: FAIL, saying it could not look.
    let c = sshd_check(&users());
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.detail.contains("/proc/net/tcp is unreadable"),
        "{}",
        c.detail
    );
}

#[test]
fn sshd_port_comes_from_sshd_config_and_its_drop_ins() {
    let listening = |t: TestHost| {
        t.file(
            "/proc/net/tcp",
            &format!("{PROC_NET_TCP_HEAD}{TCP_LISTEN_22}"),
        )
        .file(
            "/proc/net/tcp6",
            &format!("{PROC_NET_TCP6_HEAD}{TCP6_LISTEN_2222}"),
        )
    };
    // Ubuntu's sshd_config: Include first, Port commented out; the drop-in moves it to 2222,
    // which listens on IPv6 only.
    let t = listening(users())
        .file(
            "/etc/ssh/sshd_config",
            "Include /etc/ssh/sshd_config.d/*.conf\n#Port 22\n",
        )
        .file("/etc/ssh/sshd_config.d/50-port.conf", "Port 2222\n")
        .file("/etc/ssh/sshd_config.d/README", "Port 4444\n");
    let c = sshd_check(&t);
    assert_eq!(
        c.detail,
        "no sshd process, but port 2222 listening (socket-activated?)"
    );
    // sshd on 2200 and 2201: something on 22 does not count.
    let t = listening(users()).file("/etc/ssh/sshd_config", "Port 2200\nport=2201\n");
    let c = sshd_check(&t);
    assert_eq!(c.status, Status::Fail);
    assert_eq!(
        c.detail,
        "no sshd process, and nothing listens on ports 2200, 2201"
    );
}

#[test]
fn sshd_config_ports_and_listening_sockets_parse() {
    let cases: &[(&str, &[u16])] = &[
        ("", &[]),
        ("#Port 22\n", &[]),
        ("Port 22\n", &[22]),
        ("  PORT\t2222 \n", &[2222]),
        ("Port=2022\nPort = 2023\n", &[2022, 2023]),
        ("Ports 1\nPortx 2\nPort notanumber\nPort 70000\n", &[]),
        ("Port 22\nMatch User stack\n  Port 2222\n", &[22]),
    ];
    for (text, want) in cases {
        assert_eq!(ssh::config_ports(text), *want, "{text:?}");
    }
    let tcp = format!("{PROC_NET_TCP_HEAD}{TCP_LISTEN_22}{TCP_ESTABLISHED_22}");
    assert_eq!(ssh::parse_listening(&tcp), vec![0xA501, 0x07E8, 22]);
    let tcp6 = format!("{PROC_NET_TCP6_HEAD}{TCP6_LISTEN_2222}");
    assert_eq!(ssh::parse_listening(&tcp6), vec![2222]);
    assert!(ssh::parse_listening("garbage\nmore garbage here 0A\n").is_empty());
}

const RHEL: &str = "ID=rhel\nVERSION_ID=7.4\nPRETTY_NAME=RHEL\n";

/// `ssh.perms.stack` on a host of release `os` whose home, `~/.ssh` and `authorized_keys`
/// have these (owner uid, group gid, mode); uid/gid 1000 is stack (and its private group),
/// 1001 ops, 0 root, gid 114 libvirt (stack and ops).
fn stack_perms(
    os: &str,
    home: (u32, u32, u32),
    dot_ssh: (u32, u32, u32),
    ak: (u32, u32, u32, FileKind),
) -> CheckResult {
    let t = TestHost::new()
        .file("/etc/os-release", os)
        .file(
            "/etc/passwd",
            "root:x:0:0::/root:/bin/bash\nstack:x:1000:1000::/home/stack:/bin/bash\nops:x:1001:1001::/home/ops:/bin/bash\n",
        )
        .file(
            "/etc/group",
            "root:x:0:\nlibvirt:x:114:stack,ops\nstack:x:1000:\nops:x:1001:\n",
        )
        .meta("/home/stack", home.0, home.1, home.2, FileKind::Dir)
        .meta("/home/stack/.ssh", dot_ssh.0, dot_ssh.1, dot_ssh.2, FileKind::Dir)
        .meta("/home/stack/.ssh/authorized_keys", ak.0, ak.1, ak.2, ak.3);
    let r = with_host(&t, |h| ssh::run(&Options::default(), h));
    get(&r, "ssh.perms.stack").clone()
}

#[test]
fn ssh_perms_follow_strict_modes() {
    use FileKind::{Dir, File};
    let ok_home = (1000, 1000, 0o755);
    let ok_ak = (1000, 1000, 0o600, File);
    let dot_ssh = |os: &str, d: (u32, u32, u32)| stack_perms(os, ok_home, d, ok_ak);
    // ~/.ssh (owner, group, mode): owned by the user or root, not group/world-writable.
    for (os, d, want) in [
        (RHEL, (1000, 1000, 0o700), Status::Pass),
        (RHEL, (1000, 1000, 0o750), Status::Pass),
        (RHEL, (1000, 1000, 0o755), Status::Pass),
        (RHEL, (0, 0, 0o755), Status::Pass),
        (RHEL, (1000, 1000, 0o775), Status::Fail),
        (RHEL, (1000, 1000, 0o777), Status::Fail),
        (RHEL, (1000, 1000, 0o720), Status::Fail),
        (RHEL, (1000, 1000, 0o702), Status::Fail),
        (RHEL, (1001, 1001, 0o700), Status::Fail),
        (DEBIAN, (1000, 1000, 0o700), Status::Pass),
        (DEBIAN, (1000, 1000, 0o755), Status::Pass),
        // Debian's sshd: group write where the group is the owner's alone.
        (DEBIAN, (1000, 1000, 0o775), Status::Pass),
        (DEBIAN, (1000, 114, 0o775), Status::Fail),
        (DEBIAN, (1000, 1001, 0o775), Status::Fail),
        (DEBIAN, (1000, 1000, 0o777), Status::Fail),
        (DEBIAN, (1001, 1001, 0o700), Status::Fail),
    ] {
        let c = dot_ssh(os, d);
        assert_eq!(
            c.status, want,
            "{os:?} ~/.ssh {}:{} {:04o}: {}",
            d.0, d.1, d.2, c.detail
        );
        assert_eq!(c.hint.is_none(), want == Status::Pass);
    }
    let c = dot_ssh(RHEL, (1000, 1000, 0o775));
    assert_eq!(
        c.detail,
        "/home/stack/.ssh stack:stack 0775 is group- or world-writable"
    );
    assert!(
        c.hint
            .as_ref()
            .unwrap()
            .contains("chmod go-w /home/stack /home/stack/.ssh"),
        "{:?}",
        c.hint
    );
    let c = dot_ssh(RHEL, (1001, 1001, 0o700));
    assert_eq!(
        c.detail,
        "/home/stack/.ssh ops:ops 0700 is owned by neither stack nor root"
    );
    // authorized_keys: the same rule, and a regular file.
    for (os, ak, want) in [
        (RHEL, (1000, 1000, 0o600, File), Status::Pass),
        (RHEL, (1000, 1000, 0o644, File), Status::Pass),
        (RHEL, (0, 0, 0o644, File), Status::Pass),
        (RHEL, (1000, 1000, 0o664, File), Status::Fail),
        (RHEL, (1000, 1000, 0o606, File), Status::Fail),
        (RHEL, (1001, 1001, 0o600, File), Status::Fail),
        (RHEL, (1000, 1000, 0o700, Dir), Status::Fail),
        (DEBIAN, (1000, 1000, 0o664, File), Status::Pass),
        (DEBIAN, (1000, 114, 0o664, File), Status::Fail),
        // root-owned, group stack: the group is not the owner's alone.
        (DEBIAN, (0, 1000, 0o664, File), Status::Fail),
    ] {
        let c = stack_perms(os, ok_home, (1000, 1000, 0o700), ak);
        assert_eq!(
            c.status, want,
            "{os:?} authorized_keys {}:{} {:04o}: {}",
            ak.0, ak.1, ak.2, c.detail
        );
    }
    let c = stack_perms(RHEL, ok_home, (1000, 1000, 0o700), (1000, 1000, 0o700, Dir));
    assert!(c.detail.contains("is not a regular file"), "{}", c.detail);
    // The home directory: the same rule again.
    for (os, home, want) in [
        (RHEL, (1000, 1000, 0o700), Status::Pass),
        (RHEL, (1000, 1000, 0o755), Status::Pass),
        (RHEL, (0, 0, 0o755), Status::Pass),
        (RHEL, (1000, 1000, 0o775), Status::Fail),
        (RHEL, (1001, 1001, 0o755), Status::Fail),
        (DEBIAN, (1000, 1000, 0o775), Status::Pass),
        (DEBIAN, (1000, 114, 0o775), Status::Fail),
    ] {
        let c = stack_perms(os, home, (1000, 1000, 0o700), ok_ak);
        assert_eq!(
            c.status, want,
            "{os:?} home {}:{} {:04o}: {}",
            home.0, home.1, home.2, c.detail
        );
    }
}
