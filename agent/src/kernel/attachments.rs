//! Whether the cgroup programs are still attached: someone (`bpftool link
//! detach`, a CNI resetting the cgroup, the cgroup removed) can take them
//! off while the agent runs, and then it sees nothing and must say so in
//! `/readyz` rather than look healthy. Read each second from the agent's
//! own link descriptors (`/proc/self/fdinfo`): a detached cgroup link
//! shows `cgroup_id: 0`. That needs no capability, which matters because
//! the agent has dropped CAP_NET_ADMIN (`BPF_PROG_QUERY` needs it) by then.
//! The descriptors are found once, after attaching (the agent holds them
//! until it exits); each check then reads only those two files.

use aya::{Ebpf, programs::CgroupSkb};
use std::path::{Path, PathBuf};

/// The two cgroup programs and where they should be.
pub struct CgroupWatch {
    path: PathBuf,
    /// (program name, its link's descriptor in `/proc/self/fdinfo`).
    links: Vec<(&'static str, Option<String>)>,
}

impl CgroupWatch {
    /// After `datapath::attach_cgroup` succeeded.
    pub fn new(ebpf: &Ebpf, path: &Path) -> std::io::Result<Self> {
        let found = cgroup_link_fds()?;
        let mut links = Vec::new();
        for name in ["cgroup_ingress", "cgroup_egress"] {
            let prog: &CgroupSkb = ebpf
                .program(name)
                .and_then(|p| p.try_into().ok())
                .ok_or_else(|| std::io::Error::other(format!("no program {name}")))?;
            let id = prog.info().map_err(std::io::Error::other)?.id();
            let fd = found
                .iter()
                .find(|(_, p)| *p == id)
                .map(|(fd, _)| fd.clone());
            links.push((name, fd));
        }
        Ok(Self {
            path: path.to_owned(),
            links,
        })
    }

    /// The names of the programs no longer on the cgroup (empty: all
    /// there).
    pub fn missing(&self) -> Vec<&'static str> {
        self.links
            .iter()
            .filter(|(_, fd)| !fd.as_deref().is_some_and(attached))
            .map(|(name, _)| *name)
            .collect()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// This process's cgroup link descriptors, with their program ids.
fn cgroup_link_fds() -> std::io::Result<Vec<(String, u32)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fdinfo")? {
        let fd = entry?.file_name().to_string_lossy().into_owned();
        // A descriptor closed since the listing: skip it.
        let Some(text) = fdinfo(&fd) else {
            continue;
        };
        if field(&text, "link_type:") == Some("cgroup")
            && let Some(id) = field(&text, "prog_id:").and_then(|p| p.parse().ok())
        {
            out.push((fd, id));
        }
    }
    Ok(out)
}

/// Whether the cgroup link behind descriptor `fd` is still attached.
fn attached(fd: &str) -> bool {
    fdinfo(fd).is_some_and(|t| field(&t, "cgroup_id:").is_some_and(|c| c != "0"))
}

fn fdinfo(fd: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()
}

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}
