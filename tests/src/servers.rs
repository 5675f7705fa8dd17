//! Real servers for the end-to-end tests, each started in the server
//! namespace outside the cgroup, so the cgroup hook sees each flow once,
//! from the client's side.
//!
//! Here: the two servers the walking-skeleton tests and `cargo xtask demo`
//! share (openssl s_server and python's http.server) and `Daemon`, the
//! start-and-wait every server module below uses.

pub mod echo;
pub mod grpc;
pub mod mariadb;
pub mod nats;
pub mod nginx;
pub mod postgres;
pub mod prosody;
pub mod redis;
pub mod samba;
pub mod sshd;
pub mod tds;
pub mod tls;
pub mod zookeeper;

use crate::topology::{Proc, Side, TestCert, Topology, path_str};
use std::path::PathBuf;
use std::time::Duration;

/// A server on port 9100 that never accepts: the kernel completes
/// every handshake into its backlog, so connections stay open for as long
/// as the client lives (`python3 -c BACKLOG_SERVER`).
pub const BACKLOG_SERVER: &str = "import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 9100))
s.listen(1024)
time.sleep(600)";

pub const HTTPS_PORT: u16 = 8443;
pub const HTTP_PORT: u16 = 8080;

/// Both servers, listening; stopped (and the certificate removed) on drop.
pub struct HttpAndTls {
    _procs: Vec<Proc>,
    _cert: TestCert,
}

impl HttpAndTls {
    pub fn start(t: &Topology) -> Self {
        let cert = TestCert::new();
        let https = HTTPS_PORT.to_string();
        let http = HTTP_PORT.to_string();
        let tls = t.spawn(
            Side::Server,
            false,
            &[
                "openssl",
                "s_server",
                "-quiet",
                "-www",
                "-accept",
                &https,
                "-cert",
                path_str(&cert.cert),
                "-key",
                path_str(&cert.key),
            ],
        );
        let plain = t.spawn(
            Side::Server,
            false,
            &["python3", "-m", "http.server", &http, "--bind", "::"],
        );
        t.wait_listening(HTTPS_PORT);
        t.wait_listening(HTTP_PORT);
        Self {
            _procs: vec![tls, plain],
            _cert: cert,
        }
    }
}

/// A server process with its log, stopped with its own signal on drop.
pub struct Daemon {
    proc: Proc,
    log: PathBuf,
    stop_signal: i32,
}

impl Daemon {
    /// Starts `argv` in the server namespace and waits until it listens on
    /// every one of `ports`; panics with its log if it exits or does not
    /// listen within 30 s.
    pub fn start(
        t: &Topology,
        argv: &[&str],
        log: PathBuf,
        ports: &[u16],
        stop_signal: i32,
    ) -> Self {
        let proc = t.spawn_logged(Side::Server, argv, &log);
        let mut d = Self {
            proc,
            log,
            stop_signal,
        };
        let log = d.log.clone();
        for &port in ports {
            d.proc.wait_ready(
                &format!("listening on {port}"),
                Duration::from_secs(30),
                || t.listening(port),
                || std::fs::read_to_string(&log).unwrap_or_default(),
            );
        }
        d
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.proc.stop(self.stop_signal);
    }
}
