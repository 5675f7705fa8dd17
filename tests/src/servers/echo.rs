//! A custom plaintext TCP service: `socat` echoing each connection's text
//! back, as an in-house line protocol would. Nothing names its protocol;
//! its readable bytes must still be reported as plaintext.

use super::Daemon;
use crate::topology::{Topology, WorkDir};

pub const PORT: u16 = 7000;

pub struct Echo {
    _daemon: Daemon,
    _dir: WorkDir,
}

impl Echo {
    pub fn start(t: &Topology) -> Self {
        let dir = WorkDir::new("echo");
        let listen = format!("TCP-LISTEN:{PORT},fork,reuseaddr");
        let argv = ["socat", &listen, "EXEC:cat"];
        let daemon = Daemon::start(t, &argv, dir.join("socat.log"), &[PORT], libc::SIGTERM);
        Self {
            _daemon: daemon,
            _dir: dir,
        }
    }
}
