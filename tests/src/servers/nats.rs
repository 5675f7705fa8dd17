//! NATS from Debian's `nats-server`, with TLS required: its `INFO` goes
//! out in clear (`"tls_required":true`), then the client starts TLS.
//! The client is `clients::nats_tls`.

use super::Daemon;
use crate::topology::{TestCert, Topology, WorkDir, path_str};

pub const TLS_PORT: u16 = 4443;

pub struct Nats {
    _daemon: Daemon,
    _dir: WorkDir,
}

impl Nats {
    pub fn start(t: &Topology, cert: &TestCert) -> Self {
        let dir = WorkDir::new("nats");
        let port = TLS_PORT.to_string();
        let argv = [
            "nats-server",
            "-a",
            "0.0.0.0",
            "-p",
            &port,
            "--tls",
            "--tlscert",
            path_str(&cert.cert),
            "--tlskey",
            path_str(&cert.key),
        ];
        let daemon = Daemon::start(t, &argv, dir.join("nats.log"), &[TLS_PORT], libc::SIGTERM);
        Self {
            _daemon: daemon,
            _dir: dir,
        }
    }
}
