//! The HTTP server the test domain's iPXE talks to: bound only to the bridge's gateway
//! address, inside the network namespace where libvirt creates the bridge (on a normal host
//! that is ours). It serves `/boot.ipxe`, a script that chains to `/booted?token=...`, and
//! reports every request.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A request the server answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `GET /boot.ipxe`.
    Script { at: Instant },
    /// `GET /booted?...`: the script ran.
    Callback {
        at: Instant,
        token_ok: bool,
        mac: String,
        version: String,
    },
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot start the HTTP thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the HTTP thread died")]
    ThreadDied,
    #[error("{}: {source}", .path.display())]
    Netns {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot enter libvirt's network namespace {}: {source}", .path.display())]
    Setns { path: PathBuf, source: nix::Error },
    /// `what`: the call that failed (`socket`, `SO_REUSEADDR`, `listen`, ...).
    #[error("{what}: {source}")]
    Socket {
        what: &'static str,
        source: nix::Error,
    },
    #[error("bind {addr}: {source}")]
    Bind { addr: Ipv4Addr, source: nix::Error },
}

pub struct Server {
    pub port: u16,
    events: Receiver<Event>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `addr:0` (with `IP_FREEBIND`: the bridge need not exist yet) in the network
    /// namespace `netns` (a `/proc/<pid>/ns/net` path; `None`: ours) and serves in a thread.
    pub fn start(
        addr: Ipv4Addr,
        netns: Option<PathBuf>,
        token: String,
    ) -> Result<Server, ServerError> {
        let (port_tx, port_rx) = channel();
        let (ev_tx, events) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("boot-http".into())
            .spawn(move || {
                let listener = match bind(addr, netns.as_ref()) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = port_tx.send(Err(e));
                        return;
                    }
                };
                let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
                let _ = port_tx.send(Ok(port));
                let script = format!(
                    "#!ipxe\nchain http://{addr}:{port}/booted?token={token}&mac=${{net0/mac}}&ver=${{version}}\n"
                );
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            if let Some(ev) = serve(s, &script, &token) {
                                let _ = ev_tx.send(ev);
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
            .map_err(ServerError::Thread)?;
        let port = port_rx.recv().map_err(|_| ServerError::ThreadDied)??;
        Ok(Server {
            port,
            events,
            stop,
            thread: Some(thread),
        })
    }

    /// Every event since the last call.
    pub fn drain(&self) -> Vec<Event> {
        self.events.try_iter().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bind(addr: Ipv4Addr, netns: Option<&PathBuf>) -> Result<TcpListener, ServerError> {
    use nix::sys::socket::{
        bind, getsockname, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag,
        SockType, SockaddrIn,
    };
    if let Some(ns) = netns {
        let f = std::fs::File::open(ns).map_err(|source| ServerError::Netns {
            path: ns.clone(),
            source,
        })?;
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(|source| {
            ServerError::Setns {
                path: ns.clone(),
                source,
            }
        })?;
    }
    let call = |what: &'static str| move |source| ServerError::Socket { what, source };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(call("socket"))?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(call("SO_REUSEADDR"))?;
    setsockopt(&fd, sockopt::IpFreebind, &true).map_err(call("IP_FREEBIND"))?;
    let o = addr.octets();
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(o[0], o[1], o[2], o[3], 0),
    )
    .map_err(|source| ServerError::Bind { addr, source })?;
    listen(&fd, Backlog::new(16).unwrap_or(Backlog::MAXCONN)).map_err(call("listen"))?;
    let _: SockaddrIn =
        getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd)).map_err(call("getsockname"))?;
    Ok(TcpListener::from(fd))
}

/// Answers one request; returns what it was.
fn serve(s: TcpStream, script: &str, token: &str) -> Option<Event> {
    let at = Instant::now();
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let mut reader = BufReader::new(&s);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    // Drain the headers.
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => break,
            Ok(_) if h.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let target = line.split_whitespace().nth(1).unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (event, body, status) = match path {
        "/boot.ipxe" => (Some(Event::Script { at }), script.to_string(), "200 OK"),
        "/booted" => {
            let param = |k: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                    .map(percent_decode)
                    .unwrap_or_default()
            };
            let token_ok = param("token") == token;
            (
                Some(Event::Callback {
                    at,
                    token_ok,
                    mac: param("mac"),
                    version: param("ver"),
                }),
                "#!ipxe\necho virthost validate: boot proven\n".to_string(),
                "200 OK",
            )
        }
        _ => (None, "not found\n".to_string(), "404 Not Found"),
    };
    let mut w = &s;
    let _ = write!(
        w,
        "HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    event
}

#[doc(hidden)]
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // Two hex digits: ASCII, so `s[i + 1..i + 3]` is on char boundaries (`%aé` is not).
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        // No `+` -> space: iPXE sends `${version}` (`1.0.0+git-...`) unencoded.
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn get(port: u16, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn percent_decode_keeps_what_is_no_escape() {
        // Found by validate/tests/parser_props.rs: `%aé` was sliced inside the `é`, a panic
        // that killed the server thread.
        assert_eq!(percent_decode("%aé"), "%aé");
        assert_eq!(percent_decode("%+1%-1"), "%+1%-1");
        assert_eq!(percent_decode("52%3A54%3a01"), "52:54:01");
    }

    #[test]
    fn serves_script_and_reports_callback() {
        let srv = Server::start(Ipv4Addr::LOCALHOST, None, "t0k".into()).unwrap();
        let script = get(srv.port, "/boot.ipxe");
        assert!(script.contains(&format!(
            "chain http://127.0.0.1:{}/booted?token=t0k&mac=${{net0/mac}}",
            srv.port
        )));
        get(
            srv.port,
            "/booted?token=t0k&mac=52%3A54%3A00%3A00%3A00%3A01&ver=1.0.0",
        );
        get(srv.port, "/booted?token=bad");
        assert!(get(srv.port, "/other").starts_with("HTTP/1.0 404"));
        std::thread::sleep(Duration::from_millis(50));
        let ev = srv.drain();
        assert_eq!(ev.len(), 3);
        assert!(matches!(ev[0], Event::Script { .. }));
        match &ev[1] {
            Event::Callback {
                token_ok,
                mac,
                version,
                ..
            } => {
                assert!(*token_ok);
                assert_eq!(mac, "52:54:00:00:00:01");
                assert_eq!(version, "1.0.0");
            }
            e => panic!("{e:?}"),
        }
        assert!(matches!(
            ev[2],
            Event::Callback {
                token_ok: false,
                ..
            }
        ));
    }
}
