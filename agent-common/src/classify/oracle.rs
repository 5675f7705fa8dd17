//! Oracle Database (TNS, Net8).
//!
//! TNS packets start with an 8-byte header: length (2 bytes; 4 bytes in
//! packets after a version-315+ Accept), packet checksum, type, flags,
//! header checksum (always 0). The client opens with Connect (type 1):
//! its version (300..=399 since Oracle 8) and lowest compatible version,
//! then its connect descriptor (`(DESCRIPTION=...)`), here or in a Data
//! packet that follows. The server answers Accept (2), Refuse (4, with a
//! readable reason), Redirect (5, another address) or Resend (11, send
//! the Connect again).
//!
//! After Accept a client that asks for Native Network Encryption sends
//! an ANO negotiation (a Data packet, type 6, whose payload starts with the
//! magic `de ad be ef`) and the server answers with its own. Whether
//! encryption was agreed shows in what follows: the TTC protocol message
//! (`01`, then the protocol versions it speaks, 6 down to 1) in the clear
//! when it was not (also when only checksumming was), ciphertext when it
//! was (`encrypted`). A client without ANO goes straight to the clear TTC
//! message. TCPS is TLS from the first byte: `tls`.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Encryption, Protocol, Verdict};

pub struct Oracle;

/// Connect sent: the server's answer next.
const CONNECT: u8 = 0;
/// Accepted: the client's first Data packet says whether it asks for ANO.
const ACCEPTED: u8 = 1;
/// ANO asked: the server's ANO answer next.
const ANO_ASKED: u8 = 2;
/// ANO answered: the client's next Data packet is clear TTC or ciphertext.
const ANO_ANSWERED: u8 = 3;

impl Dissector for Oracle {
    const STEPS: u8 = 4;

    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client && is_connect(d) {
            return f.opened::<Self>(Protocol::Oracle, CONNECT);
        }
        PENDING
    }

    #[inline(always)]
    fn step(f: &mut FlowClassifier, step: u8, side: Side, d: &Prefix<'_>) -> Verdict {
        let kind = d.at(4);
        let tns = d.has(10) && d.be16(6) == 0;
        if step == CONNECT {
            if side == Side::Client {
                // The connect descriptor, or a Connect sent again.
                return PENDING;
            }
            if tns && kind == ACCEPT {
                f.goto::<Self>(ACCEPTED);
                return PENDING;
            }
            if tns && kind == RESEND {
                return PENDING;
            }
            // Refuse or Redirect (readable reason or address), or no TNS.
            return Verdict::plaintext(Protocol::Oracle);
        }
        // The side that speaks at this step: the client after Accept and
        // after the ANO answer, the server after the ANO request.
        let speaks = if step == ANO_ASKED { Side::Server } else { Side::Client };
        if side != speaks {
            return PENDING;
        }
        let data = tns && kind == DATA;
        if step == ANO_ANSWERED {
            if data && is_ttc_protocol(d) {
                return Verdict::plaintext(Protocol::Oracle);
            }
            return Verdict::new(Protocol::Oracle, Encryption::Encrypted);
        }
        if data && d.be32(10) == ANO_MAGIC {
            f.goto::<Self>(step + 1);
            return PENDING;
        }
        // No ANO: the TTC exchange runs in the clear.
        Verdict::plaintext(Protocol::Oracle)
    }
}

const CONNECT_PACKET: u8 = 1;
const ACCEPT: u8 = 2;
const DATA: u8 = 6;
const RESEND: u8 = 11;
const ANO_MAGIC: u32 = 0xdead_beef;
/// TNS versions: 300 (Oracle 8) up to the 3xx of current releases.
const MIN_VERSION: u16 = 300;
const MAX_VERSION: u16 = 399;

/// Connect: 2-byte length covering at least the fixed fields, checksums
/// 0, the version and the compatible version in 300..=399, compatible not
/// above version.
#[inline(always)]
fn is_connect(d: &Prefix<'_>) -> bool {
    let version = d.be16(8);
    let compatible = d.be16(10);
    d.has(34)
        && d.at(4) == CONNECT_PACKET
        && d.be16(0) >= 34
        && d.be16(2) == 0
        && d.be16(6) == 0
        && (MIN_VERSION..=MAX_VERSION).contains(&version)
        && (MIN_VERSION..=MAX_VERSION).contains(&compatible)
        && compatible <= version
}

/// TTC protocol negotiation in the clear: message type 1, then the
/// protocol versions the client speaks, highest first (6..1).
#[inline(always)]
fn is_ttc_protocol(d: &Prefix<'_>) -> bool {
    d.at(10) == 1 && (1..=6).contains(&d.at(11)) && d.has(12)
}

#[cfg(test)]
mod tests {
    use crate::classify::Side;
    use crate::classify::testing::classify;
    use crate::{Encryption, Protocol, Verdict};

    // --- python-oracledb 26.1 thin mode against the silent sink ------------------
    // Only the client's Connect is real (no Oracle server in Debian); the
    // server's packets and the ANO/TTC Data packets below are built from
    // the TNS layout described at the top of this file.

    fn connect() -> &'static [u8] {
        fixture!("python-oracledb-26.1-thin-connect-sink", "c2s.0")
    }

    /// A built packet: bytes and length (no_std: no `Vec`).
    struct Packet([u8; 64], usize);

    impl Packet {
        fn bytes(&self) -> &[u8] {
            &self.0[..self.1]
        }
    }

    /// A TNS packet: 2-byte length, checksum 0, `kind`, flags 0, header
    /// checksum 0, then `body` (a Data packet's starts with its flags).
    fn tns(kind: u8, body: &[u8]) -> Packet {
        let len = 8 + body.len();
        let mut p = [0u8; 64];
        p[..2].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        p[4] = kind;
        p[8..len].copy_from_slice(body);
        Packet(p, len)
    }

    /// Accept, version 319 (0x013f), SDU/TDU 8 KiB.
    fn accept() -> Packet {
        tns(2, &[0x01, 0x3f, 0, 0, 0x20, 0, 0x20, 0, 0x01, 0, 0, 0, 0, 0x20, 0x41, 0x01])
    }

    /// A Data packet (data flags 0) with `payload`.
    fn data(payload: &[u8]) -> Packet {
        let mut body = [0u8; 56];
        body[2..2 + payload.len()].copy_from_slice(payload);
        tns(6, &body[..2 + payload.len()])
    }

    /// An ANO header: magic, length, version, 4 services, flags.
    const ANO: &[u8] = &[0xde, 0xad, 0xbe, 0xef, 0, 0x40, 0x0c, 0x20, 0, 0, 0, 4, 0];
    /// The TTC protocol message: type 1, versions 6..1, 0, platform name.
    const TTC_PROTOCOL: &[u8] = b"\x01\x06\x05\x04\x03\x02\x01\x00x86_64/Linux 2.4.xx\x00";

    #[test]
    fn thin_connect_alone_is_plaintext_oracle_on_close() {
        let v = classify(&[(Side::Client, connect())]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Oracle)));
    }

    #[test]
    fn refuse_is_plaintext_oracle() {
        let refuse = tns(4, b"\x22\x00\x00\x1a(DESCRIPTION=(ERR=12514))");
        let v = classify(&[(Side::Client, connect()), (Side::Server, refuse.bytes())]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Oracle)));
    }

    #[test]
    fn accept_then_clear_ttc_is_plaintext_oracle() {
        let v = classify(&[
            (Side::Client, connect()),
            (Side::Server, accept().bytes()),
            (Side::Client, data(TTC_PROTOCOL).bytes()),
        ]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Oracle)));
    }

    #[test]
    fn ano_then_ciphertext_is_encrypted_oracle() {
        let v = classify(&[
            (Side::Client, connect()),
            (Side::Server, accept().bytes()),
            (Side::Client, data(ANO).bytes()),
            (Side::Server, data(ANO).bytes()),
            (Side::Client, data(&[0x9c, 0x31, 0xe7, 0x02, 0x5d, 0xa8, 0x44, 0x10, 0xfe, 0x71]).bytes()),
        ]);
        assert_eq!(v, Some(Verdict::new(Protocol::Oracle, Encryption::Encrypted)));
    }

    #[test]
    fn ano_without_encryption_agreed_is_plaintext_oracle() {
        // ANO negotiated (checksumming only, or nothing): TTC in the clear.
        let v = classify(&[
            (Side::Client, connect()),
            (Side::Server, accept().bytes()),
            (Side::Client, data(ANO).bytes()),
            (Side::Server, data(ANO).bytes()),
            (Side::Client, data(TTC_PROTOCOL).bytes()),
        ]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Oracle)));
    }
}
