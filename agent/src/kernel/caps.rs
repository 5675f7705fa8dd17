//! Dropping capabilities once the programs are attached. Attaching needs
//! CAP_BPF, CAP_PERFMON (verifier rules for non-root loaders) and
//! CAP_NET_ADMIN; afterwards the agent only reads its maps through file
//! descriptors it holds, which needs no capability on kernels >= 6.5 (there
//! `kernel.unprivileged_bpf_disabled` gates only map and program creation).
//! Kept: CAP_BPF + CAP_NET_ADMIN while TC must attach to interfaces that
//! appear later; CAP_BPF on kernels < 6.5 (every bpf() command needed it).
//!
//! Capabilities are per thread: call this before any other thread exists
//! (threads inherit the creator's sets).

#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    /// The system call that failed (`capget`, `capset`, `prctl(...)`).
    #[error("{call}")]
    Syscall {
        call: &'static str,
        #[source]
        error: std::io::Error,
    },
    #[error("capabilities are {now:#x} after dropping to {keep:#x}")]
    NotDropped { now: u64, keep: u64 },
}

/// The last OS error, as the failure of `call`.
fn failed(call: &'static str) -> CapsError {
    CapsError::Syscall {
        call,
        error: std::io::Error::last_os_error(),
    }
}

pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_SETPCAP: u32 = 8;
pub const CAP_BPF: u32 = 39;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The capabilities to keep after attaching, as a bit set.
pub fn needed_after_attach(tc_watch: bool, kernel_ge_6_5: bool) -> u64 {
    let mut keep = 0;
    if tc_watch {
        keep |= bit(CAP_BPF) | bit(CAP_NET_ADMIN);
    }
    if !kernel_ge_6_5 {
        keep |= bit(CAP_BPF);
    }
    keep
}

const fn bit(cap: u32) -> u64 {
    1 << cap
}

/// Names for the log line, e.g. `CAP_BPF, CAP_NET_ADMIN`.
pub fn names(set: u64) -> String {
    let known = [(CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_BPF, "CAP_BPF")];
    let mut out: Vec<String> = known
        .iter()
        .filter(|(c, _)| set & bit(*c) != 0)
        .map(|(_, n)| (*n).to_owned())
        .collect();
    let rest = known.iter().fold(set, |s, (c, _)| s & !bit(*c));
    if rest != 0 {
        out.push(format!("{rest:#x}"));
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(", ")
    }
}

fn capget() -> Result<[Data; 2], CapsError> {
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget with a v3 header and room for two data words.
    if unsafe { libc::syscall(libc::SYS_capget, &raw mut h, d.as_mut_ptr()) } != 0 {
        return Err(failed("capget"));
    }
    Ok(d)
}

fn effective(d: &[Data; 2]) -> u64 {
    u64::from(d[0].effective) | u64::from(d[1].effective) << 32
}

/// Reduces this thread to `keep` (effective = permitted = `keep` ∩ held,
/// nothing inheritable or ambient), sets no_new_privs so no exec can
/// regain more, and narrows the bounding set when allowed to
/// (CAP_SETPCAP). Returns the capabilities kept.
pub fn drop_to(keep: u64) -> Result<u64, CapsError> {
    let held = capget()?;
    let keep = keep & (u64::from(held[0].permitted) | u64::from(held[1].permitted) << 32);
    // SAFETY: prctl with integer arguments only.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(failed("setting no_new_privs"));
        }
        if effective(&held) & bit(CAP_SETPCAP) != 0 {
            for cap in 0..64u32 {
                if keep & bit(cap) == 0 {
                    // EINVAL past the kernel's last capability: ignored.
                    libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0);
                }
            }
        }
        // Fails only on kernels without ambient capabilities (< 4.3).
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
    }
    #[expect(
        clippy::cast_possible_truncation,
        reason = "splitting into 32-bit words"
    )]
    let words = [keep as u32, (keep >> 32) as u32];
    let mut d = [Data::default(); 2];
    for (slot, w) in d.iter_mut().zip(words) {
        *slot = Data {
            effective: w,
            permitted: w,
            inheritable: 0,
        };
    }
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    // SAFETY: capset with a v3 header and two data words.
    if unsafe { libc::syscall(libc::SYS_capset, &raw mut h, d.as_ptr()) } != 0 {
        return Err(failed("capset"));
    }
    let now = effective(&capget()?);
    if now != keep {
        return Err(CapsError::NotDropped { now, keep });
    }
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_kept() {
        assert_eq!(
            needed_after_attach(false, true),
            0,
            "cgroup hook, new kernel"
        );
        assert_eq!(
            needed_after_attach(true, true),
            bit(CAP_BPF) | bit(CAP_NET_ADMIN)
        );
        assert_eq!(needed_after_attach(false, false), bit(CAP_BPF));
        assert_eq!(names(0), "none");
        assert_eq!(
            names(bit(CAP_BPF) | bit(CAP_NET_ADMIN)),
            "CAP_NET_ADMIN, CAP_BPF"
        );
    }

    /// In a thread of its own: capabilities are per thread, so the test
    /// process keeps its own.
    #[test]
    fn dropping_everything_leaves_an_empty_effective_set() {
        std::thread::spawn(|| {
            drop_to(0).expect("dropping");
            assert_eq!(effective(&capget().expect("capget")), 0);
        })
        .join()
        .expect("thread");
    }
}
