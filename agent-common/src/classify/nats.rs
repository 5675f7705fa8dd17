//! NATS: text protocol; the server speaks first with `INFO {json}`, the
//! client answers `CONNECT {json}`. Registered before HTTP: `CONNECT {` is
//! not an HTTP CONNECT (whose target is `host:port`, never `{`).

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Nats;

impl Dissector for Nats {
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, _side: Side, d: &Prefix<'_>) -> Verdict {
        if d.eq_at(0, b"CONNECT {") || d.eq_at(0, b"INFO {") {
            f.open();
            return Verdict::plaintext(Protocol::Nats);
        }
        PENDING
    }
}
