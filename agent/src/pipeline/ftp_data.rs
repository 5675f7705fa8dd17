//! FTP data connections, named by their control connection.
//!
//! A transfer runs on a second TCP connection whose endpoint the control
//! connection announces: the server's `227` (PASV) or `229` (EPSV) reply,
//! or the client's `PORT` / `EPRT` command. Each flow is classified alone
//! (in the kernel as in replay), so the two are linked here: the announced
//! endpoint is remembered for a short time, and the next flow that ends
//! there is named `ftp`. The lines come from the control flow's segments
//! that `agent_common::classify::ftp::announces` picks, bounded to the
//! classifier's prefix: they hold an address and a port, nothing else.

use agent_common::{Encryption, Protocol, Reason, Verdict};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// How long an announced endpoint waits for its connection: clients
/// connect at once, after the reply.
const TTL_NS: i64 = 120 * 1_000_000_000;
/// Endpoints remembered at once; past it the oldest goes.
const MAX_PENDING: usize = 4096;

/// Where a control connection says the data connection goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The address in the line; `None` for EPSV (the control server's own).
    pub addr: Option<IpAddr>,
    pub port: u16,
    /// PASV/EPSV: the control server listens; PORT/EPRT: the client does.
    pub passive: bool,
}

/// Reads a `227`/`229` reply or a `PORT`/`EPRT` command; `None` if the
/// line is none of them or is malformed (hostile bytes: nothing is
/// trusted, every number is range-checked).
#[must_use]
pub fn parse(line: &[u8]) -> Option<Announcement> {
    let command = |word: &[u8]| {
        line.get(..word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    };
    let rest = |n: usize| line.get(n..).unwrap_or_default();
    if line.starts_with(b"227 ") {
        let (ip, port) = comma_six(rest(4))?;
        return Some(Announcement {
            addr: Some(IpAddr::V4(ip)),
            port,
            passive: true,
        });
    }
    if line.starts_with(b"229 ") {
        let open = rest(4).iter().position(|&b| b == b'(')?;
        let (addr, port) = extended(rest(4 + open + 1))?;
        return Some(Announcement {
            addr,
            port,
            passive: true,
        });
    }
    if command(b"PORT ") {
        let (ip, port) = comma_six(rest(5))?;
        return Some(Announcement {
            addr: Some(IpAddr::V4(ip)),
            port,
            passive: false,
        });
    }
    if command(b"EPRT ") {
        let (addr, port) = extended(rest(5))?;
        return Some(Announcement {
            addr,
            port,
            passive: false,
        });
    }
    None
}

/// `h1,h2,h3,h4,p1,p2` (RFC 959), after any text: `(192,168,1,2,19,137)`.
fn comma_six(s: &[u8]) -> Option<(Ipv4Addr, u16)> {
    let start = s.iter().position(u8::is_ascii_digit)?;
    let s = &s[start..];
    let end = s
        .iter()
        .position(|b| !b.is_ascii_digit() && *b != b',')
        .unwrap_or(s.len());
    let text = std::str::from_utf8(&s[..end]).ok()?;
    let mut n = [0u8; 6];
    let mut parts = text.split(',');
    for v in &mut n {
        *v = parts.next()?.parse().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    // Port 0 is no endpoint a data connection can reach (found by the
    // fuzzer: `227 0,0,0,0,0,0`).
    let port = u16::from_be_bytes([n[4], n[5]]);
    (port != 0).then_some((Ipv4Addr::new(n[0], n[1], n[2], n[3]), port))
}

/// `<d>proto<d>addr<d>port<d>` (RFC 2428; EPSV leaves proto and addr
/// empty), `d` any printable delimiter.
fn extended(s: &[u8]) -> Option<(Option<IpAddr>, u16)> {
    let d = *s.first()?;
    if !d.is_ascii_graphic() {
        return None;
    }
    let text = std::str::from_utf8(s).ok()?;
    let mut fields = text.split(char::from(d)).skip(1);
    let proto = fields.next()?;
    let addr = fields.next()?;
    let port: u16 = fields.next()?.parse().ok()?;
    // The closing delimiter must be there.
    fields.next()?;
    let addr = match (proto, addr) {
        ("", "") => None,
        ("1", a) => Some(IpAddr::V4(a.parse().ok()?)),
        ("2", a) => Some(IpAddr::V6(a.parse().ok()?)),
        _ => return None,
    };
    (port != 0).then_some((addr, port))
}

/// Announced endpoints waiting for their connection.
#[derive(Default)]
pub struct FtpData {
    /// Endpoint → when it was announced (ns).
    pending: HashMap<SocketAddr, i64>,
}

impl FtpData {
    /// The control connection `client` → `server` announced `a` at `ts_ns`.
    /// The listening host is the one the line names and the control
    /// connection's own end (NAT rewrites the first, EPSV leaves it out).
    pub fn announce(
        &mut self,
        client: SocketAddr,
        server: SocketAddr,
        a: Announcement,
        ts_ns: i64,
    ) {
        self.pending.retain(|_, &mut t| ts_ns - t <= TTL_NS);
        let host = if a.passive { server.ip() } else { client.ip() };
        for ip in [Some(host), a.addr].into_iter().flatten() {
            if self.pending.len() >= MAX_PENDING
                && let Some(oldest) = self
                    .pending
                    .iter()
                    .min_by_key(|(_, t)| **t)
                    .map(|(k, _)| *k)
            {
                self.pending.remove(&oldest);
            }
            self.pending.insert(SocketAddr::new(ip, a.port), ts_ns);
        }
    }

    /// Names the flow `ftp` when one of its ends was announced (the roles
    /// of a flow picked up mid-stream are a guess, so either end). A TLS
    /// or otherwise encrypted data connection (`PROT P`) keeps its verdict.
    pub fn name(&mut self, ends: [SocketAddr; 2], verdict: &mut Verdict, ts_ns: i64) -> bool {
        if matches!(verdict.encryption, Encryption::Tls | Encryption::Encrypted) {
            return false;
        }
        let Some(end) = ends
            .into_iter()
            .find(|e| self.pending.get(e).is_some_and(|&t| ts_ns - t <= TTL_NS))
        else {
            return false;
        };
        self.pending.remove(&end);
        let midstream = verdict.reason == Reason::Midstream;
        *verdict = Verdict::plaintext(Protocol::Ftp);
        if midstream {
            *verdict = verdict.with_reason(Reason::Midstream);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn replies_and_commands_of_real_servers_and_clients_parse() {
        // Lines from the corpus captures (vsftpd, Pure-FTPd, ftp(1)).
        let pasv = parse(b"227 Entering Passive Mode (90,130,70,73,100,85).\r\n");
        assert_eq!(
            pasv,
            Some(Announcement {
                addr: Some("90.130.70.73".parse().expect("ip")),
                port: 25685,
                passive: true
            })
        );
        let epsv = parse(b"229 Entering Extended Passive Mode (|||57086|)\r\n");
        assert_eq!(
            epsv,
            Some(Announcement {
                addr: None,
                port: 57086,
                passive: true
            })
        );
        assert_eq!(parse(b"227 0000,0,000,00,00,000\r\n"), None, "port 0");
        assert_eq!(parse(b"PORT 10,0,0,1,0,0\r\n"), None, "port 0");
        let port = parse(b"PORT 141,142,220,235,131,46\r\n");
        assert_eq!(port.map(|a| (a.port, a.passive)), Some((33582, false)));
        let eprt = parse(b"EPRT |2|2001:470:1f11:81f:c999:d94:aa7c:2e3e|49189|\r\n");
        assert_eq!(
            eprt.and_then(|a| a.addr),
            Some("2001:470:1f11:81f:c999:d94:aa7c:2e3e".parse().expect("ip"))
        );
    }

    #[test]
    fn malformed_lines_are_none() {
        for line in [
            &b"227 Entering Passive Mode (90,130,70,73,100)\r\n"[..],
            b"227 Entering Passive Mode (90,130,70,273,100,85)\r\n",
            b"229 Entering Extended Passive Mode (|||0|)\r\n",
            b"229 Entering Extended Passive Mode (|||70000|)\r\n",
            b"229 (|||57086",
            b"EPRT |3|x|1|\r\n",
            b"EPRT |1|::1|21|\r\n",
            b"PORTS 1,2,3,4,5,6\r\n",
            b"220 FTP server ready\r\n",
            b"",
        ] {
            assert_eq!(parse(line), None, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn an_announced_endpoint_names_the_next_flow_there_once() {
        let mut t = FtpData::default();
        let (c, s) = (at("10.0.0.1:50000"), at("10.0.0.2:21"));
        let a = parse(b"227 Entering Passive Mode (192,168,0,2,100,85).").expect("227");
        t.announce(c, s, a, 0);
        // Behind NAT the line names 192.168.0.2; the data flow goes to the
        // control server's own address.
        let mut v = Verdict::new(Protocol::Unknown, Encryption::Unknown);
        assert!(t.name([at("10.0.0.1:50001"), at("10.0.0.2:25685")], &mut v, 1));
        assert_eq!(v, Verdict::plaintext(Protocol::Ftp));
        let mut again = Verdict::new(Protocol::Unknown, Encryption::Unknown);
        assert!(!t.name([at("10.0.0.1:50002"), at("10.0.0.2:25685")], &mut again, 2));
    }

    #[test]
    fn active_mode_names_the_connection_to_the_client() {
        let mut t = FtpData::default();
        let (c, s) = (at("10.0.0.1:50000"), at("10.0.0.2:21"));
        t.announce(
            c,
            s,
            parse(b"EPRT |1|10.0.0.1|49189|\r\n").expect("eprt"),
            0,
        );
        let mut v = Verdict::plaintext(Protocol::Unknown).with_reason(Reason::Midstream);
        assert!(t.name([at("10.0.0.2:20"), at("10.0.0.1:49189")], &mut v, 5));
        assert_eq!(
            v,
            Verdict::plaintext(Protocol::Ftp).with_reason(Reason::Midstream)
        );
    }

    #[test]
    fn stale_announcements_and_tls_data_channels_are_left_alone() {
        let mut t = FtpData::default();
        let (c, s) = (at("10.0.0.1:50000"), at("10.0.0.2:21"));
        let a = parse(b"229 Entering Extended Passive Mode (|||4000|)").expect("229");
        t.announce(c, s, a, 0);
        let mut tls = Verdict::new(Protocol::Tls, Encryption::Tls);
        assert!(!t.name([c, at("10.0.0.2:4000")], &mut tls, 1));
        let mut late = Verdict::plaintext(Protocol::Unknown);
        assert!(!t.name([c, at("10.0.0.2:4000")], &mut late, TTL_NS + 1));
        assert_eq!(late, Verdict::plaintext(Protocol::Unknown));
    }
}
