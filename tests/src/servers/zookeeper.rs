//! ZooKeeper from Debian's `zookeeper`: the standalone server
//! (`ZooKeeperServerMain`) on a throwaway data directory. The client is
//! `clients::zookeeper` (kazoo, Debian's `python3-kazoo`).

use super::Daemon;
use crate::topology::{Topology, WorkDir, path_str};

pub const PORT: u16 = 2181;

pub struct Zookeeper {
    _daemon: Daemon,
    _dir: WorkDir,
}

impl Zookeeper {
    pub fn start(t: &Topology) -> Self {
        let dir = WorkDir::new("zookeeper");
        let data = dir.join("data");
        std::fs::create_dir(&data).expect("zookeeper data dir");
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=2000\ndataDir={}\nclientPort={PORT}\nadmin.enableServer=false\n",
                path_str(&data)
            ),
        )
        .expect("writing zoo.cfg");
        let argv = [
            "java",
            "-cp",
            "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar",
            "org.apache.zookeeper.server.ZooKeeperServerMain",
            path_str(&cfg),
        ];
        let daemon = Daemon::start(t, &argv, dir.join("zookeeper.log"), &[PORT], libc::SIGTERM);
        Self {
            _daemon: daemon,
            _dir: dir,
        }
    }
}
