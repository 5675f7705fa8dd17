//! SMB from Debian's `smbd` (samba): a standalone server with one share and
//! a password user in a throwaway passdb. The client is `clients::smbclient`.

use super::Daemon;
use crate::topology::{Topology, WorkDir, path_str};
use std::path::PathBuf;

pub const PORT: u16 = 445;
/// An existing Unix user (samba maps its accounts onto them), given a
/// samba password in this passdb only.
pub const USER: &str = "root";
pub const PASSWORD: &str = "smb-s3cret";
pub const SHARE: &str = "share";
/// The one file in the share, listed by the client.
pub const FILE: &str = "order-1042.txt";

pub struct Samba {
    _daemon: Daemon,
    dir: WorkDir,
}

impl Samba {
    pub fn start(t: &Topology) -> Self {
        let dir = WorkDir::new("samba");
        for sub in [
            "private", "lock", "state", "cache", "pid", "ncalrpc", "log", "share",
        ] {
            std::fs::create_dir_all(dir.join(sub)).expect("samba dirs");
        }
        std::fs::write(dir.join("share").join(FILE), "shipped\n").expect("share file");
        let d = |sub: &str| dir.join(sub).display().to_string();
        let conf = format!(
            "[global]\n  smb ports = {PORT}\n  private dir = {}\n  lock directory = {}\n  state directory = {}\n  \
             cache directory = {}\n  pid directory = {}\n  ncalrpc dir = {}\n  log file = {}/smbd.log\n  \
             server role = standalone server\n  passdb backend = tdbsam:{}/passdb.tdb\n  load printers = no\n  \
             disable spoolss = yes\n[{SHARE}]\n  path = {}\n  read only = yes\n",
            d("private"),
            d("lock"),
            d("state"),
            d("cache"),
            d("pid"),
            d("ncalrpc"),
            d("log"),
            d("private"),
            d("share"),
        );
        std::fs::write(dir.join("smb.conf"), conf).expect("smb.conf");
        let out = std::process::Command::new("smbpasswd")
            .args(["-c", path_str(&dir.join("smb.conf")), "-s", "-a", USER])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                let mut stdin = c.stdin.take().expect("stdin");
                stdin.write_all(format!("{PASSWORD}\n{PASSWORD}\n").as_bytes())?;
                drop(stdin);
                c.wait_with_output()
            })
            .expect("running smbpasswd (samba-common-bin)");
        assert!(out.status.success(), "smbpasswd: {out:?}");
        let conf = dir.join("smb.conf");
        let argv = [
            "smbd",
            "--foreground",
            "--no-process-group",
            "--debug-stdout",
            "-s",
            path_str(&conf),
        ];
        let daemon = Daemon::start(t, &argv, dir.join("smbd.out"), &[PORT], libc::SIGTERM);
        Self {
            _daemon: daemon,
            dir,
        }
    }

    /// The configuration file, which smbclient reads too.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("smb.conf")
    }
}
