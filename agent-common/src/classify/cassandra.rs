//! Apache Cassandra. Clients speak the CQL native protocol (v3–v5, port
//! 9042): a 9-byte frame header, version (`03`–`05`, the high bit set on
//! responses), flags, a 2-byte stream id, the opcode and a 4-byte body
//! length. A connection opens with OPTIONS (empty body) or STARTUP (a
//! string map: `CQL_VERSION`, `COMPRESSION`, ...), answered by SUPPORTED
//! (a string multimap) or READY (empty). v5 wraps later frames in its own
//! framing, but negotiates in these. Nodes talk to each other (port 7000)
//! in messages that start with the magic `CA 55 2D FA`.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Cassandra;

impl Dissector for Cassandra {
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client && (is_request(d) || d.be32(0) == INTERNODE_MAGIC) {
            f.open();
            return Verdict::plaintext(Protocol::Cassandra);
        }
        if side == Side::Server && is_reply(d, f.client_spoke()) {
            return Verdict::plaintext(Protocol::Cassandra);
        }
        PENDING
    }
}

const INTERNODE_MAGIC: u32 = 0xca55_2dfa;
const OP_STARTUP: u8 = 0x01;
const OP_READY: u8 = 0x02;
const OP_OPTIONS: u8 = 0x05;
const OP_SUPPORTED: u8 = 0x06;
const RESPONSE: u8 = 0x80;

/// A frame header of protocol v3–v5 in the direction `dir` (0 or
/// `RESPONSE`) with no undefined flag bits and the given opcode.
#[inline(always)]
fn is_header(d: &Prefix<'_>, dir: u8, opcode: u8) -> bool {
    let version = d.at(0);
    d.has(9)
        && (dir + 3..=dir + 5).contains(&version)
        && d.at(1) & 0xe0 == 0
        && d.at(4) == opcode
}

/// OPTIONS with an empty body, or STARTUP whose map starts with a key a
/// driver sends.
#[inline(always)]
fn is_request(d: &Prefix<'_>) -> bool {
    (is_header(d, 0, OP_OPTIONS) && d.be32(5) == 0)
        || (is_header(d, 0, OP_STARTUP) && map_starts_with_known_key(d))
}

/// SUPPORTED (always: its keys are Cassandra's own), or READY with an
/// empty body once the client spoke.
#[inline(always)]
fn is_reply(d: &Prefix<'_>, client_spoke: bool) -> bool {
    (is_header(d, RESPONSE, OP_SUPPORTED) && map_starts_with_known_key(d))
        || (client_spoke && is_header(d, RESPONSE, OP_READY) && d.be32(5) == 0)
}

/// The body's (multi)map: a 2-byte count, then the first key's 2-byte
/// length and the key.
#[inline(always)]
fn map_starts_with_known_key(d: &Prefix<'_>) -> bool {
    let count = d.be16(9);
    (1..32).contains(&count)
        && (d.eq_at(11, b"\x00\x0bCQL_VERSION")
            || d.eq_at(11, b"\x00\x0bCOMPRESSION")
            || d.eq_at(11, b"\x00\x11PROTOCOL_VERSIONS")
            || d.eq_at(11, b"\x00\x0bDRIVER_NAME")
            || d.eq_at(11, b"\x00\x0eDRIVER_VERSION"))
}

#[cfg(test)]
mod tests {
    use crate::classify::testing::classify_midstream;
    use crate::classify::Side;
    use crate::{Protocol, Reason, Verdict};

    // nDPI's cassandra capture: drivers speaking CQL v4 and v5 to 9042
    // (OPTIONS, SUPPORTED, STARTUP), and one internode connection on 7000.

    #[test]
    fn cql_v4_options_is_plaintext_cassandra() {
        let v = replay!("ndpi-cassandra-cql-v4": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Cassandra)));
    }

    #[test]
    fn cql_v5_options_is_plaintext_cassandra() {
        let v = replay!("ndpi-cassandra-cql-v5": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Cassandra)));
    }

    #[test]
    fn python_driver_options_v4_and_v5_are_plaintext_cassandra() {
        // cassandra-driver 3.30 (DataStax) opens with OPTIONS.
        let v4 = replay!("cassandra-driver-3.30-v4-sink": "c2s.0");
        let v5 = replay!("cassandra-driver-3.30-v5-sink": "c2s.0");
        assert_eq!(v4, Some(Verdict::plaintext(Protocol::Cassandra)));
        assert_eq!(v5, Some(Verdict::plaintext(Protocol::Cassandra)));
    }

    #[test]
    fn cql_startup_is_plaintext_cassandra() {
        let v = crate::classify::testing::classify(&[(
            Side::Client,
            fixture!("ndpi-cassandra-cql-v4", "c2s.1"),
        )]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Cassandra)));
    }

    #[test]
    fn cql_supported_seen_first_is_cassandra_midstream() {
        let v = classify_midstream(&[(Side::Server, fixture!("ndpi-cassandra-cql-v5", "s2c.0"))]);
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Cassandra).with_reason(Reason::Midstream))
        );
    }

    #[test]
    fn internode_magic_is_plaintext_cassandra() {
        let v = replay!("ndpi-cassandra-internode": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Cassandra)));
    }

    #[test]
    fn a_request_header_without_a_known_key_is_not_cassandra() {
        // STARTUP's header with an unknown first key.
        let startup = fixture!("ndpi-cassandra-cql-v4", "c2s.1");
        let mut bytes = [0u8; 64];
        let bytes = &mut bytes[..startup.len()];
        bytes.copy_from_slice(startup);
        bytes[13] = b'X';
        let v = crate::classify::testing::classify(&[(Side::Client, bytes)]);
        assert_ne!(v.map(|v| v.protocol), Some(Protocol::Cassandra));
    }
}
