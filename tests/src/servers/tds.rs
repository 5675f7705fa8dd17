//! A SQL Server stand-in: agent-common/tests/fixtures/tds_responder.py,
//! which answers the TDS PRELOGIN per MS-TDS and carries the TLS handshake
//! inside PRELOGIN packets (no SQL Server runs on Debian). The client is
//! the real FreeTDS `tsql`; the responder logs what it negotiated, so each
//! case can prove the exchange happened as intended.

use super::Daemon;
use crate::topology::{TestCert, Topology, WorkDir, path_str};
use std::path::Path;

/// Encryption available, not forced (MS-TDS: OFF -> login only, ON -> on,
/// NOT_SUP -> none).
pub const PORT: u16 = 1433;

pub struct Tds {
    daemon: Daemon,
    _dir: WorkDir,
}

impl Tds {
    pub fn start(t: &Topology, cert: &TestCert) -> Self {
        let dir = WorkDir::new("tds");
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../agent-common/tests/fixtures/tds_responder.py");
        let port = PORT.to_string();
        let argv = [
            "python3",
            path_str(&script),
            "--host",
            "0.0.0.0",
            "--port",
            &port,
            "--cert",
            path_str(&cert.cert),
            "--key",
            path_str(&cert.key),
            "--mode",
            "supports",
        ];
        let daemon = Daemon::start(t, &argv, dir.join("tds.log"), &[PORT], libc::SIGTERM);
        Self { daemon, _dir: dir }
    }

    /// What the responder logged: one line per connection.
    pub fn log_text(&self) -> String {
        self.daemon.log_text()
    }
}
