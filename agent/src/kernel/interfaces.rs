//! TC attachment on interfaces matched by name patterns, kept in step with
//! the interfaces that come and go (pods' veths appear all the time).

use crate::{glob::glob_match, logging::chain};
use aya::{
    Ebpf,
    programs::{ProgramError, SchedClassifier, TcAttachType, tc::SchedClassifierLinkId},
    util::KernelVersion,
};
use std::collections::HashMap;

/// What went wrong, naming the program, interface or path; the cause (an
/// errno, the verifier's log) is the error's source.
#[derive(Debug, thiserror::Error)]
pub enum InterfacesError {
    #[error("listing {path}")]
    List {
        path: &'static str,
        #[source]
        error: std::io::Error,
    },
    #[error("program {0} missing")]
    ProgramMissing(String),
    #[error("program {name}")]
    Program {
        name: String,
        #[source]
        error: Box<ProgramError>,
    },
    #[error("verifier rejected {name}")]
    Verifier {
        name: String,
        #[source]
        error: Box<ProgramError>,
    },
    #[error("attaching {name} to {iface}")]
    Attach {
        name: String,
        iface: String,
        #[source]
        error: Box<ProgramError>,
    },
}

const SYS_CLASS_NET: &str = "/sys/class/net";

/// Interface names and indexes present now.
fn current() -> Result<Vec<(String, u32)>, InterfacesError> {
    let list = |error| InterfacesError::List {
        path: SYS_CLASS_NET,
        error,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(SYS_CLASS_NET).map_err(list)? {
        let name = entry
            .map_err(list)?
            .file_name()
            .to_string_lossy()
            .into_owned();
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
    pub fn new(ebpf: &mut Ebpf, patterns: Vec<String>) -> Result<Self, InterfacesError> {
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
    pub fn sync(&mut self, ebpf: &mut Ebpf) -> Result<Vec<String>, InterfacesError> {
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
                Err(e) => log::warn!("attaching TC programs to {name}: {}", chain(&e)),
            }
        }
        Ok(added)
    }
}

fn attach_one(
    ebpf: &mut Ebpf,
    iface: &str,
) -> Result<(SchedClassifierLinkId, SchedClassifierLinkId), InterfacesError> {
    attach_tc_pair(ebpf, iface, TC_PROGRAMS)
}

/// The TC (ingress, egress) programs.
const TC_PROGRAMS: [&str; 2] = ["tc_ingress", "tc_egress"];

/// Loads the named TC programs of `ebpf` (also used by the bench for its
/// do-nothing floor programs).
pub fn load_tc_pair(ebpf: &mut Ebpf, names: [&str; 2]) -> Result<(), InterfacesError> {
    for name in names {
        program(ebpf, name)?
            .load()
            .map_err(|error| InterfacesError::Verifier {
                name: name.into(),
                error: Box::new(error),
            })?;
    }
    Ok(())
}

/// Attaches the loaded (ingress, egress) TC programs `names` to `iface`.
pub fn attach_tc_pair(
    ebpf: &mut Ebpf,
    iface: &str,
    names: [&str; 2],
) -> Result<(SchedClassifierLinkId, SchedClassifierLinkId), InterfacesError> {
    // TCX (>= 6.6) needs no qdisc; the netlink fallback needs clsact.
    if KernelVersion::current().is_ok_and(|v| v < KernelVersion::new(6, 6, 0)) {
        let _ = aya::programs::tc::qdisc_add_clsact(iface);
    }
    let mut link = |name: &str, kind| {
        program(ebpf, name)?
            .attach(iface, kind)
            .map_err(|error| InterfacesError::Attach {
                name: name.into(),
                iface: iface.into(),
                error: Box::new(error),
            })
    };
    let [ingress, egress] = names;
    let ing = link(ingress, TcAttachType::Ingress)?;
    let eg = link(egress, TcAttachType::Egress)?;
    Ok((ing, eg))
}

/// The TC program `name` of `ebpf`.
fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier, InterfacesError> {
    ebpf.program_mut(name)
        .ok_or_else(|| InterfacesError::ProgramMissing(name.into()))?
        .try_into()
        .map_err(|error| InterfacesError::Program {
            name: name.into(),
            error: Box::new(error),
        })
}
