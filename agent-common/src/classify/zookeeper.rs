//! ZooKeeper client protocol (jute records, each behind a 4-byte
//! big-endian length). A session opens with the client's ConnectRequest:
//! protocol version 0, the last zxid seen, the session timeout, a session
//! id and a 16-byte password (length 16), and since 3.4 a read-only byte,
//! so 44 or 45 bytes after the length. Everything after runs in clear
//! unless the client port is TLS (then the core sees a ClientHello first).

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Zookeeper;

/// The ConnectRequest: the length, protocol version 0, the session
/// password's length 16, and nothing past the record.
#[inline(always)]
fn is_connect_request(d: &Prefix<'_>) -> bool {
    let len = d.be32(0);
    (len == 44 || len == 45)
        && d.be32(4) == 0
        && d.be32(28) == 16
        && d.has(4 + 44)
        && !d.has(4 + 46)
}

/// A ping (xid -2, op 11, nothing else): clients send one every third of
/// the session timeout, so an idle session picked up mid-stream shows it.
const PING: &[u8] = &[0, 0, 0, 8, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 11];

impl Dissector for Zookeeper {
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client && is_connect_request(d) {
            f.open();
            return Verdict::plaintext(Protocol::Zookeeper);
        }
        PENDING
    }

    #[inline(always)]
    fn midstream(_f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client && d.eq_at(0, PING) && !d.has(PING.len() + 1) {
            return Verdict::plaintext(Protocol::Zookeeper);
        }
        PENDING
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::Side;
    use crate::classify::testing::{classify, classify_midstream};
    use crate::{Protocol, Verdict};

    // --- kazoo 2.8 against Debian's zookeeper 3.8 (standalone) ---------------------

    #[test]
    fn kazoo_connect_request_is_plaintext_zookeeper() {
        let v = replay!("kazoo-2.8-zookeeper-3.8": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Zookeeper)));
    }

    #[test]
    fn connect_request_with_more_bytes_is_not_zookeeper() {
        let mut long = fixture!("kazoo-2.8-zookeeper-3.8", "c2s.0").to_vec();
        long.extend_from_slice(&[0; 8]);
        assert_ne!(
            classify(&[(Side::Client, &long)]).map(|v| v.protocol),
            Some(Protocol::Zookeeper)
        );
    }

    #[test]
    fn a_ping_mid_session_is_zookeeper() {
        let v = classify_midstream(&[(Side::Client, super::PING)]);
        assert_eq!(v.map(|v| v.protocol), Some(Protocol::Zookeeper));
    }

    #[test]
    fn a_later_request_alone_is_not_named() {
        // kazoo's create request: only a ConnectRequest or a ping names it.
        let v = classify(&[(Side::Client, fixture!("kazoo-2.8-zookeeper-3.8", "c2s.1"))]);
        assert_ne!(v.map(|v| v.protocol), Some(Protocol::Zookeeper));
    }
}
