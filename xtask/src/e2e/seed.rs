//! The NoCloud seed (`cidata`) that lets e2e into a stock cloud image (`--image`).
//!
//! Stock cloud images (CentOS Stream, Rocky, Alma, RHEL, Ubuntu, Debian genericcloud) carry no
//! login key and no SSH host key: cloud-init gives them both at first boot from a datasource.
//! Each run writes its own seed: root's key (the run's throwaway key, also given to the image's
//! default user), the host name, and a per-run SSH host key that the run then pins in its own
//! known_hosts, so even a user-provided image is never trusted on first use.
//!
//! `user-data` and `meta-data` are YAML; they are written as JSON (JSON is YAML), so no key
//! text, comment or path can change what they mean. The ISO 9660 volume is labelled `cidata`,
//! which cloud-init's NoCloud datasource looks for (ds-identify finds it by that label).

use crate::cmd::CommandExt;
use anyhow::{Context, Result};
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest's host name, as the built image has it.
pub const HOSTNAME: &str = "virthost-e2e";

/// What goes into one run's seed.
pub struct Seed<'a> {
    /// The run's root public key file (`ssh-ed25519 AAAA... comment`).
    pub root_pub: &'a Path,
    /// The host key pair cloud-init installs: private key file and its `.pub`.
    pub host_key: &'a Path,
    /// A per-run instance id: cloud-init runs its first-boot modules again for a new id.
    pub instance_id: &'a str,
}

/// cloud-config: root may log in with the run's key only, the given host key replaces any the
/// image had, and no other host key type is generated.
pub fn user_data(root_pub: &str, host_private: &str, host_public: &str) -> String {
    let doc = json!({
        "hostname": HOSTNAME,
        "disable_root": false,
        "ssh_pwauth": false,
        "ssh_authorized_keys": [root_pub.trim()],
        "ssh_deletekeys": true,
        // Only the type the seed gives (cloud-init generates a listed type only when its key
        // is missing); its schema refuses an empty list (measured: cloud-init 25.1.4 on Debian
        // 13, "ssh_genkeytypes: [] is too short", status "degraded").
        "ssh_genkeytypes": ["ed25519"],
        "ssh_keys": {
            "ed25519_private": host_private,
            "ed25519_public": host_public.trim(),
        },
    });
    format!(
        "#cloud-config\n{}\n",
        serde_json::to_string_pretty(&doc).expect("json")
    )
}

pub fn meta_data(instance_id: &str) -> String {
    let doc = json!({ "instance-id": instance_id, "local-hostname": HOSTNAME });
    serde_json::to_string_pretty(&doc).expect("json") + "\n"
}

/// Writes `seed/user-data`, `seed/meta-data` and `seed.iso` (volume `cidata`) into `dir`;
/// returns the ISO's path.
pub fn write(dir: &Path, s: &Seed) -> Result<PathBuf> {
    let src = dir.join("seed");
    fs::create_dir_all(&src)?;
    let read = |p: &Path| fs::read_to_string(p).with_context(|| format!("{}", p.display()));
    let ud = user_data(
        &read(s.root_pub)?,
        &read(s.host_key)?,
        &read(&s.host_key.with_extension("pub"))?,
    );
    fs::write(src.join("user-data"), ud)?;
    fs::write(src.join("meta-data"), meta_data(s.instance_id))?;
    let iso = dir.join("seed.iso");
    Command::new("xorriso")
        .args(["-as", "genisoimage", "-quiet", "-volid", "cidata"])
        .args(["-joliet", "-rock", "-output"])
        .arg(&iso)
        .arg(src.join("user-data"))
        .arg(src.join("meta-data"))
        .run_output()
        .context("writing the NoCloud seed with xorriso")?;
    Ok(iso)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_is_cloud_config_whose_values_are_data() {
        // A comment that tries to end the string and add a key must stay inside the value.
        let hostile = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOv \"\n\"disable_root\": true, # x";
        let ud = user_data(
            hostile,
            "-----BEGIN-----\nabc\n-----END-----\n",
            "ssh-ed25519 AAA h",
        );
        let (head, body) = ud.split_once('\n').unwrap();
        assert_eq!(head, "#cloud-config");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["disable_root"], false);
        assert_eq!(v["ssh_authorized_keys"][0], hostile.trim());
        assert_eq!(
            v["ssh_keys"]["ed25519_private"],
            "-----BEGIN-----\nabc\n-----END-----\n"
        );
        assert_eq!(v["ssh_genkeytypes"], serde_json::json!(["ed25519"]));
        assert_eq!(v.as_object().unwrap().len(), 7);
    }

    #[test]
    fn meta_data_names_the_instance_and_host() {
        let v: serde_json::Value = serde_json::from_str(&meta_data("virthost-e2e-1")).unwrap();
        assert_eq!(v["instance-id"], "virthost-e2e-1");
        assert_eq!(v["local-hostname"], HOSTNAME);
    }

    #[test]
    fn the_iso_is_labelled_cidata_and_holds_both_files() {
        // The one gate: a skip, or a failure under VIRTHOST_REQUIRE_REAL=1.
        if virthost_testkit::tool("xorriso", "xorriso").is_none() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("k");
        crate::e2e::ssh::keygen(&k, "t").unwrap();
        let iso = write(
            dir.path(),
            &Seed {
                root_pub: &k.with_extension("pub"),
                host_key: &k,
                instance_id: "i-1",
            },
        )
        .unwrap();
        let bytes = fs::read(&iso).unwrap();
        // The primary volume descriptor at sector 16: type 1, "CD001", volume id at offset 40.
        let pvd = &bytes[16 * 2048..17 * 2048];
        assert_eq!(&pvd[1..6], b"CD001");
        let label = std::str::from_utf8(&pvd[40..72]).unwrap().trim_end();
        assert!(label.eq_ignore_ascii_case("cidata"), "{label:?}");
        let listing = Command::new("xorriso")
            .args(["-indev"])
            .arg(&iso)
            .args(["-ls", "/"])
            .run_output()
            .unwrap();
        let ls = String::from_utf8_lossy(&listing.stdout);
        assert!(ls.contains("user-data") && ls.contains("meta-data"), "{ls}");
    }
}
