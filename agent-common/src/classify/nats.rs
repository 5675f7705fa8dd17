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

#[cfg(test)]
mod tests {
    use crate::classify::testing::classify;
    use crate::classify::Side;
    use crate::{Protocol, Verdict};

    // --- NATS (nats-py 2.16 against nats-server 2.9) -------------------------------

    #[test]
    fn nats_server_info_is_plaintext_nats() {
        let v = replay!("nats-py-2.16-anonymous-nats-server-2.9": "s2c.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Nats)));
    }

    #[test]
    fn nats_client_connect_seen_first_is_plaintext_nats() {
        // `CONNECT {...}`: NATS, not an HTTP CONNECT.
        let v = classify(&[(
            Side::Client,
            fixture!("nats-py-2.16-anonymous-nats-server-2.9", "c2s.0"),
        )]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Nats)));
    }
}
