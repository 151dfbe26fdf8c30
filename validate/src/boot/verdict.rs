//! What one boot proved, from what the wait saw: booted, or where it stopped and why the
//! wait ended. No text here: [`super::messages`] words it.

use nix::sys::signal::Signal;

use super::poll::Observed;
use super::stall;

/// Why the wait ended without a callback, in the order it is decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Ended {
    Interrupted,
    /// iPXE said it has nothing to boot (the wait stops 2 s later).
    GaveUp,
    Hung(stall::Stall),
    DomainStopped,
    /// The wait ran to `--boot-timeout`: the boot may only have been slow.
    Timeout,
}

/// How far the boot got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Stage {
    Interrupted(Signal),
    Hung,
    NoFirmwareOutput,
    NoIpxe,
    NoDhcp,
    NoScript,
    NoCallback,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Verdict {
    /// The callback came with the right token, from this MAC with this iPXE version (as
    /// the script sent them; empty when iPXE left them out).
    Booted {
        mac: String,
        version: String,
    },
    Failed {
        stage: Stage,
        ended: Ended,
    },
}

/// Judges `o`; `signal` is the SIGINT/SIGTERM that arrived, if any.
pub(super) fn judge(o: &Observed, signal: Option<Signal>) -> Verdict {
    if let Some((mac, version)) = &o.callback {
        return Verdict::Booted {
            mac: mac.clone(),
            version: version.clone(),
        };
    }
    let ended = if signal.is_some() {
        Ended::Interrupted
    } else if o.prog.gave_up.is_some() {
        Ended::GaveUp
    } else if let Some(h) = o.hung {
        Ended::Hung(h)
    } else if o.domain_alive == Some(false) {
        Ended::DomainStopped
    } else {
        Ended::Timeout
    };
    let stage = if let Some(sig) = signal {
        Stage::Interrupted(sig)
    } else if o.hung.is_some() {
        Stage::Hung
    } else if o.prog.firmware.is_none() {
        Stage::NoFirmwareOutput
    } else if o.prog.ipxe.is_none() {
        Stage::NoIpxe
    } else if o.timings.dhcp_s.is_none() {
        Stage::NoDhcp
    } else if o.timings.script_s.is_none() {
        Stage::NoScript
    } else {
        Stage::NoCallback
    };
    Verdict::Failed { stage, ended }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::{serial, Timings};
    use std::time::Instant;

    fn seen() -> Observed {
        Observed {
            prog: serial::Progress::default(),
            timings: Timings::default(),
            callback: None,
            bad_tokens: 0,
            text: String::new(),
            hung: None,
            domain_alive: Some(true),
            nic: None,
        }
    }

    #[test]
    fn the_first_stage_not_reached_is_what_failed() {
        let mut o = seen();
        let failed = |o: &Observed| match judge(o, None) {
            Verdict::Failed { stage, ended } => (stage, ended),
            v => panic!("{v:?}"),
        };
        assert_eq!(failed(&o), (Stage::NoFirmwareOutput, Ended::Timeout));
        o.prog.firmware = Some(Instant::now());
        assert_eq!(failed(&o).0, Stage::NoIpxe);
        o.prog.ipxe = Some(Instant::now());
        assert_eq!(failed(&o).0, Stage::NoDhcp);
        o.timings.dhcp_s = Some(1.0);
        assert_eq!(failed(&o).0, Stage::NoScript);
        o.timings.script_s = Some(1.0);
        assert_eq!(failed(&o).0, Stage::NoCallback);
        o.domain_alive = Some(false);
        assert_eq!(failed(&o), (Stage::NoCallback, Ended::DomainStopped));
        let h = stall::Stall {
            silent_s: 45.0,
            busy: 0.9,
        };
        o.hung = Some(h);
        assert_eq!(failed(&o), (Stage::Hung, Ended::Hung(h)));
        o.prog.gave_up = Some(Instant::now());
        assert_eq!(failed(&o), (Stage::Hung, Ended::GaveUp));
        assert_eq!(
            judge(&o, Some(Signal::SIGINT)),
            Verdict::Failed {
                stage: Stage::Interrupted(Signal::SIGINT),
                ended: Ended::Interrupted
            }
        );
        o.callback = Some(("m".into(), "v".into()));
        assert_eq!(
            judge(&o, Some(Signal::SIGINT)),
            Verdict::Booted {
                mac: "m".into(),
                version: "v".into()
            }
        );
    }
}
