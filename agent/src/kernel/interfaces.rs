//! TC attachment on interfaces matched by name patterns, kept in step with
//! the interfaces that come and go (pods' veths appear all the time).

use crate::{glob::glob_match, logging::chain};
use aya::{
    Ebpf,
    programs::{
        ProgramError, SchedClassifier, TcAttachType,
        tc::{NlOptions, SchedClassifierLinkId, TcAttachOptions},
    },
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

/// Set (to anything) to attach TC programs as clsact filters (netlink) even
/// where the kernel has TCX: for tests of the pre-6.6 path on newer kernels.
pub const FORCE_CLSACT_ENV: &str = "PLAINSIGHT_TEST_TC_CLSACT";

/// True when TC programs are attached as clsact filters: kernels before
/// 6.6 have no TCX (or `FORCE_CLSACT_ENV` asks for it).
fn uses_clsact() -> bool {
    std::env::var_os(FORCE_CLSACT_ENV).is_some()
        || KernelVersion::current().is_ok_and(|v| v < KernelVersion::new(6, 6, 0))
}

/// Attaches the loaded (ingress, egress) TC programs `names` to `iface`.
pub fn attach_tc_pair(
    ebpf: &mut Ebpf,
    iface: &str,
    names: [&str; 2],
) -> Result<(SchedClassifierLinkId, SchedClassifierLinkId), InterfacesError> {
    let clsact = uses_clsact();
    let [ingress, egress] = names;
    if clsact {
        // TCX needs no qdisc; clsact filters do.
        let _ = aya::programs::tc::qdisc_add_clsact(iface);
        remove_stale_filters(
            iface,
            [
                (ingress, TcAttachType::Ingress),
                (egress, TcAttachType::Egress),
            ],
        );
    }
    let mut link = |name: &str, kind| {
        let prog = program(ebpf, name)?;
        if clsact {
            prog.attach_with_options(iface, kind, TcAttachOptions::Netlink(NlOptions::default()))
        } else {
            prog.attach(iface, kind)
        }
        .map_err(|error| InterfacesError::Attach {
            name: name.into(),
            iface: iface.into(),
            error: Box::new(error),
        })
    };
    let ing = link(ingress, TcAttachType::Ingress)?;
    let eg = link(egress, TcAttachType::Egress)?;
    Ok((ing, eg))
}

/// Removes the clsact filters a previous plainsight left on `iface`. A
/// bpf_link (cgroup, TCX) dies with its process, but a clsact filter
/// outlives it: after a `kill -9` or an OOM kill the old programs would
/// keep running beside the new ones, each packet observed twice. A filter
/// is ours by its name, which aya sets to the program's (`tc_ingress`,
/// `tc_egress`) on the direction it attaches that program to: run before
/// this process attaches anything to `iface`, the only such filters are a
/// previous run's (two agents on one interface are not supported).
fn remove_stale_filters(iface: &str, programs: [(&str, TcAttachType); 2]) {
    for (name, kind) in programs {
        match aya::programs::tc::qdisc_detach_program(iface, kind, name) {
            Ok(()) => log::warn!(
                "removed a stale {name} clsact filter from {iface}, left by a previous \
                 plainsight that did not exit cleanly"
            ),
            // NotFound: none left; anything else (no clsact qdisc yet,
            // the interface gone) leaves nothing to remove either.
            Err(e) => log::debug!("no stale {name} filter on {iface}: {}", chain(&e)),
        }
    }
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
