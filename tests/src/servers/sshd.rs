//! OpenSSH's `sshd` from Debian's `openssh-server`, with a throwaway host
//! key and a client key allowed to log in as root.

use super::Daemon;
use crate::topology::{Topology, WorkDir, path_str, sh};
use std::path::PathBuf;

pub const PORT: u16 = 2222;

pub struct Sshd {
    _daemon: Daemon,
    dir: WorkDir,
}

impl Sshd {
    pub fn start(t: &Topology) -> Self {
        let dir = WorkDir::new("sshd");
        for key in ["host_key", "client_key"] {
            sh(&[
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-f",
                path_str(&dir.join(key)),
            ]);
        }
        let authorized = dir.join("authorized_keys");
        std::fs::copy(dir.join("client_key.pub"), &authorized).expect("writing authorized_keys");
        // sshd refuses to start without its privilege-separation directory,
        // which Debian creates only when the service starts.
        std::fs::create_dir_all("/run/sshd").expect("creating /run/sshd");
        let (port, host_key) = (PORT.to_string(), dir.join("host_key"));
        let keys_opt = format!("AuthorizedKeysFile={}", path_str(&authorized));
        let argv = [
            "/usr/sbin/sshd",
            "-D",
            "-e",
            "-f",
            "/dev/null",
            "-p",
            &port,
            "-h",
            path_str(&host_key),
            "-o",
            &keys_opt,
            "-o",
            "PermitRootLogin=prohibit-password",
            "-o",
            "StrictModes=no",
            "-o",
            "UsePAM=no",
            "-o",
            "PidFile=none",
        ];
        let daemon = Daemon::start(t, &argv, dir.join("sshd.log"), &[PORT], libc::SIGTERM);
        Self {
            _daemon: daemon,
            dir,
        }
    }

    /// The private key `ssh -i` logs in with.
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client_key")
    }
}
