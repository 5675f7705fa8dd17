//! Apache Pulsar's binary protocol (port 6650): a frame is a 4-byte total
//! size, a 4-byte command size and a protobuf `BaseCommand`. A client
//! opens with CONNECT: `08 02` (type CONNECT), `12 len` (the `connect`
//! field), then `0a len` and the required client version string. CONNECT
//! carries no payload, so the total size is the command size plus 4.
//! Its `auth_data` field (`1a len`, right after the version) holds the
//! credentials of the `token` or `basic` method as they are: in clear
//! unless the connection is TLS.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Reason, Verdict};

pub struct Pulsar;

impl Dissector for Pulsar {
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side != Side::Client || !is_connect(d) {
            return PENDING;
        }
        f.open();
        // The field after the client version string.
        let auth_data = d.at_var(14 + usize::from(d.at(13))) == TAG_AUTH_DATA;
        Verdict::plaintext(Protocol::Pulsar)
            .with_reason(Reason::CleartextCredentials.when(u32::from(auth_data)))
    }
}

/// `CommandConnect.auth_data`: field 3, length-delimited.
const TAG_AUTH_DATA: u8 = 0x1a;
/// A CONNECT command is small; frames are at most 5 MiB by default.
const MAX_COMMAND: u32 = 1 << 16;

#[inline(always)]
fn is_connect(d: &Prefix<'_>) -> bool {
    let command = d.be32(4);
    d.has(14)
        && (8..MAX_COMMAND).contains(&command)
        && d.be32(0) == command + 4
        && d.eq_at(8, b"\x08\x02\x12")
        && d.at(12) == 0x0a
}

#[cfg(test)]
mod tests {
    use crate::{Protocol, Reason, Verdict};

    // The Python client (pulsar-client 3.13, its C++ core 4.2) against a
    // listener that records its first segment and answers nothing.

    #[test]
    fn pulsar_connect_is_plaintext_pulsar() {
        let v = replay!("pulsar-client-3.13-connect-sink": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Pulsar)));
    }

    #[test]
    fn pulsar_connect_with_a_token_is_cleartext_credentials() {
        let v = replay!("pulsar-client-3.13-token-sink": "c2s.0");
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Pulsar).with_reason(Reason::CleartextCredentials))
        );
    }
}
