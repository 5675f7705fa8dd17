//! MariaDB from Debian's `mariadb-server`: `mariadbd` on an empty data
//! directory with TLS available (clients choose to use it or not).

use super::Daemon;
use crate::topology::{TestCert, Topology, WorkDir, path_str};

pub const PORT: u16 = 3306;

pub struct Mariadb {
    _daemon: Daemon,
    _dir: WorkDir,
}

impl Mariadb {
    pub fn start(t: &Topology, cert: &TestCert) -> Self {
        let dir = WorkDir::new("mariadb");
        let data = dir.join("data");
        std::fs::create_dir(&data).expect("creating the MariaDB data directory");
        let args = [
            format!("--datadir={}", path_str(&data)),
            format!("--socket={}", path_str(&dir.join("mysqld.sock"))),
            format!("--pid-file={}", path_str(&dir.join("mysqld.pid"))),
            format!("--port={PORT}"),
            format!("--ssl-cert={}", path_str(&cert.cert)),
            format!("--ssl-key={}", path_str(&cert.key)),
        ];
        let mut argv = vec!["mariadbd", "--no-defaults", "--user=root"];
        argv.extend(args.iter().map(String::as_str));
        // Without grant tables there is no `mysql` database to create
        // (mariadb-install-db takes seconds) and any user may log in: the
        // handshake, TLS or not, is the same as with them.
        argv.extend([
            "--skip-grant-tables",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=16M",
        ]);
        let daemon = Daemon::start(t, &argv, dir.join("mariadbd.log"), &[PORT], libc::SIGTERM);
        Self {
            _daemon: daemon,
            _dir: dir,
        }
    }
}
