//! DNS over TCP: a 2-byte length, then the DNS header (id, flags, four
//! counts) with sane values: opcode QUERY, Z bit clear, exactly one
//! question, and for a query no answers; the first label of the name is
//! 1..=63 bytes (or the root).

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Dns;

impl Dissector for Dns {
    /// Its place in the list does not matter: no text passes `message`
    /// (the flags and question count need bytes 0x00..0x07).
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        let m = message(d);
        if side == Side::Client && m == 1 {
            f.open();
            return Verdict::plaintext(Protocol::Dns);
        }
        if side == Side::Server && m == 2 {
            return Verdict::plaintext(Protocol::Dns);
        }
        PENDING
    }
}

/// 1 = query, 2 = response, 0 = not DNS.
#[inline(always)]
fn message(d: &Prefix<'_>) -> u8 {
    let len = d.be16(0);
    let flags = d.at(2 + 2);
    let label = d.at(14);
    if !d.has(17)
        || len < 17
        || flags & 0x78 != 0
        || d.at(5) & 0x40 != 0
        || d.be16(6) != 1
        || label > 63
    {
        return 0;
    }
    if flags & 0x80 == 0 {
        if d.be16(8) == 0 && d.be16(10) == 0 && d.be16(12) <= 2 {
            1
        } else {
            0
        }
    } else if d.be16(8) <= 256 {
        2
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::testing::classify_midstream;
    use crate::classify::Side;
    use crate::{Protocol, Reason, Verdict};

    // --- DNS over TCP (dig 9.18 +tcp against dnsmasq 2.90) -----------------------

    #[test]
    fn dig_tcp_query_is_plaintext_dns() {
        let v = replay!("dig-9.18-tcp-dnsmasq-2.90": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Dns)));
    }

    #[test]
    fn dns_tcp_answer_seen_first_is_dns_midstream() {
        let v = classify_midstream(&[(Side::Server, fixture!("dig-9.18-tcp-dnsmasq-2.90", "s2c.0"))]);
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Dns).with_reason(Reason::Midstream))
        );
    }
}
