//! AMQP: the client opens with a protocol header, `AMQP` then
//! `\0\0\x09\x01` (0-9-1, RabbitMQ), `\0\x01\0\0` (1.0) or `\x03\x01\0\0`
//! (1.0 SASL layer). The SASL PLAIN response of 0-9-1 (Connection.Start-Ok)
//! follows a client-properties table that usually runs past the prefix,
//! so credentials are not claimed.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Amqp;

impl Dissector for Amqp {
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client && is_header(d) {
            f.open();
            return Verdict::plaintext(Protocol::Amqp);
        }
        PENDING
    }

    /// A method frame, from either side: not an opening.
    #[inline(always)]
    fn midstream(_f: &mut FlowClassifier, _side: Side, d: &Prefix<'_>) -> Verdict {
        if is_method_frame(d) {
            return Verdict::plaintext(Protocol::Amqp);
        }
        PENDING
    }
}

#[inline(always)]
fn is_header(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"AMQP")
        && (d.eq_at(4, b"\x00\x00\x09\x01")
            || d.eq_at(4, b"\x00\x01\x00\x00")
            || d.eq_at(4, b"\x03\x01\x00\x00"))
}

/// An AMQP 0-9-1 method frame (`01`, channel, size, class, method) whose
/// frame-end octet `ce` sits where the size says: what a flow picked up
/// mid-stream shows first (Basic.Publish, Basic.Deliver, ...).
#[inline(always)]
fn is_method_frame(d: &Prefix<'_>) -> bool {
    let size = d.be32(3) as usize;
    let class = d.be16(7);
    d.has(12)
        && d.at(0) == 1
        && (4..1 << 17).contains(&size)
        && (class == 10
            || class == 20
            || class == 40
            || class == 50
            || class == 60
            || class == 85
            || class == 90)
        && (!d.has(8 + size) || d.at_var(7 + size) == 0xce)
}

#[cfg(test)]
mod tests {
    use crate::classify::testing::classify_midstream;
    use crate::classify::Side;
    use crate::{Protocol, Reason, Verdict};

    // --- AMQP 0-9-1 (pika 1.4 against rabbitmq-server 3.10) ------------------------

    #[test]
    fn amqp_protocol_header_is_plaintext_amqp() {
        let v = replay!("pika-1.4-publish-rabbitmq-3.10": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Amqp)));
    }

    #[test]
    fn amqp_connection_start_seen_first_is_amqp_midstream() {
        let v = classify_midstream(&[(
            Side::Server,
            fixture!("pika-1.4-publish-rabbitmq-3.10", "s2c.0"),
        )]);
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Amqp).with_reason(Reason::Midstream))
        );
    }
}
