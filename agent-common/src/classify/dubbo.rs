//! Apache Dubbo (the `dubbo://` protocol): every message has a 16-byte
//! header, magic `DA BB`, a flag byte (`80` request, `40` two-way, `20`
//! event, the low five bits the serialization: Hessian2, Kryo, ...), a
//! status byte (responses: 20 is OK), an 8-byte request id and a 4-byte
//! body length. There is no handshake: a connection starts with a
//! request, so a request counts as an opening and a response does not
//! (a flow picked up mid-stream).

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Dubbo;

impl Dissector for Dubbo {
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, _side: Side, d: &Prefix<'_>) -> Verdict {
        if !is_header(d) {
            return PENDING;
        }
        if d.at(2) & FLAG_REQUEST != 0 {
            f.open();
        }
        Verdict::plaintext(Protocol::Dubbo)
    }
}

const FLAG_REQUEST: u8 = 0x80;
/// Serialization ids Dubbo assigns (`Constants` of its serialization
/// modules): Hessian2 2, Java 3, compacted Java 4, Fastjson 6, native
/// Java 7, Kryo 8, FST 9, native Hessian 10, Protostuff 12, Avro 11, Gson
/// 16, Protobuf-JSON 21, Kryo2 25, Fastjson2 23 (bit mask of them).
const SERIALIZATIONS: u32 = (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 6)
    | (1 << 7)
    | (1 << 8)
    | (1 << 9)
    | (1 << 10)
    | (1 << 11)
    | (1 << 12)
    | (1 << 16)
    | (1 << 21)
    | (1 << 23)
    | (1 << 25);
/// Dubbo's default payload limit is 8 MiB; allow more, not absurd sizes.
const MAX_BODY: u32 = 1 << 28;

/// The magic, a known serialization, a response status Dubbo defines (0
/// on requests) and a sane body length.
#[inline(always)]
fn is_header(d: &Prefix<'_>) -> bool {
    let flag = d.at(2);
    let status = d.at(3);
    let serialization = u32::from(flag & 0x1f);
    let request = flag & FLAG_REQUEST != 0;
    d.has(16)
        && d.be16(0) == 0xdabb
        && (SERIALIZATIONS >> serialization) & 1 == 1
        && (request || (20..=90).contains(&status))
        && d.be32(12) < MAX_BODY
}

#[cfg(test)]
mod tests {
    use crate::classify::testing::classify_midstream;
    use crate::classify::Side;
    use crate::{Protocol, Reason, Verdict};

    // deepflow's dubbo-kryo capture: Kryo-serialized calls on port 37312,
    // picked up without the SYN.

    #[test]
    fn dubbo_request_seen_first_is_plaintext_dubbo_without_midstream_reason() {
        let v = classify_midstream(&[(
            Side::Client,
            fixture!("deepflow-dubbo-kryo-midstream", "c2s.0"),
        )]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Dubbo)));
    }

    #[test]
    fn dubbo_response_seen_first_is_dubbo_midstream() {
        let v = classify_midstream(&[(
            Side::Server,
            fixture!("deepflow-dubbo-kryo-midstream", "s2c.0"),
        )]);
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Dubbo).with_reason(Reason::Midstream))
        );
    }

    #[test]
    fn dubbo_magic_with_an_unknown_serialization_is_not_dubbo() {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&fixture!("deepflow-dubbo-kryo-midstream", "c2s.0")[..32]);
        bytes[2] = 0xc0 | 0x1f;
        let v = classify_midstream(&[(Side::Client, &bytes)]);
        assert_ne!(v.map(|v| v.protocol), Some(Protocol::Dubbo));
    }
}
