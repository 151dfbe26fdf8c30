//! `validate`'s libvirt checks and iPXE boot proof against the real libvirtd that
//! `xtask/host/start-services.sh` starts (libvirtd in netns `virthost-test`). Run as root.
//! Without a reachable libvirtd these tests skip, unless `VIRTHOST_REQUIRE_REAL=1` (set by
//! `cargo xtask test`), where that is a failure.
//!
//! The boot proofs run one at a time (a lock): the host has two cores and TCG boots
//! compete for them, and each test then asserts that nothing it created is left.
//!
//! The `validate` binary itself (a whole run with the proof; SIGINT and SIGKILL during it)
//! is tested in `validate/tests/real_binary.rs` and `boot_signals.rs` (only there does cargo
//! build it for the tests).

use virthost_testkit::{left_by, real_libvirt};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use validate::boot::{self, Proof, Rom, PREFIX};
use validate::check::{CheckResult, Status};
use validate::checks::libvirt::{self, SYSTEM_URI};
use validate::connection::Libvirt;
use validate::options::Options;
use validate::options::{BootMode, DomainType};
use virt::connect::Connect;

static SERIAL: Mutex<()> = Mutex::new(());

/// A BIOS boot proof of these NIC models (the UEFI tests say `uefi_proof`).
fn proof(nics: &[&str]) -> Proof {
    let opts = Options {
        nics: nics.iter().map(|s| s.to_string()).collect(),
        boot_modes: vec![BootMode::Bios],
        ..Options::default()
    };
    Proof::from_options(&opts)
}

fn uefi_proof(nics: &[&str]) -> Proof {
    Proof {
        modes: vec![BootMode::Uefi],
        ..proof(nics)
    }
}

fn run_proof(p: &Proof) -> Vec<CheckResult> {
    let mut log = Vec::new();
    let results: Vec<CheckResult> = boot::prove(p, &mut |m| log.push(m.to_string()))
        .into_iter()
        .map(|b| b.result)
        .collect();
    eprintln!("progress: {log:#?}\nresults: {results:#?}");
    results
}

/// Nothing this process created (name `virthost-validate-<our pid>-...`) is left.
fn assert_nothing_left(conn: &Connect) {
    let left = left_by(conn, &format!("{PREFIX}{}-", std::process::id()));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn boot_proof_passes_for_virtio_and_e1000() {
    let Some(conn) = real_libvirt() else { return };
    let _l = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let boots = boot::prove(&proof(&["virtio", "e1000"]), &mut |_| {});
    eprintln!("{boots:#?}");
    assert_eq!(boots.len(), 2);
    for (b, nic) in boots.iter().zip(["virtio", "e1000"]) {
        let r = &b.result;
        assert_eq!(r.id, format!("boot.ipxe.{nic}"));
        assert_eq!(r.status, Status::Pass, "{r:?}");
        // The timings the report and the bench print, in the order a boot reaches them; the
        // longest console gap, the stall detection's input, is measured and in a healthy
        // boot stays below the silence that makes a domain hung.
        let t = &b.timings;
        let (Some(dhcp), Some(script), Some(callback), Some(quiet)) =
            (t.dhcp_s, t.script_s, t.callback_s, t.longest_quiet_s)
        else {
            panic!("missing timings: {t:?}");
        };
        assert!(0.0 < dhcp && dhcp <= script && script <= callback, "{t:?}");
        assert!(
            0.0 < quiet && quiet < boot::stall::SILENCE.as_secs_f64(),
            "{t:?}"
        );
        assert!(
            r.detail.contains("iPXE 1.") || r.detail.contains("iPXE 2"),
            "{r:?}"
        );
        assert!(r.detail.contains(&format!("NIC model {nic}")), "{r:?}");
        assert!(r.detail.contains("callback after"), "{r:?}");
    }
    assert_nothing_left(&conn);
}

/// UEFI: OVMF (install-deps.sh installs ovmf) starts each NIC's EFI iPXE ROM, which gets
/// DHCP and calls back; the detail names the firmware; the NVRAM file is gone afterwards.
#[test]
fn uefi_boot_proof_passes_for_virtio_and_e1000() {
    let Some(conn) = real_libvirt() else { return };
    let _l = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let boots = boot::prove(&uefi_proof(&["virtio", "e1000"]), &mut |_| {});
    eprintln!("{boots:#?}");
    assert_eq!(boots.len(), 2);
    for (b, nic) in boots.iter().zip(["virtio", "e1000"]) {
        let r = &b.result;
        assert_eq!(r.id, format!("boot.uefi.{nic}"));
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert!(r.detail.contains("UEFI (/usr/share/OVMF/"), "{r:?}");
        let t = &b.timings;
        let (Some(dhcp), Some(callback)) = (t.dhcp_s, t.callback_s) else {
            panic!("missing timings: {t:?}");
        };
        assert!(0.0 < dhcp && dhcp <= callback, "{t:?}");
    }
    assert_nothing_left(&conn);
}

/// Without UEFI firmware (QEMU's descriptors masked by empty files of the same name in
/// /etc/qemu/firmware, as the firmware spec allows), firmware.efi FAILs naming bootstrap,
/// and the UEFI proof FAILs before creating anything; the BIOS proof still runs.
#[test]
fn without_uefi_firmware_the_uefi_proof_fails_before_creating_anything() {
    let Some(conn) = real_libvirt() else { return };
    let _l = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let etc = std::path::Path::new("/etc/qemu/firmware");
    std::fs::create_dir_all(etc).unwrap();
    let masks: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/share/qemu/firmware")
        .unwrap()
        .flatten()
        .map(|e| etc.join(e.file_name()))
        .filter(|m| !m.exists())
        .collect();
    assert!(
        !masks.is_empty(),
        "no firmware descriptors to mask: is ovmf installed?"
    );
    for m in &masks {
        std::fs::write(m, "").unwrap();
    }
    let probe = validate::probe::SystemProbe::new(bootstrap::hostroot::HostRoot::system());
    let host = validate::checks::Host::load(&probe);
    let checks = libvirt::run(&Options::default(), &host, &Libvirt::open(SYSTEM_URI));
    let mut p = uefi_proof(&["virtio"]);
    p.modes = vec![BootMode::Bios, BootMode::Uefi];
    let mut log = Vec::new();
    let boots = boot::prove(&p, &mut |m| log.push(m.to_string()));
    for m in &masks {
        let _ = std::fs::remove_file(m);
    }
    let efi = checks.iter().find(|c| c.id == "firmware.efi").unwrap();
    assert_eq!(efi.status, Status::Fail, "{efi:?}");
    assert!(
        efi.hint.as_deref().unwrap().contains("installs ovmf"),
        "{efi:?}"
    );
    let ids: Vec<&str> = boots.iter().map(|b| b.result.id.as_str()).collect();
    assert_eq!(ids, ["boot.ipxe.virtio", "boot.uefi.virtio"]);
    assert_eq!(boots[0].result.status, Status::Pass, "{:?}", boots[0]);
    let u = &boots[1].result;
    assert_eq!(u.status, Status::Fail, "{u:?}");
    assert!(u.detail.contains("no UEFI test domain can start"), "{u:?}");
    assert!(u.hint.as_deref().unwrap().contains("firmware.efi"), "{u:?}");
    // Only the BIOS domain was ever booted.
    assert!(!log.iter().any(|l| l.contains("UEFI domain")), "{log:?}");
    assert_nothing_left(&conn);
}

#[test]
fn network_without_boot_file_fails_with_no_script_fetched() {
    let Some(conn) = real_libvirt() else { return };
    let _l = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut p = proof(&["virtio"]);
    p.offer_boot_file = false;
    p.timeout = Duration::from_secs(45);
    let r = &run_proof(&p)[0];
    assert_eq!(r.status, Status::Fail, "{r:?}");
    assert!(r.detail.starts_with("no script fetched"), "{r:?}");
    assert!(r.detail.contains("serial: "), "{r:?}");
    assert!(r.hint.as_deref().unwrap().contains("boot file"), "{r:?}");
    assert_nothing_left(&conn);
}

/// `--domain-type kvm`: boots a kvm domain where this daemon really can (a KVM host), and
/// where it cannot (these TCG machines) FAILs at once saying why, without falling back to a
/// qemu domain and without creating anything.
#[test]
fn domain_type_kvm_boots_kvm_or_fails_saying_why() {
    let Some(conn) = real_libvirt() else { return };
    let _l = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let types = libvirt::domain_types(&conn).unwrap();
    let p = Proof {
        domain_type: Some(DomainType::Kvm),
        ..proof(&["virtio"])
    };
    let mut log = Vec::new();
    let boots = boot::prove(&p, &mut |m| log.push(m.to_string()));
    eprintln!("progress: {log:#?}\nresults: {boots:#?}");
    let r = &boots[0].result;
    if types.kvm_offered && types.hw_virt {
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert!(r.detail.contains("booted a kvm domain"), "{r:?}");
    } else {
        assert_eq!(r.status, Status::Fail, "{r:?}");
        assert!(
            r.detail.starts_with("--domain-type kvm: libvirt offers "),
            "{r:?}"
        );
        assert!(
            r.hint
                .as_deref()
                .unwrap()
                .contains("leave out --domain-type kvm"),
            "{r:?}"
        );
        assert!(
            !log.iter().any(|m| m.contains("booting a")),
            "no domain may be booted instead: {log:?}"
        );
    }
    assert_nothing_left(&conn);
}

/// `--boot-timeout` reaches the proof, and a boot that outlasts it says which option to raise.
#[test]
fn a_boot_longer_than_boot_timeout_fails_naming_the_option() {
    let Some(conn) = real_libvirt() else { return };
    let _l = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let opts = Options {
        boot_timeout: Duration::from_secs(1),
        ..Options::default()
    };
    let r = &run_proof(&Proof::from_options(&opts))[0];
    assert_eq!(r.status, Status::Fail, "{r:?}");
    assert!(
        r.detail
            .contains("no callback within the 1 s --boot-timeout"),
        "{r:?}"
    );
    assert!(
        r.hint.as_deref().unwrap().contains("raise --boot-timeout"),
        "{r:?}"
    );
    assert_nothing_left(&conn);
}

#[test]
fn missing_rom_fails_with_rom_hint() {
    let Some(conn) = real_libvirt() else { return };
    let _l = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut p = proof(&["e1000"]);
    p.rom = Rom::File(PathBuf::from("/nonexistent/virthost-test/efi-e1000.rom"));
    let r = &run_proof(&p)[0];
    assert_eq!(r.status, Status::Fail, "{r:?}");
    assert_eq!(r.id, "boot.ipxe.e1000");
    assert!(r.detail.contains("romfile"), "{r:?}");
    let hint = r.hint.as_deref().unwrap();
    assert!(
        hint.contains("iPXE option ROM") && hint.contains("ipxe-qemu"),
        "{r:?}"
    );
    assert_nothing_left(&conn);
}

#[test]
fn nic_without_option_rom_fails_saying_ipxe_never_started() {
    let Some(conn) = real_libvirt() else { return };
    let _l = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut p = proof(&["virtio"]);
    p.rom = Rom::Disabled;
    p.timeout = Duration::from_secs(30);
    let r = &run_proof(&p)[0];
    assert_eq!(r.status, Status::Fail, "{r:?}");
    assert!(r.detail.starts_with("iPXE never started"), "{r:?}");
    assert!(
        r.detail.contains("SeaBIOS"),
        "the console tail is shown: {r:?}"
    );
    assert!(
        r.hint.as_deref().unwrap().contains("iPXE option ROM"),
        "{r:?}"
    );
    assert_nothing_left(&conn);
}

/// A 512-byte PCI option ROM for a virtio-net NIC (1af4:1000) whose init spins forever with
/// interrupts off, after SeaBIOS printed its banner: a domain that hangs the way the nested
/// domains in the e2e VM did (silent console, vCPU busy).
fn spinning_option_rom() -> Vec<u8> {
    let mut rom = vec![0u8; 512];
    rom[0] = 0x55;
    rom[1] = 0xAA;
    rom[2] = 1; // size in 512-byte blocks
    rom[3] = 0xEB; // init entry: jmp short to 0x40
    rom[4] = 0x40 - 5;
    rom[0x18] = 0x20; // offset of the PCI data structure
    let pcir: [u8; 24] = [
        b'P', b'C', b'I', b'R', 0xF4, 0x1A, 0x00, 0x10, // vendor 1af4, device 1000
        0, 0, 24, 0, 0, // VPD, length 24, revision 0
        0x00, 0x00, 0x02, // class code: Ethernet controller
        1, 0, 0, 0,    // image length (blocks), code revision
        0,    // code type: x86
        0x80, // last image
        0, 0,
    ];
    rom[0x20..0x38].copy_from_slice(&pcir);
    // cli; jmp $
    rom[0x40..0x43].copy_from_slice(&[0xFA, 0xEB, 0xFE]);
    let sum = rom.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    rom[511] = 0u8.wrapping_sub(sum);
    rom
}

#[test]
fn a_domain_that_spins_silently_is_reported_hung_before_the_timeout() {
    let Some(conn) = real_libvirt() else { return };
    let _l = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let rom = dir.path().join("spin-virtio.rom");
    std::fs::write(&rom, spinning_option_rom()).unwrap();
    // QEMU runs as libvirt-qemu: the ROM and its directory must be readable to it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&rom, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut p = proof(&["virtio"]);
    p.rom = Rom::File(rom);
    // Longer than the silence of either domain type (15 s kvm, 45 s qemu), by far.
    p.timeout = Duration::from_secs(120);
    let started = std::time::Instant::now();
    let r = &run_proof(&p)[0];
    let took = started.elapsed();
    assert_eq!(r.status, Status::Fail, "{r:?}");
    assert!(r.detail.starts_with("the test domain hung"), "{r:?}");
    assert!(r.detail.contains("no console output for"), "{r:?}");
    assert!(
        r.detail.contains("SeaBIOS"),
        "the console tail is shown: {r:?}"
    );
    assert!(
        r.hint.as_deref().unwrap().contains("not a network problem"),
        "{r:?}"
    );
    // It stops once the stall is clear instead of waiting for the timeout.
    assert!(took < p.timeout, "took {took:?}: {r:?}");
    assert_nothing_left(&conn);
}

#[test]
fn leftovers_of_a_killed_run_are_swept() {
    let Some(conn) = real_libvirt() else { return };
    let _l = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // A pid that cannot exist (above pid_max): its owner is gone, as after a SIGKILL.
    let name = format!("{PREFIX}999999999-dead");
    let xml = format!("<network><name>{name}</name><bridge stp='off'/></network>");
    let net = conn
        .create_network_xml(&xml)
        .expect("create a stale network");
    let stale_file = std::env::temp_dir().join(format!("{name}-virtio.serial"));
    std::fs::write(&stale_file, "stale").unwrap();
    // A UEFI test domain's variable store, as libvirt names it.
    std::fs::create_dir_all(boot::NVRAM_DIR).unwrap();
    let stale_nvram =
        std::path::Path::new(boot::NVRAM_DIR).join(format!("{name}-uefi-virtio_VARS.fd"));
    std::fs::write(&stale_nvram, "stale").unwrap();
    // A UEFI lane's TFTP root (`<network>.tftp`, holding snponly.efi).
    let stale_tftp = std::path::Path::new(boot::DNSMASQ_DIR).join(format!("{name}-uefi-0.tftp"));
    std::fs::create_dir_all(&stale_tftp).unwrap();
    std::fs::write(stale_tftp.join("snponly.efi"), "stale").unwrap();
    // Something of a live run (ours) must survive the sweep.
    let live_file =
        std::env::temp_dir().join(format!("{PREFIX}{}-live.serial", std::process::id()));
    std::fs::write(&live_file, "live").unwrap();

    let removed = boot::sweep(&conn);
    let live_kept = live_file.exists();
    let _ = std::fs::remove_file(&live_file);
    assert!(removed >= 4, "removed {removed}");
    assert!(!stale_nvram.exists(), "stale NVRAM file kept");
    assert!(!stale_tftp.exists(), "stale TFTP root kept");
    assert!(
        conn.lookup_network_by_name(&name).is_err(),
        "stale network kept"
    );
    assert!(!stale_file.exists(), "stale serial file kept");
    assert!(live_kept, "a live run's file was swept");
    drop(net);
    assert_nothing_left(&conn);
}

#[test]
fn libvirt_checks_against_the_real_daemon() {
    let Some(conn) = real_libvirt() else { return };
    let probe = validate::probe::SystemProbe::new(bootstrap::hostroot::HostRoot::system());
    let host = validate::checks::Host::load(&probe);
    let results = libvirt::run(
        &Options {
            user: "root".parse().unwrap(),
            ..Options::default()
        },
        &host,
        &Libvirt::open(SYSTEM_URI),
    );
    eprintln!("{results:#?}");
    let get = |id: &str| {
        results
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no {id} in {results:?}"))
    };
    let c = get("libvirt.connect");
    assert_eq!(c.status, Status::Pass);
    assert!(
        c.detail.contains("libvirt ") && c.detail.contains("QEMU "),
        "{c:?}"
    );
    assert_ne!(get("libvirt.pool").status, Status::Fail);
    assert_ne!(get("libvirt.domain_type").status, Status::Fail);
    // install-deps.sh installs ovmf: UEFI for q35 and pc, and Debian's enrolled-keys variant.
    let efi = get("firmware.efi");
    assert_eq!(efi.status, Status::Pass, "{efi:?}");
    assert!(efi.detail.contains("/usr/share/OVMF/"), "{efi:?}");
    let sb = get("firmware.secure_boot");
    assert_eq!(sb.status, Status::Pass, "{sb:?}");
    assert!(sb.detail.contains("secure-enrolled.json"), "{sb:?}");
    assert_eq!(
        get("libvirt.polkit").status,
        Status::Pass,
        "root manages libvirt"
    );
    if let Some(dir) = libvirt::default_pool_path(&conn) {
        assert!(dir.is_absolute(), "{dir:?}");
    }
}

/// A throwaway system user, removed (with its polkit rule) on drop.
struct TempUser {
    name: String,
    rule: PathBuf,
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.rule);
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

#[test]
fn polkit_check_fails_without_the_rule_and_passes_with_it() {
    use bootstrap::desired::PolkitBackend;
    let Some(root_conn) = real_libvirt() else {
        return;
    };
    // Its power proofs define domains named after this process: the boot tests' check that
    // nothing of this process is left must not see them.
    let _l = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = format!("vhtest{}", std::process::id() % 100_000);
    let _ = Command::new("userdel")
        .arg(&name)
        .stderr(std::process::Stdio::null())
        .status();
    let st = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            &name,
        ])
        .status()
        .expect("useradd");
    assert!(st.success(), "useradd {name}");
    let user = TempUser {
        rule: PathBuf::from(format!(
            "/etc/polkit-1/rules.d/49-virthost-test-{name}.rules"
        )),
        name: name.clone(),
    };

    // No rule: libvirtd asks polkit, which has no agent to ask the user, and refuses. The
    // detail carries libvirt's own error; the hint is the polkit one alone (an
    // authentication failure says nothing about starting libvirtd).
    let r = libvirt::polkit_check(SYSTEM_URI, &name, Path::new("/"));
    eprintln!("without rule: {r:?}");
    assert_eq!(r.status, Status::Fail, "{r:?}");
    assert!(
        r.detail.starts_with(&format!("'{name}' (uid ")),
        "the detail names the user: {r:?}"
    );
    assert!(
        r.detail.contains(&format!("cannot manage {SYSTEM_URI}: ")),
        "{r:?}"
    );
    assert!(
        r.detail.contains(
            "authentication unavailable: no polkit agent available to authenticate action \
             'org.libvirt.unix.manage'"
        ),
        "libvirt's polkit error in the detail: {r:?}"
    );
    let hint = r.hint.as_deref().unwrap();
    assert!(
        hint.starts_with("polkit must grant org.libvirt.unix.manage to ")
            && hint.contains("/etc/polkit-1/rules.d/50-virthost-libvirt.rules")
            && hint.contains(&format!("`bootstrap --user {name}`")),
        "{r:?}"
    );
    assert!(
        !hint.contains("start libvirt") && !hint.contains("libvirtd -d"),
        "an authentication failure is not a daemon that is down: {r:?}"
    );
    // The power proof as that user FAILs the same way, in both modes, leaving nothing.
    let power_opts = Options {
        user: name.parse().unwrap(),
        ..Options::default()
    };
    let power_name = boot::new_run_name().unwrap();
    let p = validate::power::run(&power_opts, &root_conn, DomainType::Qemu, &power_name);
    assert_eq!(p.len(), 2, "{p:?}");
    for c in &p {
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.detail.contains("define: "), "{c:?}");
        assert!(
            c.hint.as_deref().unwrap().contains("libvirt.polkit"),
            "{c:?}"
        );
    }

    // The same user against a socket that does not exist: not an authentication failure,
    // so the hint starts with starting libvirt, then the polkit rule.
    let down = "qemu+unix:///system?socket=/nonexistent/virthost-test.sock";
    let r = libvirt::polkit_check(down, &name, Path::new("/"));
    eprintln!("daemon unreachable: {r:?}");
    assert_eq!(r.status, Status::Fail, "{r:?}");
    assert!(
        r.detail.contains("/nonexistent/virthost-test.sock")
            && !r.detail.contains("polkit")
            && !r.detail.contains("authentication"),
        "libvirt's socket error in the detail: {r:?}"
    );
    let hint = r.hint.as_deref().unwrap();
    assert!(
        hint.starts_with("start libvirt")
            && hint.contains("libvirtd -d")
            && hint.contains("/etc/polkit-1/rules.d/50-virthost-libvirt.rules"),
        "{r:?}"
    );

    std::fs::create_dir_all(user.rule.parent().unwrap()).unwrap();
    std::fs::write(
        &user.rule,
        PolkitBackend::Rules
            .content(&name.parse().unwrap())
            .unwrap(),
    )
    .unwrap();
    // polkitd reloads rules on an inotify event; give it a moment.
    let mut r = r;
    for _ in 0..50 {
        r = libvirt::polkit_check(SYSTEM_URI, &name, Path::new("/"));
        if r.status == Status::Pass {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("with rule: {r:?}");
    assert_eq!(r.status, Status::Pass, "{r:?}");
    // With the rule, as virtualbmc and sushy-tools drive a node: every step, both modes.
    let p = validate::power::run(&power_opts, &root_conn, DomainType::Qemu, &power_name);
    eprintln!("power: {p:#?}");
    for (c, id) in p.iter().zip(["power.bios", "power.uefi"]) {
        assert_eq!((c.id.as_str(), c.status), (id, Status::Pass), "{c:?}");
        for step in validate::power::STEPS {
            assert!(c.detail.contains(&format!("{step} ")), "{step}: {c:?}");
        }
        assert!(c.detail.contains(&format!("as '{name}'")), "{c:?}");
    }
    let conn = Connect::open(Some(SYSTEM_URI)).unwrap();
    let left = left_by(&conn, &power_name);
    assert!(left.is_empty(), "left behind: {left:?}");

    let r = libvirt::polkit_check(SYSTEM_URI, "virthost-no-such-user", Path::new("/"));
    assert_eq!(r.status, Status::Fail);
    assert!(r.detail.contains("does not exist"), "{r:?}");
    drop(user);
}

#[test]
fn unreachable_libvirt_fails_with_how_to_start_it() {
    let opts = Options {
        connect: "qemu+unix:///system?socket=/nonexistent/virthost-test.sock".into(),
        nics: vec!["virtio".into(), "e1000".into()],
        ..Options::default()
    };
    let probe = validate::probe::SystemProbe::new(bootstrap::hostroot::HostRoot::system());
    let host = validate::checks::Host::load(&probe);
    let results = libvirt::run(&opts, &host, &Libvirt::open(&opts.connect));
    let c = results.iter().find(|r| r.id == "libvirt.connect").unwrap();
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.hint.as_deref().unwrap().contains("libvirtd -d"), "{c:?}");
    let boot = boot::run(&opts, &mut |_| {});
    assert_eq!(
        boot.iter()
            .map(|r| (r.id.as_str(), r.status))
            .collect::<Vec<_>>(),
        [
            ("boot.ipxe.virtio", Status::Fail),
            ("boot.ipxe.e1000", Status::Fail),
            ("boot.uefi.virtio", Status::Fail),
            ("boot.uefi.e1000", Status::Fail)
        ]
    );
    let skipped = boot::run(
        &Options {
            skip_boot: true,
            ..opts
        },
        &mut |_| {},
    );
    assert!(skipped.is_empty());
}

/// QEMU's user (libvirt-qemu here) reaches images in a directory it may traverse, and not
/// in one under a 0700 parent: the FAIL names that parent and how to let it through. The
/// probe file is gone either way.
#[test]
fn qemu_reaches_images_only_where_it_may_traverse() {
    if virthost_testkit::root().is_none() {
        return;
    }
    let probe = validate::probe::SystemProbe::new(bootstrap::hostroot::HostRoot::system());
    let host = validate::checks::Host::load(&probe);
    let t = tempfile::Builder::new()
        .prefix("virthost-images-")
        .tempdir_in("/var/tmp")
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let open = t.path().join("open");
    let closed_parent = t.path().join("private");
    let closed = closed_parent.join("images");
    std::fs::create_dir_all(&open).unwrap();
    std::fs::create_dir_all(&closed).unwrap();
    std::fs::set_permissions(&closed_parent, std::fs::Permissions::from_mode(0o700)).unwrap();

    // A probe file of a killed run (a pid that cannot exist) is removed on the way.
    let stale = open.join(".virthost-validate-999999999-access");
    std::fs::write(&stale, "stale").unwrap();
    let ok = validate::checks::images::access(&host, &open);
    assert!(!stale.exists(), "stale probe file kept");
    assert_eq!(ok.status, Status::Pass, "{ok:?}");
    assert!(
        ok.detail.contains("reads and writes an image file"),
        "{ok:?}"
    );
    let bad = validate::checks::images::access(&host, &closed);
    assert_eq!(bad.status, Status::Fail, "{bad:?}");
    assert!(
        bad.detail
            .contains(&format!("may not traverse {}", closed_parent.display())),
        "{bad:?}"
    );
    assert!(bad
        .hint
        .as_deref()
        .unwrap()
        .contains(&format!("chmod o+x {}", closed_parent.display())));
    for d in [&open, &closed] {
        assert_eq!(
            std::fs::read_dir(d).unwrap().count(),
            0,
            "probe file left in {}",
            d.display()
        );
    }
}
