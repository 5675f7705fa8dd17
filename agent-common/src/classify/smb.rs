//! SMB (CIFS, SMB2, SMB3) over TCP 445, or 139 behind a NetBIOS session
//! request. Every message sits in a 4-byte NetBIOS session header (a zero
//! type byte, then a 24-bit length) followed by a 4-byte magic: `0xFF SMB`
//! (SMB1), `0xFE SMB` (SMB2/3), `0xFD SMB` (the SMB3 transform header:
//! an encrypted message).
//!
//! The client opens with a negotiate request (smbclient sends an SMB1
//! multi-protocol negotiate first, then SMB2's); the session runs in
//! clear (file contents included; NTLM or Kerberos tokens are not
//! cleartext credentials) unless SMB3 encryption starts after the session
//! setup: a transform header then makes the flow `encrypted`. Signing
//! alone protects integrity, not confidentiality: still plaintext.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side, WAITING};
use crate::{Encryption, Protocol, Verdict};

pub struct Smb;

/// An SMB session was recognised: a transform header would mean SMB3
/// encryption; the segment budget running out without one, plaintext.
const SESSION: u8 = 0;

/// NetBIOS session message type 0 (a length follows), then `magic`.
#[inline(always)]
fn framed(d: &Prefix<'_>, magic: &[u8; 4]) -> bool {
    d.at(0) == 0 && d.eq_at(4, magic)
}

#[inline(always)]
fn is_transform(d: &Prefix<'_>) -> bool {
    framed(d, b"\xfdSMB")
}

impl Dissector for Smb {
    const STEPS: u8 = 1;

    #[inline(always)]
    fn opening(f: &mut FlowClassifier, _side: Side, d: &Prefix<'_>) -> Verdict {
        // SMB1 NEGOTIATE (command 0x72) or SMB2 NEGOTIATE (command 0 at
        // offset 12 of the SMB2 header).
        let smb1_negotiate = framed(d, b"\xffSMB") && d.at(8) == 0x72;
        let smb2_negotiate = framed(d, b"\xfeSMB") && d.le16(16) == 0;
        // A NetBIOS session request (type 0x81, port 139): two encoded
        // NetBIOS names of 32 letters each, led by their length 0x20.
        let netbios_request = d.at(0) == 0x81 && d.at(1) == 0 && d.at(4) == 0x20 && d.at(38) == 0x20;
        if smb1_negotiate || smb2_negotiate || netbios_request {
            return f.opened::<Self>(Protocol::Smb, SESSION);
        }
        PENDING
    }

    #[inline(always)]
    fn midstream(f: &mut FlowClassifier, _side: Side, d: &Prefix<'_>) -> Verdict {
        if is_transform(d) {
            return Verdict::new(Protocol::Smb, Encryption::Encrypted);
        }
        if framed(d, b"\xfeSMB") || framed(d, b"\xffSMB") {
            // A message in the middle of a session: SMB, not an opening.
            f.name(Protocol::Smb);
            f.goto::<Self>(SESSION);
            return WAITING;
        }
        PENDING
    }

    #[inline(always)]
    fn step(_f: &mut FlowClassifier, _step: u8, _side: Side, d: &Prefix<'_>) -> Verdict {
        if is_transform(d) {
            return Verdict::new(Protocol::Smb, Encryption::Encrypted);
        }
        PENDING
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::Side;
    use crate::classify::testing::{classify, classify_midstream};
    use crate::{Encryption, Protocol, Reason, Verdict};

    // --- SMB (smbclient 4.17 against samba 4.17) ----------------------------------

    #[test]
    fn smb3_session_without_encryption_is_plaintext_smb() {
        // SMB1 and SMB2 negotiate, two session setups, tree connect, create:
        // signed perhaps, never a transform header.
        let v = replay!("smbclient-4.17-smb3-samba-4.17":
            "c2s.0", "s2c.0", "c2s.1", "s2c.1", "c2s.2", "s2c.2",
            "c2s.3", "s2c.3", "c2s.4", "s2c.4", "c2s.5", "s2c.5");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Smb)));
    }

    #[test]
    fn smb3_encryption_after_session_setup_is_encrypted_smb() {
        // The tree connect is the first message in a transform header.
        let v = replay!("smbclient-4.17-smb3-encrypt-samba-4.17":
            "c2s.0", "s2c.0", "c2s.1", "s2c.1", "c2s.2", "s2c.2", "c2s.3", "s2c.3", "c2s.4");
        assert_eq!(v, Some(Verdict::new(Protocol::Smb, Encryption::Encrypted)));
    }

    #[test]
    fn smb1_session_is_plaintext_smb() {
        let v = replay!("smbclient-4.17-smb1-samba-4.17": "c2s.0", "s2c.0", "c2s.1", "s2c.1");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Smb)));
    }

    #[test]
    fn smb_picked_up_midstream() {
        let tree_connect = fixture!("smbclient-4.17-smb3-samba-4.17", "c2s.4");
        let v = classify_midstream(&[(Side::Client, tree_connect)]);
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Smb).with_reason(Reason::Midstream))
        );
        let sealed = fixture!("smbclient-4.17-smb3-encrypt-samba-4.17", "s2c.4");
        let v = classify_midstream(&[(Side::Server, sealed)]);
        assert_eq!(
            v,
            Some(Verdict::new(Protocol::Smb, Encryption::Encrypted).with_reason(Reason::Midstream))
        );
    }

    #[test]
    fn smb_magic_without_the_session_header_is_not_smb() {
        // The magic alone, at another offset, names nothing.
        let v = classify(&[(Side::Client, b"\xfeSMB@\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0")]);
        assert_eq!(v.map(|v| v.protocol), Some(Protocol::Unknown));
    }
}
