//! memcached: the text protocol (lower-case commands `get `, `set `, ...;
//! replies `VALUE `, `STORED`, `END`, `STAT `) and the binary protocol
//! (24-byte header, magic 0x80 request / 0x81 response, data type 0).

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Memcached;

impl Dissector for Memcached {
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client {
            if is_text_command(d) || is_binary(d, 0x80) {
                f.open();
                return Verdict::plaintext(Protocol::Memcached);
            }
        } else if is_text_reply(d) || is_binary(d, 0x81) {
            return Verdict::plaintext(Protocol::Memcached);
        }
        PENDING
    }
}

/// Text commands. Written out, not a loop over a table: a table of slices
/// becomes pointers in .rodata the verifier cannot follow.
#[inline(always)]
fn is_text_command(d: &Prefix<'_>) -> bool {
    d.starts_with(b"get ")
        || d.starts_with(b"gets ")
        || d.starts_with(b"set ")
        || d.starts_with(b"add ")
        || d.starts_with(b"replace ")
        || d.starts_with(b"append ")
        || d.starts_with(b"prepend ")
        || d.starts_with(b"delete ")
        || d.starts_with(b"incr ")
        || d.starts_with(b"decr ")
        || d.starts_with(b"stats")
        || d.starts_with(b"version\r\n")
        || d.starts_with(b"flush_all")
}

#[inline(always)]
fn is_text_reply(d: &Prefix<'_>) -> bool {
    d.starts_with(b"VALUE ")
        || d.starts_with(b"STORED\r\n")
        || d.starts_with(b"END\r\n")
        || d.starts_with(b"STAT ")
        || d.starts_with(b"NOT_FOUND\r\n")
}

/// Binary header: magic, opcode, key length, extras length, data type 0,
/// and a total body at least extras + key.
#[inline(always)]
fn is_binary(d: &Prefix<'_>, magic: u8) -> bool {
    let key = u32::from(d.be16(2));
    let extras = u32::from(d.at(4));
    d.has(24)
        && d.at(0) == magic
        && d.at(1) <= 0x48
        && d.at(5) == 0
        && extras <= 20
        && d.be32(8) >= key + extras
}

#[cfg(test)]
mod tests {
    use crate::classify::testing::classify_midstream;
    use crate::classify::Side;
    use crate::{Protocol, Reason, Verdict};

    // --- memcached (memcstat 1.1 against memcached 1.6) --------------------------------

    #[test]
    fn memcached_text_command_is_plaintext_memcached() {
        // `version\r\n`.
        let v = replay!("memcstat-1.1-text": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Memcached)));
    }

    #[test]
    fn memcached_binary_request_is_plaintext_memcached() {
        // Magic 0x80, opcode VERSION.
        let v = replay!("memcstat-1.1-binary": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Memcached)));
    }

    #[test]
    fn memcached_binary_response_seen_first_is_memcached_midstream() {
        let v = classify_midstream(&[(Side::Server, fixture!("memcstat-1.1-binary", "s2c.0"))]);
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Memcached).with_reason(Reason::Midstream))
        );
    }
}
