//! RDP (MS-RDPBCGR): the client opens with an X.224 Connection Request in
//! a TPKT (`03 00` + length; X.224 code `E0`), usually with a
//! `Cookie: mstshash=` line and an RDP_NEG_REQ listing the security it
//! supports; the server's Connection Confirm (`D0`) carries an RDP_NEG_RSP
//! with the one it selected. TLS, CredSSP (NLA) and RDSTLS all continue
//! with a TLS handshake: an in-band upgrade, so the flow ends `tls` with
//! `starttls_upgraded`. Standard RDP Security (selected 0, or a confirm
//! without negotiation data) encrypts with the protocol's own RC4:
//! `encrypted`.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Encryption, Protocol, Verdict};

pub struct Rdp;

/// Connection Request seen: the server's Connection Confirm comes next.
const CONFIRM: u8 = 0;

/// RDP_NEG_RSP's type; where it sits in a Connection Confirm (after the
/// TPKT header and the 7-byte X.224 header); the confirm's length with it.
const NEG_RSP: u8 = 0x02;
const NEG_AT: usize = 11;
const CONFIRM_WITH_NEG: usize = 19;

/// A TPKT (version 3) whose X.224 header has `code` and fills the packet:
/// the length indicator is the TPKT length less the two headers' 5 bytes.
#[inline(always)]
fn is_x224(d: &Prefix<'_>, code: u8) -> bool {
    d.at(0) == 0x03
        && d.at(1) == 0x00
        && d.be16(2) == u16::from(d.at(4)) + 5
        && d.at(5) == code
        && d.has(11)
}

impl Dissector for Rdp {
    const STEPS: u8 = 1;

    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        // Destination reference 0 in a request.
        if side == Side::Client && is_x224(d, 0xe0) && d.at(6) == 0 && d.at(7) == 0 {
            return f.opened::<Self>(Protocol::Rdp, CONFIRM);
        }
        PENDING
    }

    #[inline(always)]
    fn step(f: &mut FlowClassifier, _step: u8, side: Side, d: &Prefix<'_>) -> Verdict {
        if side != Side::Server || !is_x224(d, 0xd0) {
            return PENDING;
        }
        let negotiated = d.has(CONFIRM_WITH_NEG) && d.at(NEG_AT) == NEG_RSP;
        if negotiated && d.le32(NEG_AT + 4) != 0 {
            // TLS, CredSSP or RDSTLS: the client's ClientHello comes next.
            f.upgrade_accepted();
            return PENDING;
        }
        if negotiated || !d.has(NEG_AT + 1) {
            return Verdict::new(Protocol::Rdp, Encryption::Encrypted);
        }
        // RDP_NEG_FAILURE: the server closes; nothing more crosses.
        PENDING
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::Side;
    use crate::classify::testing::classify;
    use crate::{Encryption, Protocol, Reason, TlsVersion, Verdict};

    // --- FreeRDP 2.11 xfreerdp /auth-only against xrdp 0.9 (negotiate) ------------

    #[test]
    fn xfreerdp_to_xrdp_is_tls_after_negotiation() {
        let v = replay!("xfreerdp-2.11-xrdp-0.9": "c2s.0", "s2c.0", "c2s.1", "s2c.1");
        let v = v.expect("a verdict at the ServerHello");
        assert_eq!(
            (v.protocol, v.encryption, v.reason),
            (Protocol::Rdp, Encryption::Tls, Reason::StarttlsUpgraded)
        );
        assert_ne!(v.tls_version, TlsVersion::Unknown);
    }

    #[test]
    fn a_confirm_selecting_tls_then_close_is_tls() {
        let v = replay!("xfreerdp-2.11-xrdp-0.9": "c2s.0", "s2c.0");
        assert_eq!(v.map(|v| v.encryption), Some(Encryption::Tls));
    }

    #[test]
    fn standard_rdp_security_is_encrypted() {
        // xrdp's confirm with PROTOCOL_RDP (0) selected.
        let mut confirm = fixture!("xfreerdp-2.11-xrdp-0.9", "s2c.0").to_vec();
        confirm[15..19].copy_from_slice(&[0, 0, 0, 0]);
        let v = classify(&[
            (Side::Client, fixture!("xfreerdp-2.11-xrdp-0.9", "c2s.0")),
            (Side::Server, &confirm),
        ]);
        assert_eq!(v, Some(Verdict::new(Protocol::Rdp, Encryption::Encrypted)));
    }

    #[test]
    fn a_tpkt_whose_length_disagrees_is_not_rdp() {
        let mut request = fixture!("xfreerdp-2.11-xrdp-0.9", "c2s.0").to_vec();
        request[4] += 1;
        let v = classify(&[(Side::Client, &request)]);
        assert_ne!(v.map(|v| v.protocol), Some(Protocol::Rdp));
    }
}
