//! XMPP from Debian's `prosody`: client-to-server on 5222 offering
//! STARTTLS, one registered user. The client is `clients::xmpp`
//! (Debian's python3-slixmpp).

use super::Daemon;
use crate::topology::{TestCert, Topology, WorkDir, path_str};

pub const PORT: u16 = 5222;
pub const JID: &str = "alice@localhost";
pub const PASSWORD: &str = "xmpp-s3cret";

pub struct Prosody {
    _daemon: Daemon,
    _dir: WorkDir,
}

impl Prosody {
    pub fn start(t: &Topology, cert: &TestCert) -> Self {
        let dir = WorkDir::new("prosody");
        std::fs::create_dir_all(dir.join("data")).expect("prosody data dir");
        // Its own copies: prosody runs as `prosody` and must read them.
        std::fs::copy(&cert.cert, dir.join("cert.pem")).expect("cert copy");
        std::fs::copy(&cert.key, dir.join("key.pem")).expect("key copy");
        let root = dir.path.display().to_string();
        let conf = format!(
            "pidfile = \"{root}/prosody.pid\"\ndata_path = \"{root}/data\"\ndaemonize = false\n\
             c2s_ports = {{ {PORT} }}\nc2s_interfaces = {{ \"*\" }}\ns2s_ports = {{ }}\nhttp_ports = {{ }}\n\
             https_ports = {{ }}\nmodules_enabled = {{ \"roster\"; \"saslauth\"; \"tls\"; \"disco\"; \"ping\"; \"posix\" }}\n\
             authentication = \"internal_hashed\"\nlog = {{ debug = \"{root}/prosody.log\" }}\n\
             VirtualHost \"localhost\"\n  ssl = {{ certificate = \"{root}/cert.pem\"; key = \"{root}/key.pem\" }}\n"
        );
        let conf_path = dir.join("prosody.cfg.lua");
        std::fs::write(&conf_path, conf).expect("prosody.cfg.lua");
        let chown = || {
            let ok = std::process::Command::new("chown")
                .args(["-R", "prosody:prosody", &root])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown {root} to prosody");
        };
        chown();
        let out = std::process::Command::new("prosodyctl")
            .args([
                "--config",
                path_str(&conf_path),
                "register",
                "alice",
                "localhost",
                PASSWORD,
            ])
            .output()
            .expect("running prosodyctl");
        assert!(out.status.success(), "prosodyctl register: {out:?}");
        chown();
        let argv = [
            "setpriv",
            "--reuid=prosody",
            "--regid=prosody",
            "--init-groups",
            "--",
            "prosody",
            "--config",
            path_str(&conf_path),
            "-F",
        ];
        let daemon = Daemon::start(t, &argv, dir.join("prosody.out"), &[PORT], libc::SIGTERM);
        Self {
            _daemon: daemon,
            _dir: dir,
        }
    }
}
