//! IBM Db2 (DRDA, the Distributed Relational Database Architecture).
//!
//! Everything travels in DSS frames: big-endian length, `d0`, a format
//! byte (low nibble: 1 request, 2 reply, 3 object; `40` = chained), a
//! correlation id, then DDM objects (length, code point, parameters). A
//! client opens with EXCSAT (`1041`, exchange server attributes), usually
//! chained with ACCSEC (`106d`, access security); SECCHK (`106e`) then
//! carries the credentials. The first parameter of ACCSEC, ACCSECRD and
//! SECCHK is SECMEC (`11a2`), the security mechanism: USRIDPWD (3),
//! USRIDONL (4) and USRIDNWPWD (5) send the user id (and password) as they
//! are, in EBCDIC; the encrypted mechanisms (USRENCPWD 7, EUSRIDPWD 9,
//! EUSRIDDTA 12, EUSRPWDDTA 13, ...) and Kerberos/plugins do not, though
//! the session itself stays readable. DRDA over TLS is a ClientHello first.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Reason, Verdict};

pub struct Db2;

/// EXCSAT/ACCSEC sent: the security mechanism comes next.
const SECURITY: u8 = 0;

impl Dissector for Db2 {
    const STEPS: u8 = 1;

    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client && is_dss(d, REQUEST) {
            let cp = d.be16(8);
            if cp == EXCSAT || cp == ACCSEC {
                return f.opened::<Self>(Protocol::Db2, SECURITY);
            }
        }
        PENDING
    }

    /// SECMEC at the head of a segment's first DSS (ACCSEC, ACCSECRD or
    /// SECCHK): a cleartext mechanism decides at the SECCHK, which carries
    /// the credentials; any other decides at once.
    #[inline(always)]
    fn step(_f: &mut FlowClassifier, _step: u8, _side: Side, d: &Prefix<'_>) -> Verdict {
        let cp = d.be16(8);
        if !d.has(16)
            || d.at(2) != DSS_MAGIC
            || d.be16(10) != 6
            || d.be16(12) != SECMEC
            || !(cp == ACCSEC || cp == ACCSECRD || cp == SECCHK)
        {
            return PENDING;
        }
        let mech = d.be16(14);
        if (USRIDPWD..=USRIDNWPWD).contains(&mech) {
            if cp == SECCHK {
                return Verdict::plaintext(Protocol::Db2).with_reason(Reason::CleartextCredentials);
            }
            return PENDING;
        }
        Verdict::plaintext(Protocol::Db2)
    }
}

const DSS_MAGIC: u8 = 0xd0;
const REQUEST: u8 = 1;
const EXCSAT: u16 = 0x1041;
const ACCSEC: u16 = 0x106d;
const SECCHK: u16 = 0x106e;
const ACCSECRD: u16 = 0x14ac;
const SECMEC: u16 = 0x11a2;
const USRIDPWD: u16 = 3;
const USRIDNWPWD: u16 = 5;

/// A DSS of `kind` whose first DDM object fills it (DDM length = DSS
/// length - 6).
#[inline(always)]
fn is_dss(d: &Prefix<'_>, kind: u8) -> bool {
    let len = d.be16(0);
    d.has(10)
        && d.at(2) == DSS_MAGIC
        && d.at(3) & 0x0f == kind
        && d.at(3) & 0x80 == 0
        && (10..=32_767).contains(&len)
        && d.be16(6).wrapping_add(6) == len
}

#[cfg(test)]
mod tests {
    use crate::classify::testing::credentials;
    use crate::{Protocol, Verdict};

    // --- nDPI's drda_db2.pcap (a Db2 client and server; EBCDIC strings) ----------
    // Chunks are the capture's TCP payloads, in order (see fixtures/README.md).

    #[test]
    fn drda_secchk_with_usridpwd_is_cleartext_credentials() {
        // EXCSAT+ACCSEC, EXCSATRD+ACCSECRD, then SECCHK with SECMEC 3
        // (USRIDPWD), USRID and PASSWORD in EBCDIC.
        let v = replay!("ndpi-drda-db2": "c2s.0", "s2c.0", "c2s.1");
        assert_eq!(v, Some(credentials(Protocol::Db2)));
    }

    #[test]
    fn drda_excsat_alone_is_plaintext_db2_on_close() {
        let v = replay!("ndpi-drda-db2": "c2s.0", "s2c.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Db2)));
    }

    #[test]
    fn drda_secchk_with_an_encrypted_mechanism_is_plaintext_without_credentials() {
        // The capture's SECCHK with SECMEC 9 (EUSRIDPWD) in place of 3, as
        // DRDA Vol. 3 lays it out; the rest of the segment as captured.
        let real = fixture!("ndpi-drda-db2", "c2s.1");
        let mut secchk = [0u8; 512];
        let secchk = &mut secchk[..real.len()];
        secchk.copy_from_slice(real);
        assert_eq!(secchk[10..16], [0x00, 0x06, 0x11, 0xa2, 0x00, 0x03]);
        secchk[15] = 9;
        let v = crate::classify::testing::classify(&[
            (crate::classify::Side::Client, fixture!("ndpi-drda-db2", "c2s.0")),
            (crate::classify::Side::Server, fixture!("ndpi-drda-db2", "s2c.0")),
            (crate::classify::Side::Client, secchk),
        ]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Db2)));
    }
}
