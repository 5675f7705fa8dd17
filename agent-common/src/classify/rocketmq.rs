//! Apache RocketMQ's remoting protocol (name server 9876, brokers 10911):
//! a 4-byte total length, then a 4-byte word whose high byte is the header
//! serialization (0 JSON, 1 RocketMQ's binary) and whose low three bytes
//! are the header length, then the header. Every client serializes it as
//! JSON by default, fields in name order: `{"code":`. Requests and replies
//! look alike; a connection starts with a request, so a client's message
//! counts as an opening. ACL requests carry an access key and an HMAC
//! signature, not a secret.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Rocketmq;

impl Dissector for Rocketmq {
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if !is_json_command(d) {
            return PENDING;
        }
        if side == Side::Client {
            f.open();
        }
        Verdict::plaintext(Protocol::Rocketmq)
    }
}

/// RocketMQ's default frame limit is 16 MiB.
const MAX_FRAME: u32 = 1 << 24;

/// A JSON-serialized command whose header fits in the frame.
#[inline(always)]
fn is_json_command(d: &Prefix<'_>) -> bool {
    let total = d.be32(0);
    let header = d.be32(4);
    d.has(16)
        && (12..MAX_FRAME).contains(&total)
        && header < total
        && d.eq_at(8, b"{\"code\":")
}

#[cfg(test)]
mod tests {
    use crate::classify::testing::classify_midstream;
    use crate::classify::Side;
    use crate::{Protocol, Reason, Verdict};

    // The Python client (rocketmq 0.4.4, the C++ client core) asking a
    // name server, a listener that records and answers nothing, for a
    // topic's route (request code 105).

    #[test]
    fn rocketmq_route_request_is_plaintext_rocketmq() {
        let v = replay!("rocketmq-py-0.4.4-route-sink": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Rocketmq)));
    }

    #[test]
    fn rocketmq_command_from_the_server_mid_stream_is_midstream() {
        let v = classify_midstream(&[(
            Side::Server,
            fixture!("rocketmq-py-0.4.4-route-sink", "c2s.0"),
        )]);
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Rocketmq).with_reason(Reason::Midstream))
        );
    }
}
