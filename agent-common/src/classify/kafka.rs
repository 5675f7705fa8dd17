//! Kafka: every request is `int32 length, int16 api_key, int16
//! api_version, int32 correlation_id, string client_id` (big-endian). We
//! accept api keys up to 74 (KIP-era ApiVersions lists fewer), versions up
//! to 20, and a client id that is null (-1) or short printable text.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Kafka;

impl Dissector for Kafka {
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client && is_request(d) {
            f.open();
            return Verdict::plaintext(Protocol::Kafka);
        }
        PENDING
    }
}

const MAX_API_KEY: u8 = 74;
const MAX_API_VERSION: u8 = 20;

#[inline(always)]
fn is_request(d: &Prefix<'_>) -> bool {
    let len = d.be32(0);
    let id_len = d.be16(12);
    d.has(14)
        && (10..1 << 24).contains(&len)
        && d.at(4) == 0
        && d.at(5) <= MAX_API_KEY
        && d.at(6) == 0
        && d.at(7) <= MAX_API_VERSION
        && (id_len == 0xffff || ((1..=255).contains(&id_len) && d.at(14).is_ascii_graphic()))
}

#[cfg(test)]
mod tests {
    use crate::{Protocol, Verdict};

    // --- Kafka and MongoDB: real clients' opening requests (no broker/server in
    // Debian; the fixtures' server is a silent listener) -----------------------------

    #[test]
    fn librdkafka_api_versions_request_is_plaintext_kafka() {
        let v = replay!("confluent-kafka-2.16.1-librdkafka-2.16.0-sink": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Kafka)));
    }
}
