//! TC attachment on interfaces matched by name patterns, kept in step with
//! the interfaces that come and go (pods' veths appear all the time).

use anyhow::Context as _;
use aya::{
    Ebpf,
    programs::{SchedClassifier, TcAttachType, tc::SchedClassifierLinkId},
    util::KernelVersion,
};
use std::collections::HashMap;

/// `*` matches any run of characters, `?` any one; everything else itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic two-pointer wildcard match with backtracking to the last `*`.
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Interface names and indexes present now.
fn current() -> anyhow::Result<Vec<(String, u32)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/sys/class/net").context("listing /sys/class/net")? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let idx = std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        if let Some(idx) = idx {
            out.push((name, idx));
        }
    }
    Ok(out)
}

pub struct TcAttacher {
    patterns: Vec<String>,
    /// name -> (ifindex, ingress link, egress link)
    attached: HashMap<String, (u32, SchedClassifierLinkId, SchedClassifierLinkId)>,
}

impl TcAttacher {
    pub fn new(ebpf: &mut Ebpf, patterns: Vec<String>) -> anyhow::Result<Self> {
        load_tc_pair(ebpf, TC_PROGRAMS)?;
        Ok(Self {
            patterns,
            attached: HashMap::new(),
        })
    }

    pub fn count(&self) -> usize {
        self.attached.len()
    }

    /// Attaches to new matching interfaces and forgets vanished ones.
    /// Returns the names newly attached.
    pub fn sync(&mut self, ebpf: &mut Ebpf) -> anyhow::Result<Vec<String>> {
        let now = current()?;
        let gone: Vec<String> = self
            .attached
            .iter()
            .filter(|(name, (idx, _, _))| !now.iter().any(|(n, i)| n == *name && i == idx))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some((_, ing, eg)) = self.attached.remove(&name) {
                // The kernel already dropped the links with the device; this
                // releases our file descriptors.
                for (prog, id) in [("tc_ingress", ing), ("tc_egress", eg)] {
                    if let Some(Ok(p)) =
                        ebpf.program_mut(prog).map(<&mut SchedClassifier>::try_from)
                    {
                        let _ = p.detach(id);
                    }
                }
                log::info!("interface {name} is gone; forgot its TC attachment");
            }
        }
        let mut added = Vec::new();
        for (name, idx) in now {
            if self.attached.contains_key(&name)
                || !self.patterns.iter().any(|p| glob_match(p, &name))
            {
                continue;
            }
            match attach_one(ebpf, &name) {
                Ok((ing, eg)) => {
                    self.attached.insert(name.clone(), (idx, ing, eg));
                    added.push(name);
                }
                // The interface may have vanished between listing and attaching.
                Err(e) => log::warn!("attaching TC programs to {name}: {e:#}"),
            }
        }
        Ok(added)
    }
}

fn attach_one(
    ebpf: &mut Ebpf,
    iface: &str,
) -> anyhow::Result<(SchedClassifierLinkId, SchedClassifierLinkId)> {
    attach_tc_pair(ebpf, iface, TC_PROGRAMS)
}

/// The TC (ingress, egress) programs.
const TC_PROGRAMS: [&str; 2] = ["tc_ingress", "tc_egress"];

/// Loads the named TC programs of `ebpf` (also used by the bench for its
/// do-nothing floor programs).
pub fn load_tc_pair(ebpf: &mut Ebpf, names: [&str; 2]) -> anyhow::Result<()> {
    for name in names {
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()?;
        prog.load()
            .with_context(|| format!("verifier rejected {name}"))?;
    }
    Ok(())
}

/// Attaches the loaded (ingress, egress) TC programs `names` to `iface`.
pub fn attach_tc_pair(
    ebpf: &mut Ebpf,
    iface: &str,
    names: [&str; 2],
) -> anyhow::Result<(SchedClassifierLinkId, SchedClassifierLinkId)> {
    // TCX (>= 6.6) needs no qdisc; the netlink fallback needs clsact.
    if KernelVersion::current().is_ok_and(|v| v < KernelVersion::new(6, 6, 0)) {
        let _ = aya::programs::tc::qdisc_add_clsact(iface);
    }
    let mut link = |name: &str, kind| -> anyhow::Result<SchedClassifierLinkId> {
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()?;
        Ok(prog.attach(iface, kind)?)
    };
    let [ingress, egress] = names;
    let ing = link(ingress, TcAttachType::Ingress)?;
    let eg = link(egress, TcAttachType::Egress)?;
    Ok((ing, eg))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("eth0", "eth0"));
        assert!(!glob_match("eth0", "eth01"));
        assert!(glob_match("veth*", "veth1a2b"));
        assert!(glob_match("*", "lo"));
        assert!(glob_match("e?h*", "eth0"));
        assert!(glob_match("*a*b", "xxaxxb"));
        assert!(!glob_match("*a*b", "xxaxxbc"));
        assert!(!glob_match("veth*", "eth0"));
    }
}
