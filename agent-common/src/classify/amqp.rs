//! AMQP: the client opens with a protocol header, `AMQP` then
//! `\0\0\x09\x01` (0-9-1, RabbitMQ), `\0\x01\0\0` (1.0) or `\x03\x01\0\0`
//! (1.0 SASL layer). After a 0-9-1 header the flow waits for the client's
//! Connection.Start-Ok: its SASL mechanism follows a client-properties
//! table that runs past the prefix, so the credentials scan
//! (`credentials.rs`) reads it at the offset the table's length gives.
//! `PLAIN` (`\0user\0password`) and `AMQPLAIN` (a LOGIN/PASSWORD table)
//! carry the password as is: `cleartext_credentials`; `EXTERNAL` (a TLS
//! client certificate) does not.

use super::bytes::Prefix;
use super::credentials::{ScanBuf, word_is};
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Amqp;

/// A 0-9-1 header was sent: the client's next message (Start-Ok) decides.
pub(super) const AFTER_HEADER: u8 = 0;

impl Dissector for Amqp {
    const STEPS: u8 = 1;

    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client && d.eq_at(0, b"AMQP\x00\x00\x09\x01") {
            return f.opened::<Self>(Protocol::Amqp, AFTER_HEADER);
        }
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

    /// The server's Connection.Start (or its own header, refusing the
    /// version) waits; the client's next message is plaintext AMQP, with
    /// the scan's finding.
    #[inline(always)]
    fn step(_f: &mut FlowClassifier, _step: u8, side: Side, _d: &Prefix<'_>) -> Verdict {
        if side == Side::Server {
            return PENDING;
        }
        Verdict::plaintext(Protocol::Amqp)
    }
}

/// Connection.Start-Ok: a method frame on channel 0, class 10, method 11.
#[inline(always)]
pub(super) fn is_start_ok(d: &Prefix<'_>) -> bool {
    d.has(15) && d.at(0) == 1 && d.be16(1) == 0 && d.be16(7) == 10 && d.be16(9) == 11
}

/// Start-Ok's mechanism (a short string after the frame header (7), class
/// and method (4) and the client-properties table: a 4-byte length, then
/// that many bytes) sends the password as is: `PLAIN`, `AMQPLAIN`.
#[inline(always)]
pub(super) fn mechanism_is_cleartext(buf: &ScanBuf, len: usize) -> bool {
    let table = u32::from_be_bytes([
        buf.byte_at(11),
        buf.byte_at(12),
        buf.byte_at(13),
        buf.byte_at(14),
    ]) as usize;
    let at = 15 + table;
    if at + 9 > len {
        return false;
    }
    let w = buf.word_at(at);
    let n = buf.word_at(at + 8);
    word_is(w, b"\x05PLAIN")
        || (word_is(w, b"\x08AMQPLAI") && word_is(n, b"N"))
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
    use crate::classify::testing::{classify, classify_midstream, credentials};
    use crate::classify::Side;
    use crate::{Protocol, Reason, Verdict};

    // --- AMQP 0-9-1 (pika 1.4 against rabbitmq-server 3.10) ------------------------

    #[test]
    fn amqp_protocol_header_is_plaintext_amqp() {
        let v = replay!("pika-1.4-publish-rabbitmq-3.10": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Amqp)));
    }

    #[test]
    fn amqp_sasl_plain_past_the_prefix_is_cleartext_credentials() {
        // pika's Start-Ok: 328 bytes, `05 PLAIN` then `\0guest\0guest` at 299.
        let v = replay!("pika-1.4-publish-rabbitmq-3.10": "c2s.0", "s2c.0", "c2s.1");
        assert_eq!(v, Some(credentials(Protocol::Amqp)));
    }

    #[test]
    fn amqp_external_mechanism_is_not_cleartext() {
        // The same Start-Ok with the mechanism renamed: no password sent.
        let mut start_ok = fixture!("pika-1.4-publish-rabbitmq-3.10", "c2s.1").to_vec();
        let at = start_ok.windows(6).position(|w| w == b"\x05PLAIN").unwrap();
        start_ok[at + 1..at + 6].copy_from_slice(b"EXTRN");
        let v = classify(&[
            (Side::Client, fixture!("pika-1.4-publish-rabbitmq-3.10", "c2s.0")),
            (Side::Server, fixture!("pika-1.4-publish-rabbitmq-3.10", "s2c.0")),
            (Side::Client, &start_ok),
        ]);
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
