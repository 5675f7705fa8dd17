//! The two servers the walking-skeleton tests and `cargo xtask demo` share:
//! openssl s_server (TLS) and python's http.server (plaintext), started in
//! the server namespace outside the cgroup, so the cgroup hook sees each
//! flow once, from the client's side.

use crate::topology::{Proc, Side, TestCert, Topology, path_str};

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
