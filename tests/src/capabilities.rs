//! The Linux capabilities the agent is granted, and what a running
//! process holds.

/// The capabilities every deployment grants, and nothing else.
pub const CAPS: [&str; 3] = ["BPF", "NET_ADMIN", "PERFMON"];

/// The bit of `cap` (one of `CAPS`) in a capability mask.
pub fn cap_bit(cap: &str) -> u32 {
    match cap {
        "NET_ADMIN" => 12,
        "PERFMON" => 38,
        "BPF" => 39,
        other => panic!("unknown capability {other}"),
    }
}

/// CapEff of a process, from /proc (for an agent started through setpriv,
/// its exec'd image).
pub fn effective_caps(pid: u32) -> u64 {
    let status = crate::files::read(std::path::Path::new(&format!("/proc/{pid}/status")));
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .expect("CapEff");
    u64::from_str_radix(hex.trim(), 16).expect("hex")
}
