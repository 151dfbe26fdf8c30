//! The iPXE ROM package's build date, read from its version string.
//!
//! The spec wants `ipxe-roms-qemu` "of at least version 2016xxyy": the 2013 builds shipped
//! with RHEL 7.0-7.2 made PXE boots time out. Distributions encode the upstream git snapshot
//! date in the version: `20180825-3.git133f4c47.el8` (RHEL/Fedora),
//! `1.0.0+git-20190125.36a4c85-5.1` (Debian), `1.21.1+git-20220113.fbbdc3926-0ubuntu2`
//! (Ubuntu). Releases without a date in the version are mapped through the upstream
//! release table below.

use std::fmt;

use serde::Serialize;

/// A calendar date `YYYY-MM-DD`; ordering is chronological.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct BuildDate {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl BuildDate {
    pub const fn new(year: u16, month: u8, day: u8) -> Self {
        Self { year, month, day }
    }
}

impl fmt::Display for BuildDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Upstream iPXE releases that distributions package without a snapshot date.
const RELEASES: &[((u32, u32, u32), BuildDate)] = &[
    ((1, 20, 1), BuildDate::new(2020, 1, 2)),
    ((1, 21, 1), BuildDate::new(2020, 12, 31)),
];

/// The build date encoded in an iPXE ROM package version, if any.
pub fn build_date(version: &str) -> Option<BuildDate> {
    // Drop an epoch (`1:`).
    let v = version.split_once(':').map(|(_, r)| r).unwrap_or(version);
    if let Some(d) = first_date_run(v) {
        return Some(d);
    }
    // A plain upstream release (`1.21.1-2`): the release's date.
    let upstream = v.split(['-', '+', '~']).next().unwrap_or(v);
    let mut parts = upstream.split('.').map(|p| p.parse::<u32>().ok());
    let triple = (
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    );
    RELEASES
        .iter()
        .rev()
        .find(|(rel, _)| triple >= *rel)
        .map(|(_, d)| *d)
}

/// The first run of exactly eight digits that is a plausible `YYYYMMDD`.
fn first_date_run(v: &str) -> Option<BuildDate> {
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i - start == 8 {
                let s = &v[start..i];
                let year: u16 = s[0..4].parse().ok()?;
                let month: u8 = s[4..6].parse().ok()?;
                let day: u8 = s[6..8].parse().ok()?;
                if (1995..=2100).contains(&year)
                    && (1..=12).contains(&month)
                    && (1..=31).contains(&day)
                {
                    return Some(BuildDate::new(year, month, day));
                }
            }
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_build_date_of_every_known_version_scheme() {
        let cases = [
            (
                "20180825-3.git133f4c47.el8",
                Some(BuildDate::new(2018, 8, 25)),
            ),
            (
                "20170123-1.git4e85b27.el7_4.1",
                Some(BuildDate::new(2017, 1, 23)),
            ),
            (
                "20130517-8.gitc4bce43.el7",
                Some(BuildDate::new(2013, 5, 17)),
            ),
            (
                "20240119-1.gitde8a0821.fc40",
                Some(BuildDate::new(2024, 1, 19)),
            ),
            (
                "1.0.0+git-20190125.36a4c85-5.1",
                Some(BuildDate::new(2019, 1, 25)),
            ),
            (
                "1.0.0+git-20131111.c3d1e78-2ubuntu1",
                Some(BuildDate::new(2013, 11, 11)),
            ),
            (
                "1.21.1+git-20220113.fbbdc3926-0ubuntu2",
                Some(BuildDate::new(2022, 1, 13)),
            ),
            ("1:1.21.1-1", Some(BuildDate::new(2020, 12, 31))),
            ("1.20.1-1", Some(BuildDate::new(2020, 1, 2))),
            ("1.0.0-1", None),
            ("garbage", None),
            ("", None),
        ];
        for (v, want) in cases {
            assert_eq!(build_date(v), want, "{v}");
        }
    }

    #[test]
    fn dates_order_chronologically() {
        assert!(BuildDate::new(2013, 5, 17) < BuildDate::new(2016, 1, 1));
        assert!(BuildDate::new(2016, 1, 1) <= BuildDate::new(2016, 1, 1));
        assert_eq!(BuildDate::new(2016, 1, 1).to_string(), "2016-01-01");
    }
}
