//! nginx from Debian's `nginx`: HTTP and HTTPS on IPv4 and IPv6, and
//! HTTP/2 over cleartext (h2c, what gRPC without TLS speaks); or HTTPS
//! servers asking for client certificates (`ssl_verify_client`).

use super::Daemon;
use crate::topology::{TestCert, Topology, WorkDir, path_str};

pub const HTTP_PORT: u16 = 8080;
pub const HTTPS_PORT: u16 = 8443;
pub const H2C_PORT: u16 = 8081;
/// `ssl_verify_client on`: a client certificate is required.
pub const VERIFY_ON_PORT: u16 = 8446;
/// `ssl_verify_client optional`: asked for, not required.
pub const VERIFY_OPTIONAL_PORT: u16 = 8447;

pub struct Nginx {
    _daemon: Daemon,
    _dir: WorkDir,
}

impl Nginx {
    pub fn start(t: &Topology, cert: &TestCert) -> Self {
        let (crt, key) = (path_str(&cert.cert), path_str(&cert.key));
        let servers = format!(
            "  server {{ listen {HTTP_PORT}; listen [::]:{HTTP_PORT}; return 200 \"plain\\n\"; }}
  server {{
    listen {HTTPS_PORT} ssl; listen [::]:{HTTPS_PORT} ssl;
    ssl_certificate {crt}; ssl_certificate_key {key};
    # nginx 1.22's default stops at TLS 1.2.
    ssl_protocols TLSv1.2 TLSv1.3;
    return 200 \"tls\\n\";
  }}
  server {{ listen {H2C_PORT} http2; return 200 \"h2c\\n\"; }}
"
        );
        Self::launch(t, &servers, &[HTTP_PORT, HTTPS_PORT, H2C_PORT])
    }

    /// HTTPS (TLS 1.2 and 1.3) asking for a client certificate signed by
    /// the self-signed test certificate: required on [`VERIFY_ON_PORT`],
    /// optional on [`VERIFY_OPTIONAL_PORT`].
    pub fn start_client_cert(t: &Topology, cert: &TestCert) -> Self {
        let (crt, key) = (path_str(&cert.cert), path_str(&cert.key));
        let servers: String = [(VERIFY_ON_PORT, "on"), (VERIFY_OPTIONAL_PORT, "optional")]
            .iter()
            .map(|(port, verify)| {
                format!(
                    "  server {{
    listen {port} ssl;
    ssl_certificate {crt}; ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_client_certificate {crt}; ssl_verify_client {verify};
    return 200 \"tls\\n\";
  }}
"
                )
            })
            .collect();
        Self::launch(t, &servers, &[VERIFY_ON_PORT, VERIFY_OPTIONAL_PORT])
    }

    /// nginx in the server namespace with `servers` in its `http` block.
    fn launch(t: &Topology, servers: &str, ports: &[u16]) -> Self {
        let dir = WorkDir::new("nginx");
        let d = path_str(&dir.path);
        let conf = format!(
            "daemon off;
user root;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp-body;
  proxy_temp_path {d}/tmp-proxy;
  fastcgi_temp_path {d}/tmp-fastcgi;
  uwsgi_temp_path {d}/tmp-uwsgi;
  scgi_temp_path {d}/tmp-scgi;
{servers}}}
"
        );
        let (conf_path, error_log) = (dir.join("nginx.conf"), dir.join("error.log"));
        std::fs::write(&conf_path, conf).expect("writing nginx.conf");
        let argv = [
            "nginx",
            "-c",
            path_str(&conf_path),
            "-p",
            d,
            "-e",
            path_str(&error_log),
        ];
        let daemon = Daemon::start(t, &argv, dir.join("nginx.log"), ports, libc::SIGTERM);
        Self {
            _daemon: daemon,
            _dir: dir,
        }
    }
}
