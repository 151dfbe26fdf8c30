//! The one libvirt connection a validate run opens as its own user (root, normally) to
//! `--connect`. `run::run_system` opens it before the libvirt checks; `libvirt.connect`
//! reports that attempt, and the libvirt checks, the default pool's path, the boot proof
//! and the power proof's preparation and cleanup all use it. When it failed, each of them
//! reports the failure as it always did ([`ConnectError`]'s words).
//!
//! Connections that prove something of their own stay separate: the ones a forked child
//! opens after taking `--user`'s identity (`libvirt.polkit`, the power proof's steps, one
//! connection per step as virtualbmc opens one per IPMI command).
//!
//! Threads: `virt::connect::Connect` is `Send` and `Sync` (virt 0.5.0, `src/connect.rs`:
//! `unsafe impl Send/Sync for Connect`; libvirt's connection object takes its own lock, and
//! its remote driver lets several threads have calls outstanding on one socket), so the
//! boot proof's lanes share it by `clone()` (a reference count, not a new connection), as
//! they shared the boot proof's own connection before.
//!
//! Forks: the power proof forks its children while the process has one thread (strace: no
//! thread is started before them; opening this connection starts none), so the connection
//! is idle at the fork (no libvirt lock held). The child closes its copy of the socket
//! (`asuser::spawn_as`) before it becomes the user, opens its own and leaves with `_exit`.

use std::time::{Duration, Instant};

use virt::connect::Connect;

/// A failed [`Libvirt::open`]: the URI and libvirt's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot connect to {uri}: {message}")]
pub struct ConnectError {
    pub uri: String,
    pub message: String,
}

/// A call libvirt refused, as every report words it: libvirt's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LibvirtError(pub String);

impl From<virt::error::Error> for LibvirtError {
    fn from(e: virt::error::Error) -> Self {
        LibvirtError(e.message().to_string())
    }
}

/// The run's connection to libvirt, or why there is none.
pub struct Libvirt {
    uri: String,
    conn: Result<Connect, ConnectError>,
    took: Duration,
}

impl Libvirt {
    /// Connects to `uri` (once; libvirt's default error printer off).
    pub fn open(uri: &str) -> Libvirt {
        virt::error::clear_error_callback();
        let began = Instant::now();
        let conn = Connect::open(Some(uri)).map_err(|e| ConnectError {
            uri: uri.to_string(),
            message: e.message().to_string(),
        });
        Libvirt {
            uri: uri.to_string(),
            conn,
            took: began.elapsed(),
        }
    }

    /// The URI connected to (or tried).
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The connection, or why there is none.
    pub fn get(&self) -> Result<&Connect, &ConnectError> {
        self.conn.as_ref()
    }

    /// The connection, when there is one.
    pub fn conn(&self) -> Option<&Connect> {
        self.conn.as_ref().ok()
    }

    /// How long the attempt took.
    pub fn took(&self) -> Duration {
        self.took
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_connection_says_where_and_why() {
        let lv = Libvirt::open("qemu+unix:///system?socket=/nonexistent/virthost-unit.sock");
        let e = lv.get().unwrap_err();
        assert_eq!(
            e.uri,
            "qemu+unix:///system?socket=/nonexistent/virthost-unit.sock"
        );
        assert!(
            e.to_string().starts_with(
                "cannot connect to qemu+unix:///system?socket=/nonexistent/virthost-unit.sock: "
            ),
            "{e}"
        );
        assert!(lv.conn().is_none());
    }
}
