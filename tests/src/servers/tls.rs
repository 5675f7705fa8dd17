//! `openssl s_server`, one per TLS version so each client's negotiated
//! version is certain. TLS 1.0 and 1.1 need security level 0 with the
//! OpenSSL 3 defaults.

use super::Daemon;
use crate::topology::{TestCert, Topology, WorkDir, path_str};

/// (port, s_server/s_client version flag, version label in the metrics).
pub const VERSIONS: [(u16, &str, &str); 4] = [
    (4410, "-tls1", "1.0"),
    (4411, "-tls1_1", "1.1"),
    (4412, "-tls1_2", "1.2"),
    (4413, "-tls1_3", "1.3"),
];

/// Lets OpenSSL 3 use TLS 1.0/1.1 and their SHA-1 cipher suites.
pub const SECLEVEL_0: &str = "DEFAULT@SECLEVEL=0";

pub struct TlsServers {
    _daemons: Vec<Daemon>,
    _dir: WorkDir,
}

impl TlsServers {
    pub fn start(t: &Topology, cert: &TestCert) -> Self {
        let dir = WorkDir::new("s_server");
        let daemons = VERSIONS
            .iter()
            .map(|&(port, flag, _)| s_server(t, cert, &dir, port, flag, &[]))
            .collect();
        Self {
            _daemons: daemons,
            _dir: dir,
        }
    }
}

/// One `openssl s_server` on `port` with the test certificate, TLS version
/// `flag` (security level 0) and `extra` flags (e.g. `-Verify 1`), its log
/// in `dir`.
pub fn s_server(
    t: &Topology,
    cert: &TestCert,
    dir: &WorkDir,
    port: u16,
    flag: &str,
    extra: &[&str],
) -> Daemon {
    let port_s = port.to_string();
    let mut argv = vec![
        "openssl",
        "s_server",
        "-quiet",
        "-accept",
        &port_s,
        "-cert",
        path_str(&cert.cert),
        "-key",
        path_str(&cert.key),
        flag,
        "-cipher",
        SECLEVEL_0,
    ];
    argv.extend(extra);
    let log = dir.join(&format!("s_server-{port}.log"));
    Daemon::start(t, &argv, log, &[port], libc::SIGTERM)
}
