//! UEFI firmware for virtual bare metal (Ironic boots UEFI by default since Yoga; metal3 and
//! OpenShift's dev-scripts boot their nodes UEFI): libvirt must offer `efi` firmware
//! autoselection (`<os firmware='efi'>`) for the machine types deployment tools use, and a
//! Secure Boot firmware with enrolled keys should exist for nodes that boot with it.
//!
//! Ids: `firmware.efi` (FAIL when missing), `firmware.secure_boot` (WARN when missing).
//! libvirt finds firmware through QEMU's descriptors (`/usr/share/qemu/firmware/*.json`,
//! `/etc/qemu/firmware/`); bootstrap's `packages` step installs the package that ships them
//! (`virthost_model::desired::uefi_package`: `ovmf`, `edk2-ovmf`, `OVMF`).

use crate::connection::LibvirtError;
use virthost_model::desired::uefi_package;
use virthost_model::os::Family;

use crate::check::CheckResult;

/// The machine types whose UEFI support deployments need: q35 (UEFI's usual one, required for
/// Secure Boot) and pc (i440fx, what older tooling defines).
pub const MACHINES: &[&str] = &["q35", "pc"];

/// Where QEMU's firmware descriptors live (libvirt reads both; /etc overrides).
pub const DESCRIPTOR_DIRS: &[&str] = &["/usr/share/qemu/firmware", "/etc/qemu/firmware"];

/// A domain capabilities document that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomcapsError {
    #[error("domain capabilities: {0}")]
    Xml(#[from] roxmltree::Error),
    #[error("domain capabilities without <os>")]
    NoOs,
}

/// Whether a domain capabilities document offers `efi` firmware autoselection, and the
/// loader files it lists.
pub fn efi_offered(domcaps: &str) -> Result<(bool, Vec<String>), DomcapsError> {
    let doc = roxmltree::Document::parse(domcaps)?;
    let os = doc
        .root_element()
        .children()
        .find(|n| n.has_tag_name("os"))
        .ok_or(DomcapsError::NoOs)?;
    let efi = os
        .children()
        .filter(|n| n.has_tag_name("enum") && n.attribute("name") == Some("firmware"))
        .flat_map(|e| e.children().filter(|v| v.has_tag_name("value")))
        .any(|v| v.text() == Some("efi"));
    let loaders = os
        .children()
        .filter(|n| n.has_tag_name("loader"))
        .flat_map(|l| l.children().filter(|v| v.has_tag_name("value")))
        .filter_map(|v| v.text().map(String::from))
        .collect();
    Ok((efi, loaders))
}

/// The first descriptor (by file name, as QEMU orders them) of a UEFI firmware for x86_64
/// q35 with Secure Boot and enrolled keys; `descriptors` are (file name, JSON text).
pub fn enrolled_secure_boot(descriptors: &[(String, String)]) -> Option<String> {
    let mut sorted: Vec<&(String, String)> = descriptors.iter().collect();
    sorted.sort();
    sorted.into_iter().find_map(|(name, text)| {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let has = |key: &str, want: &str| {
            v[key]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(want)))
        };
        let q35 = v["targets"].as_array()?.iter().any(|t| {
            t["architecture"] == "x86_64"
                && t["machines"].as_array().is_some_and(|m| {
                    m.iter()
                        .any(|m| m.as_str().is_some_and(|m| m.contains("q35")))
                })
        });
        (has("interface-types", "uefi")
            && has("features", "secure-boot")
            && has("features", "enrolled-keys")
            && q35)
            .then(|| name.clone())
    })
}

/// `firmware.efi` from each machine type's domain capabilities (`None`: libvirt would not
/// describe that machine type).
pub fn efi_result(
    family: Option<Family>,
    per_machine: &[(&str, Option<Result<String, LibvirtError>>)],
) -> CheckResult {
    const ID: &str = "firmware.efi";
    let package = family
        .map(uefi_package)
        .unwrap_or("the OVMF (edk2) firmware package");
    let hint = format!(
        "run bootstrap (its `packages` step installs {package}, whose firmware descriptors in \
         /usr/share/qemu/firmware let libvirt select UEFI), then restart libvirtd if it still \
         lists none"
    );
    let mut missing = vec![];
    let mut loader = None;
    for (machine, caps) in per_machine {
        match caps {
            Some(Ok(xml)) => match efi_offered(xml) {
                Ok((true, loaders)) => {
                    loader = loader.or_else(|| loaders.into_iter().next());
                }
                Ok((false, _)) => missing.push(format!("{machine}: no efi firmware")),
                Err(e) => missing.push(format!("{machine}: {e}")),
            },
            Some(Err(e)) => missing.push(format!("{machine}: {e}")),
            None => missing.push(format!("{machine}: not described")),
        }
    }
    if missing.is_empty() {
        CheckResult::pass(
            ID,
            format!(
                "libvirt offers efi for {} (e.g. {})",
                MACHINES.join(" and "),
                loader
                    .as_deref()
                    .unwrap_or("a descriptor without a loader path")
            ),
        )
    } else {
        CheckResult::fail(
            ID,
            format!(
                "UEFI nodes cannot boot: libvirt offers no UEFI firmware ({})",
                missing.join("; ")
            ),
            hint,
        )
    }
    .by_step("packages")
}

/// `firmware.secure_boot` from the descriptors found.
pub fn secure_boot_result(family: Option<Family>, descriptors: &[(String, String)]) -> CheckResult {
    const ID: &str = "firmware.secure_boot";
    match enrolled_secure_boot(descriptors) {
        Some(name) => CheckResult::pass(
            ID,
            format!("Secure Boot firmware with enrolled keys for q35: {name}"),
        ),
        None => {
            CheckResult::warn(
                ID,
                format!(
                "no Secure Boot firmware with enrolled keys among {} descriptor(s): nodes that \
                 boot with Secure Boot on (Ironic's `secure_boot` capability) will not start",
                descriptors.len()
            ),
                format!(
                "install {} (it ships the *.secboot/*.ms variants and their descriptors) if your \
                 nodes boot with Secure Boot; UEFI without it is unaffected",
                family.map(uefi_package).unwrap_or("the OVMF (edk2) firmware package")
            ),
            )
        }
    }
    .by_step("packages")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/../fixtures/validate/libvirt-9.0/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn efi_from_captured_domain_capabilities() {
        let (efi, loaders) = efi_offered(&fixture("domcapabilities-qemu-q35-ovmf.xml")).unwrap();
        assert!(efi);
        assert_eq!(loaders[0], "/usr/share/OVMF/OVMF_CODE_4M.ms.fd");
        assert!(
            !efi_offered(&fixture("domcapabilities-qemu-q35-no-ovmf.xml"))
                .unwrap()
                .0
        );
        assert!(efi_offered("<domainCapabilities/>").is_err());
        assert!(efi_offered("not xml").is_err());
        let with = Some(Ok(fixture("domcapabilities-qemu-q35-ovmf.xml")));
        let pc = Some(Ok(fixture("domcapabilities-qemu-pc-ovmf.xml")));
        let r = efi_result(Some(Family::Apt), &[("q35", with.clone()), ("pc", pc)]);
        assert_eq!(r.status, crate::check::Status::Pass, "{r:?}");
        let without = Some(Ok(fixture("domcapabilities-qemu-q35-no-ovmf.xml")));
        let r = efi_result(Some(Family::Dnf), &[("q35", without), ("pc", None)]);
        assert_eq!(r.status, crate::check::Status::Fail);
        assert!(
            r.detail.contains("q35: no efi firmware; pc: not described"),
            "{r:?}"
        );
        assert!(r.hint.unwrap().contains("installs edk2-ovmf"));
        assert_eq!(r.bootstrap_step.as_deref(), Some("packages"));
    }

    #[test]
    fn secure_boot_needs_enrolled_keys_for_q35() {
        let enrolled = (
            "40-edk2-x86_64-secure-enrolled.json".to_string(),
            fixture("firmware-40-edk2-x86_64-secure-enrolled.json"),
        );
        let plain = (
            "60-edk2-x86_64.json".to_string(),
            fixture("firmware-60-edk2-x86_64.json"),
        );
        assert_eq!(
            enrolled_secure_boot(&[plain.clone(), enrolled.clone()]).as_deref(),
            Some("40-edk2-x86_64-secure-enrolled.json")
        );
        assert_eq!(enrolled_secure_boot(std::slice::from_ref(&plain)), None);
        assert_eq!(enrolled_secure_boot(&[("x.json".into(), "{".into())]), None);
        let r = secure_boot_result(Some(Family::Yum), &[plain]);
        assert_eq!(r.status, crate::check::Status::Warn);
        assert!(r.hint.unwrap().starts_with("install OVMF"));
    }
}
