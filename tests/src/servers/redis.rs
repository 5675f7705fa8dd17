//! Redis from Debian's `redis-server`: a plain port and a `tls-port`, no
//! persistence, and an ACL user for the AUTH case.

use super::Daemon;
use crate::topology::{TestCert, Topology, WorkDir, path_str};

pub const PORT: u16 = 6379;
pub const TLS_PORT: u16 = 6380;
/// `redis-cli --user USER --pass PASSWORD` sends `AUTH USER PASSWORD`.
pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret";

pub struct Redis {
    _daemon: Daemon,
    _dir: WorkDir,
}

impl Redis {
    pub fn start(t: &Topology, cert: &TestCert) -> Self {
        let dir = WorkDir::new("redis");
        let (port, tls_port) = (PORT.to_string(), TLS_PORT.to_string());
        let password = format!(">{PASSWORD}");
        let argv = [
            "redis-server",
            "--port",
            &port,
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            path_str(&cert.cert),
            "--tls-key-file",
            path_str(&cert.key),
            "--tls-auth-clients",
            "no",
            "--bind",
            "* -::*",
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            path_str(&dir.path),
            "--user",
            USER,
            "on",
            &password,
            "~*",
            "+@all",
        ];
        let daemon = Daemon::start(
            t,
            &argv,
            dir.join("redis.log"),
            &[PORT, TLS_PORT],
            libc::SIGTERM,
        );
        Self {
            _daemon: daemon,
            _dir: dir,
        }
    }
}
