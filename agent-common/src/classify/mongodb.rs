//! MongoDB wire protocol: a 16-byte little-endian header (messageLength,
//! requestID, responseTo, opCode) with opCode OP_MSG (2013), OP_QUERY
//! (2004, legacy and the first `isMaster` of old drivers), OP_COMPRESSED
//! (2012), or OP_REPLY (1, server only). The length must be sane: at least
//! a header plus a minimal body, below 48 MB (the server's limit).

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Mongodb;

impl Dissector for Mongodb {
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client && is_request(d) {
            f.open();
            return Verdict::plaintext(Protocol::Mongodb);
        }
        PENDING
    }

    /// A reply seen first (a flow picked up mid-stream): not an opening.
    #[inline(always)]
    fn midstream(_f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Server && is_reply(d) {
            return Verdict::plaintext(Protocol::Mongodb);
        }
        PENDING
    }
}

const OP_REPLY: u32 = 1;
const OP_QUERY: u32 = 2004;
const OP_COMPRESSED: u32 = 2012;
const OP_MSG: u32 = 2013;
const MAX_MESSAGE: u32 = 48_000_000;

/// A request (client side): opening message when it starts the flow.
#[inline(always)]
fn is_request(d: &Prefix<'_>) -> bool {
    let op = d.le32(12);
    sane(d) && (op == OP_MSG || op == OP_QUERY || op == OP_COMPRESSED)
}

/// A reply (server side): answers a request id.
#[inline(always)]
fn is_reply(d: &Prefix<'_>) -> bool {
    let op = d.le32(12);
    sane(d) && d.le32(8) != 0 && (op == OP_MSG || op == OP_REPLY || op == OP_COMPRESSED)
}

#[inline(always)]
fn sane(d: &Prefix<'_>) -> bool {
    let len = d.le32(0);
    d.has(21) && (21..MAX_MESSAGE).contains(&len)
}

#[cfg(test)]
mod tests {
    use crate::{Protocol, Verdict};

    #[test]
    fn pymongo_op_msg_hello_is_plaintext_mongodb() {
        // pymongo 4.20 opens with OP_MSG (2013) `hello` even without a
        // declared server API; no current driver here sends OP_QUERY.
        let v = replay!("pymongo-4.20-hello-sink": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Mongodb)));
    }

    #[test]
    fn pymongo_op_msg_hello_with_server_api_is_plaintext_mongodb() {
        let v = replay!("pymongo-4.20-server-api-sink": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Mongodb)));
    }
}
