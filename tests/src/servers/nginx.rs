//! nginx from Debian's `nginx`: HTTP and HTTPS on IPv4 and IPv6, and
//! HTTP/2 over cleartext (h2c, what gRPC without TLS speaks).

use super::Daemon;
use crate::topology::{TestCert, Topology, WorkDir, path_str};

pub const HTTP_PORT: u16 = 8080;
pub const HTTPS_PORT: u16 = 8443;
pub const H2C_PORT: u16 = 8081;

pub struct Nginx {
    _daemon: Daemon,
    _dir: WorkDir,
}

impl Nginx {
    pub fn start(t: &Topology, cert: &TestCert) -> Self {
        let dir = WorkDir::new("nginx");
        let d = path_str(&dir.path);
        let (crt, key) = (path_str(&cert.cert), path_str(&cert.key));
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
  server {{ listen {HTTP_PORT}; listen [::]:{HTTP_PORT}; return 200 \"plain\\n\"; }}
  server {{
    listen {HTTPS_PORT} ssl; listen [::]:{HTTPS_PORT} ssl;
    ssl_certificate {crt}; ssl_certificate_key {key};
    # nginx 1.22's default stops at TLS 1.2.
    ssl_protocols TLSv1.2 TLSv1.3;
    return 200 \"tls\\n\";
  }}
  server {{ listen {H2C_PORT} http2; return 200 \"h2c\\n\"; }}
}}
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
        let daemon = Daemon::start(
            t,
            &argv,
            dir.join("nginx.log"),
            &[HTTP_PORT, HTTPS_PORT, H2C_PORT],
            libc::SIGTERM,
        );
        Self {
            _daemon: daemon,
            _dir: dir,
        }
    }
}
