//! CPU facts from `/proc/cpuinfo`: threads, vendor, model, clock, and the hardware
//! virtualization extension (Intel VT-x `vmx`, AMD-V `svm`).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    Intel,
    Amd,
    Other,
}

/// The hardware virtualization extension a CPU offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VirtExtension {
    /// Intel VT-x (`vmx`): KVM module `kvm_intel`.
    Vmx,
    /// AMD-V (`svm`): KVM module `kvm_amd`.
    Svm,
}

impl VirtExtension {
    /// The vendor KVM module that carries the `nested` parameter.
    pub fn kvm_module(self) -> &'static str {
        match self {
            VirtExtension::Vmx => "kvm_intel",
            VirtExtension::Svm => "kvm_amd",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            VirtExtension::Vmx => "Intel VT-x (vmx)",
            VirtExtension::Svm => "AMD-V (svm)",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuInfo {
    /// Logical CPUs (`processor` entries).
    pub threads: usize,
    pub vendor: Vendor,
    pub model: String,
    /// Clock of the first CPU, when the kernel reports it.
    pub mhz: Option<f64>,
    pub virt: Option<VirtExtension>,
}

impl CpuInfo {
    /// Counts `processor` lines and takes the first of each other field. Not procfs's
    /// `CpuInfo`: it counts blank-line-separated blocks (an empty file is one CPU, and the
    /// fixtures' `processor : 0\nprocessor : 1\n` one CPU, not two) and cuts a value at a
    /// second `:`.
    pub fn parse(text: &str) -> CpuInfo {
        let mut threads = 0;
        let mut vendor = None;
        let mut model = None;
        let mut mhz = None;
        let mut flags: Option<Vec<&str>> = None;
        for line in text.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim(), v.trim());
            match k {
                "processor" => threads += 1,
                "vendor_id" if vendor.is_none() => vendor = Some(v),
                "model name" if model.is_none() => model = Some(v.to_string()),
                "cpu MHz" if mhz.is_none() => mhz = v.parse().ok(),
                "flags" if flags.is_none() => flags = Some(v.split_whitespace().collect()),
                _ => {}
            }
        }
        let flags = flags.unwrap_or_default();
        let virt = if flags.contains(&"vmx") {
            Some(VirtExtension::Vmx)
        } else if flags.contains(&"svm") {
            Some(VirtExtension::Svm)
        } else {
            None
        };
        CpuInfo {
            threads,
            vendor: match vendor {
                Some("GenuineIntel") => Vendor::Intel,
                Some("AuthenticAMD") => Vendor::Amd,
                _ => Vendor::Other,
            },
            model: model.unwrap_or_else(|| "unknown".into()),
            mhz,
            virt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_threads_vendor_and_extension() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\ncpu MHz\t\t: 2450.000\nflags\t\t: fpu sse2 svm npt\n\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu svm\n";
        let c = CpuInfo::parse(text);
        assert_eq!(c.threads, 2);
        assert_eq!(c.vendor, Vendor::Amd);
        assert_eq!(c.model, "AMD EPYC 7B13");
        assert_eq!(c.mhz, Some(2450.0));
        assert_eq!(c.virt, Some(VirtExtension::Svm));
        assert_eq!(c.virt.unwrap().kvm_module(), "kvm_amd");
    }

    #[test]
    fn no_extension_when_flags_lack_it() {
        let c = CpuInfo::parse(
            "processor : 0\nvendor_id : GenuineIntel\nflags : fpu sse2 hypervisor\n",
        );
        assert_eq!((c.vendor, c.virt, c.mhz), (Vendor::Intel, None, None));
        let c = CpuInfo::parse("processor : 0\nflags : vmx ept\n");
        assert_eq!(c.virt, Some(VirtExtension::Vmx));
    }
}
