//! The FTP announcement parser (agent/src/pipeline/ftp_data.rs) on hostile
//! bytes, as the kernel exports them (at most `PREFIX` bytes of a control
//! connection's line): whatever parses is announced and must name only a
//! flow to the endpoint it announced, once.
#![no_main]

use agent_common::wire::PREFIX;
use agent_common::{Encryption, Protocol, Verdict};
use libfuzzer_sys::fuzz_target;
use plainsight::pipeline::ftp_data::{self, FtpData};
use plainsight_fuzz::assert_coherent;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

fuzz_target!(|data: &[u8]| {
    let line = &data[..data.len().min(PREFIX)];
    let Some(a) = ftp_data::parse(line) else {
        return;
    };
    assert_ne!(a.port, 0, "{a:?}");
    let client = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 50000);
    let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 21);
    let mut t = FtpData::default();
    t.announce(client, server, a, 0);
    let host = if a.passive { server.ip() } else { client.ip() };
    let there = SocketAddr::new(host, a.port);
    // Port 0 is never announced, so this end never matches.
    let other = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)), 0);
    let mut v = Verdict::new(Protocol::Unknown, Encryption::Unknown);
    assert!(t.name([other, there], &mut v, 1), "{a:?} not matched");
    assert_eq!(v.protocol, Protocol::Ftp);
    assert_coherent(&v);
    let mut again = Verdict::new(Protocol::Unknown, Encryption::Unknown);
    assert!(
        !t.name([other, there], &mut again, 2),
        "{a:?} matched twice"
    );
});
