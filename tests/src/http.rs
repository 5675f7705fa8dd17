//! HTTP from the tests: a minimal HTTP/1.0 GET, optionally from inside a
//! network namespace (the agent's API lives there when it runs on the TC
//! hook). Real `curl` requests are `Topology::curl`.

use crate::topology::Proc;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// Waits until `path` on `addr` answers 200 (a readiness endpoint);
/// panics with the process's `log` if it exits first or `timeout` passes.
pub fn wait_ready(
    proc: &mut Proc,
    netns: Option<&str>,
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    log: &Path,
) {
    proc.wait_ready(
        "ready",
        timeout,
        || matches!(get(netns, addr, path), Ok((200, _))),
        || std::fs::read_to_string(log).unwrap_or_default(),
    );
}

/// GETs `path` from `addr`; returns (status, body).
pub fn get(netns: Option<&str>, addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let path = path.to_owned();
    let netns = netns.map(str::to_owned);
    // setns affects only the calling thread, so do it on a fresh one.
    std::thread::spawn(move || {
        if let Some(ns) = netns {
            enter_netns(&ns)?;
        }
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut raw = String::new();
        s.read_to_string(&mut raw)?;
        let status = raw
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
        Ok((status, body))
    })
    .join()
    .map_err(|_| std::io::Error::other("http thread panicked"))?
}

fn enter_netns(name: &str) -> std::io::Result<()> {
    let f = std::fs::File::open(format!("/run/netns/{name}"))?;
    use std::os::fd::AsRawFd as _;
    // SAFETY: setns on a valid namespace fd, for this thread only.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
