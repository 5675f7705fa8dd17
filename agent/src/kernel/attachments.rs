//! Whether the cgroup programs are still attached: someone (`bpftool link
//! detach`, a CNI resetting the cgroup, the cgroup removed) can take them
//! off while the agent runs, and then it sees nothing and must say so in
//! `/readyz` rather than look healthy. Read each second from the agent's
//! own link descriptors (`/proc/self/fdinfo`): a detached cgroup link
//! shows `cgroup_id: 0`. That needs no capability, which matters because
//! the agent has dropped CAP_NET_ADMIN (`BPF_PROG_QUERY` needs it) by then.

use aya::{Ebpf, programs::CgroupSkb};
use std::path::{Path, PathBuf};

/// The two cgroup programs and where they should be.
pub struct CgroupWatch {
    path: PathBuf,
    /// (program name, program id).
    programs: Vec<(&'static str, u32)>,
}

impl CgroupWatch {
    /// After `datapath::attach_cgroup` succeeded.
    pub fn new(ebpf: &Ebpf, path: &Path) -> std::io::Result<Self> {
        let mut programs = Vec::new();
        for name in ["cgroup_ingress", "cgroup_egress"] {
            let prog: &CgroupSkb = ebpf
                .program(name)
                .and_then(|p| p.try_into().ok())
                .ok_or_else(|| std::io::Error::other(format!("no program {name}")))?;
            let id = prog.info().map_err(std::io::Error::other)?.id();
            programs.push((name, id));
        }
        Ok(Self {
            path: path.to_owned(),
            programs,
        })
    }

    /// The names of the programs no longer on the cgroup (empty: all
    /// there).
    pub fn missing(&self) -> std::io::Result<Vec<&'static str>> {
        let attached = attached_cgroup_links()?;
        Ok(self
            .programs
            .iter()
            .filter(|(_, id)| !attached.contains(id))
            .map(|(name, _)| *name)
            .collect())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Program ids of this process's cgroup links that are still attached.
fn attached_cgroup_links() -> std::io::Result<Vec<u32>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fdinfo")? {
        // A descriptor closed since the listing: skip it.
        let Ok(text) = std::fs::read_to_string(entry?.path()) else {
            continue;
        };
        let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).map(str::trim);
        if field("link_type:") == Some("cgroup")
            && field("cgroup_id:").is_some_and(|c| c != "0")
            && let Some(id) = field("prog_id:").and_then(|p| p.parse().ok())
        {
            ids.push(id);
        }
    }
    Ok(ids)
}
