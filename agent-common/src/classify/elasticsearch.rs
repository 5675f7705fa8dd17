//! Elasticsearch's binary transport protocol (node to node and transport
//! clients, port 9300; its HTTP API on 9200 is `http`). Every message
//! starts `E S`, a 4-byte length, an 8-byte request id, a status byte
//! (bit 0 response, bit 1 error, bit 2 compressed, bit 3 handshake) and
//! the sender's 4-byte version id (e.g. 7060299 for 7.6.2, under 2^24
//! for every release). A request counts as an opening (a connection
//! starts with one: there is no other greeting), a response does not.
//! A keep-alive ping is `E S FF FF FF FF`.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Elasticsearch;

impl Dissector for Elasticsearch {
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, _side: Side, d: &Prefix<'_>) -> Verdict {
        if !is_message(d) {
            return PENDING;
        }
        if d.at(14) & STATUS_RESPONSE == 0 {
            f.open();
        }
        Verdict::plaintext(Protocol::Elasticsearch)
    }
}

const STATUS_RESPONSE: u8 = 1;
/// Bits of the status byte Elasticsearch defines (up to 5 of them).
const STATUS_BITS: u8 = 0x1f;
/// The transport's message size limit is far below this.
const MAX_MESSAGE: u32 = 1 << 30;

/// The `ES` marker, a sane length, a status of defined bits, and a version
/// id below 2^24 but not a tiny one (every release is over 1,000,000).
#[inline(always)]
fn is_message(d: &Prefix<'_>) -> bool {
    let len = d.be32(2);
    d.has(19)
        && d.eq_at(0, b"ES")
        && (13..MAX_MESSAGE).contains(&len)
        && d.at(14) & !STATUS_BITS == 0
        && d.at(15) == 0
        && d.at(16) >= 0x0f
}

#[cfg(test)]
mod tests {
    use crate::classify::testing::{classify, classify_midstream};
    use crate::classify::Side;
    use crate::{Protocol, Reason, Verdict};

    // nDPI's elasticsearch capture: nodes of 6.8 and 7.6 clusters on 9300.

    #[test]
    fn transport_handshake_request_is_plaintext_elasticsearch() {
        let v = replay!("ndpi-elasticsearch-transport-handshake": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Elasticsearch)));
    }

    #[test]
    fn transport_request_is_elasticsearch_not_mysql() {
        // The length field's bytes look like a MySQL packet header.
        let v = replay!("ndpi-elasticsearch-transport-request": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Elasticsearch)));
    }

    #[test]
    fn transport_request_seen_first_mid_stream_has_no_midstream_reason() {
        let v = classify_midstream(&[(
            Side::Client,
            fixture!("ndpi-elasticsearch-transport-midstream-request", "c2s.0"),
        )]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Elasticsearch)));
    }

    #[test]
    fn transport_response_seen_first_is_elasticsearch_midstream() {
        for session in [
            fixture!("ndpi-elasticsearch-transport-midstream-response", "s2c.0"),
            fixture!("ndpi-elasticsearch-transport-midstream-status", "s2c.0"),
        ] {
            let v = classify_midstream(&[(Side::Server, session)]);
            assert_eq!(
                v,
                Some(Verdict::plaintext(Protocol::Elasticsearch).with_reason(Reason::Midstream))
            );
        }
    }

    #[test]
    fn es_followed_by_text_is_not_elasticsearch() {
        let v = classify(&[(Side::Client, b"ESMTP is not a transport message\r\n")]);
        assert_ne!(v.map(|v| v.protocol), Some(Protocol::Elasticsearch));
    }
}
