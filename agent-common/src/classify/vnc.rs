//! VNC (RFB, RFC 6143): the server greets with its 12-byte version,
//! `RFB 003.008\n`, the client answers with its own; security types,
//! authentication, then framebuffer updates and input events in clear.
//! VNC authentication is a DES challenge (no password crosses), but the
//! screen and the keystrokes do, so the session is plaintext unless a TLS
//! handshake follows the security negotiation (VeNCrypt, RFB type 18/19):
//! the core then sees a ClientHello after the opening and names it `vnc`
//! over TLS.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Vnc;

/// Versions exchanged: plaintext unless TLS follows.
const SESSION: u8 = 0;

/// `RFB xxx.yyy\n`: twelve bytes, nothing else in the segment.
#[inline(always)]
fn is_version(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"RFB 00") && d.at(7) == b'.' && d.at(11) == b'\n' && !d.has(13)
}

impl Dissector for Vnc {
    const STEPS: u8 = 1;

    #[inline(always)]
    fn opening(f: &mut FlowClassifier, _side: Side, d: &Prefix<'_>) -> Verdict {
        if is_version(d) {
            return f.opened::<Self>(Protocol::Vnc, SESSION);
        }
        PENDING
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::Side;
    use crate::classify::testing::classify;
    use crate::{Protocol, Verdict};

    // --- VNC (an RFB handshake against TigerVNC 1.12's Xvnc) -----------------------

    #[test]
    fn rfb_handshake_is_plaintext_vnc() {
        let v = replay!("rfb-client-vncauth-tigervnc-1.12":
            "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2", "c2s.2", "s2c.3");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Vnc)));
    }

    #[test]
    fn rfb_text_inside_a_longer_message_is_not_vnc() {
        let v = classify(&[(Side::Server, b"RFB 003.008\nand more text here\n")]);
        assert_ne!(v.map(|v| v.protocol), Some(Protocol::Vnc));
    }
}
