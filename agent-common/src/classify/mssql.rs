//! Microsoft SQL Server (TDS 7.x, MS-TDS).
//!
//! Every TDS packet has an 8-byte header: type, status (bit 0 = end of
//! message), big-endian length (header included), SPID, packet id, window
//! (always 0). A client opens with PRELOGIN (type `12`): a table of 5-byte
//! options (token, offset, length; `ff` ends it), VERSION first, then
//! ENCRYPTION, whose one byte is OFF (0), ON (1), NOT_SUP (2) or REQ (3).
//! The server's PRELOGIN answer (type `04`, same table) settles it:
//! - ON / REQ: the TLS handshake follows, each flight wrapped in PRELOGIN
//!   packets, then bare TLS records: TLS, `starttls_upgraded` (the version
//!   stays unknown: the ServerHello sits after the TDS header);
//! - OFF (the client said OFF): the same handshake, but only LOGIN7 goes
//!   through TLS and the session then runs in the clear:
//!   `login_only_encrypted`;
//! - NOT_SUP: no TLS at all, LOGIN7 in the clear; its password is only
//!   XOR-obfuscated (nibbles swapped, `^ 0xa5`), so `cleartext_credentials`
//!   once the LOGIN7 (type `10`) is seen.
//!
//! TDS 8.0 ("strict") starts with a TLS ClientHello offering ALPN
//! `tds/8.0`: plain TLS to the classifier, named `mssql` from the ALPN in
//! userspace (`pipeline/tls_hello.rs`). A flow picked up mid-session shows
//! SQL batches / RPCs (with the ALL_HEADERS transaction descriptor every
//! TDS 7.2+ request carries) or tabular results.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Reason, Verdict};

pub struct Mssql;

/// PRELOGIN sent with ENCRYPTION OFF or NOT_SUP: the answer decides (these
/// two values are the even ones, so the step is the value's low bit).
const PRELOGIN_CLEAR_OK: u8 = 0;
/// PRELOGIN sent with ENCRYPTION ON or REQ.
const PRELOGIN_TLS_WANTED: u8 = 1;
/// The server said NOT_SUP: LOGIN7 in the clear next.
const LOGIN: u8 = 2;

impl Dissector for Mssql {
    const STEPS: u8 = 3;

    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Server {
            return PENDING;
        }
        if is_prelogin(d, PRELOGIN) {
            let wants_tls = encryption(d) & 1;
            return f.opened::<Self>(Protocol::Mssql, PRELOGIN_CLEAR_OK + wants_tls);
        }
        if is_login7(d) {
            // A TDS 7.0 client that skips PRELOGIN: no TLS was possible.
            f.open();
            return Verdict::plaintext(Protocol::Mssql).with_reason(Reason::CleartextCredentials);
        }
        PENDING
    }

    #[inline(always)]
    fn midstream(_f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        let found = match side {
            Side::Client => is_request(d),
            Side::Server => is_result(d),
        };
        if found {
            return Verdict::plaintext(Protocol::Mssql);
        }
        PENDING
    }

    #[inline(always)]
    fn step(f: &mut FlowClassifier, step: u8, side: Side, d: &Prefix<'_>) -> Verdict {
        if step == LOGIN {
            if side == Side::Server {
                return PENDING;
            }
            if is_login7(d) {
                return Verdict::plaintext(Protocol::Mssql)
                    .with_reason(Reason::CleartextCredentials);
            }
            return Verdict::plaintext(Protocol::Mssql);
        }
        if side == Side::Client {
            return PENDING;
        }
        if !is_prelogin(d, REPLY) {
            return Verdict::plaintext(Protocol::Mssql);
        }
        let answer = encryption(d);
        if answer == ENCRYPT_OFF {
            return Verdict::plaintext(Protocol::Mssql).with_reason(Reason::LoginOnlyEncrypted);
        }
        if answer == ENCRYPT_NOT_SUP {
            if step == PRELOGIN_TLS_WANTED {
                // The client insisted on TLS: it hangs up, no LOGIN7.
                return Verdict::plaintext(Protocol::Mssql);
            }
            f.goto::<Self>(LOGIN);
            return PENDING;
        }
        // ON / REQ: the handshake inside PRELOGIN packets is TLS; the
        // core's ServerHello wait names it from the server's next segment.
        f.upgrade_accepted();
        f.expect_server_hello();
        PENDING
    }
}

const PRELOGIN: u8 = 0x12;
/// Tabular result: the server's PRELOGIN answer, and every later reply.
const REPLY: u8 = 0x04;
const SQL_BATCH: u8 = 0x01;
const RPC: u8 = 0x03;
const LOGIN7: u8 = 0x10;
const TOKEN_VERSION: u8 = 0x00;
const TOKEN_ENCRYPTION: u8 = 0x01;
const ENCRYPT_OFF: u8 = 0;
const ENCRYPT_NOT_SUP: u8 = 2;
/// Packets are at most 32 KiB (negotiated size, 4 KiB by default).
const MAX_PACKET: u16 = 32_768;

/// A PRELOGIN packet of `kind` (the client's `12`, the server's `04`):
/// header, then VERSION (6 bytes) and ENCRYPTION (1 byte) as the first two
/// options, as every client and server sends them.
#[inline(always)]
fn is_prelogin(d: &Prefix<'_>, kind: u8) -> bool {
    let len = d.be16(2);
    d.has(26)
        && d.at(0) == kind
        && d.at(1) == 1
        && (26..=MAX_PACKET).contains(&len)
        && d.at(7) == 0
        && d.at(8) == TOKEN_VERSION
        && d.be16(11) == 6
        && d.at(13) == TOKEN_ENCRYPTION
        && d.be16(16) == 1
}

/// The ENCRYPTION byte of a PRELOGIN (`is_prelogin` said so), 0..=3; a
/// value outside the packet reads as NOT_SUP (no TLS).
#[inline(always)]
fn encryption(d: &Prefix<'_>) -> u8 {
    let at = 8 + usize::from(d.be16(14));
    if !d.has(at + 1) {
        return ENCRYPT_NOT_SUP;
    }
    // Bit 2 is ENCRYPT_CLIENT_CERT (TDS 7.4+), on top of the four values.
    d.at_var(at) & 3
}

/// LOGIN7: type `10`, its own length field (LE) at 8, a TDS 7.x version
/// (`0x7_000_0000` and up, little-endian at 12).
#[inline(always)]
fn is_login7(d: &Prefix<'_>) -> bool {
    let len = d.be16(2);
    d.has(16)
        && d.at(0) == LOGIN7
        && d.at(1) & 0xfe == 0
        && (94..=MAX_PACKET).contains(&len)
        && d.at(7) == 0
        && d.at(15) & 0xf0 == 0x70
        && (86..0x1_0000).contains(&d.le32(8))
}

/// A SQL batch or RPC (TDS 7.2+): status bits EOM / RESETCONNECTION(SKIPTRAN)
/// only, then ALL_HEADERS led by the 18-byte transaction descriptor header
/// (type 2) that every such request carries.
#[inline(always)]
fn is_request(d: &Prefix<'_>) -> bool {
    let kind = d.at(0);
    let total = d.le32(8);
    d.has(18)
        && (kind == SQL_BATCH || kind == RPC)
        && d.at(1) & !0x19 == 0
        && d.be16(2) >= 26
        && d.be16(2) <= MAX_PACKET
        && d.at(7) == 0
        && (22..1024).contains(&total)
        && d.le32(12) == 18
        && d.le16(16) == 2
}

/// A tabular result from a session (SPID set) opening with a token a reply
/// starts with: COLMETADATA, DONE, ENVCHANGE, ERROR, INFO, RETURNSTATUS.
#[inline(always)]
fn is_result(d: &Prefix<'_>) -> bool {
    let t = d.at(8);
    let len = d.be16(2);
    d.has(9)
        && d.at(0) == REPLY
        && d.at(1) & 0xfe == 0
        && (9..=MAX_PACKET).contains(&len)
        && usize::from(len) >= d.len()
        && d.be16(4) != 0
        && d.at(7) == 0
        && (t == 0x81 || t == 0xfd || t == 0xe3 || t == 0xaa || t == 0xab || t == 0x79)
}

#[cfg(test)]
mod tests {
    use crate::classify::Side;
    use crate::classify::testing::{classify_midstream, credentials, upgraded};
    use crate::{Protocol, Reason, TlsVersion, Verdict};

    // --- FreeTDS 1.3 `tsql` against tests/fixtures/tds_responder.py --------------
    // Client bytes are FreeTDS's; the server side (PRELOGIN answers, the
    // TLS handshake wrapped in PRELOGIN packets) is built from MS-TDS by the
    // responder, as no SQL Server runs on Debian.

    #[test]
    fn tsql_encryption_off_against_not_sup_sends_login7_in_clear() {
        // freetds `encryption = off` sends NOT_SUP; the server agrees; the
        // LOGIN7 (reversibly obfuscated password) follows in the clear.
        let v = replay!("tsql-1.3-encryption-off-server-supports": "c2s.0", "s2c.0", "c2s.1");
        assert_eq!(v, Some(credentials(Protocol::Mssql)));
    }

    #[test]
    fn tsql_request_against_server_without_tls_is_cleartext_credentials() {
        // Client OFF, server NOT_SUP (no certificate): LOGIN7 in the clear.
        let v = replay!("tsql-1.3-encryption-request-server-none": "c2s.0", "s2c.0", "c2s.1");
        assert_eq!(v, Some(credentials(Protocol::Mssql)));
    }

    #[test]
    fn tsql_request_answered_off_is_login_only_encryption() {
        // Client OFF, server OFF: TLS for the LOGIN7 only, then clear TDS.
        let v = replay!("tsql-1.3-encryption-request-server-supports": "c2s.0", "s2c.0");
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Mssql).with_reason(Reason::LoginOnlyEncrypted))
        );
    }

    #[test]
    fn tsql_require_answered_on_is_mssql_over_tls() {
        // Client ON, server ON: the ClientHello and ServerHello travel in
        // PRELOGIN packets; the ServerHello's packet decides.
        let v = replay!("tsql-1.3-encryption-require-server-supports": "c2s.0", "s2c.0", "c2s.1", "s2c.1");
        assert_eq!(v, Some(upgraded(Protocol::Mssql, TlsVersion::Unknown)));
    }

    #[test]
    fn tsql_off_against_forced_encryption_is_tls() {
        // Client NOT_SUP, server REQ (ForceEncryption): FreeTDS goes along.
        let v = replay!("tsql-1.3-encryption-off-server-force": "c2s.0", "s2c.0", "c2s.1");
        // The responder hangs up there (MS-TDS: a NOT_SUP client answered
        // REQ must close), so no ServerHello: a ClientHello with no answer
        // is TLS all the same at close, as everywhere else.
        assert_eq!(v, Some(upgraded(Protocol::Mssql, TlsVersion::Unknown)));
    }

    #[test]
    fn tsql_prelogin_alone_is_plaintext_mssql_on_close() {
        let v = replay!("tsql-1.3-encryption-require-server-supports": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Mssql)));
    }

    #[test]
    fn tsql_login7_without_prelogin_is_cleartext_credentials() {
        // The LOGIN7 alone, as a TDS 7.0 client that skips PRELOGIN sends it.
        let login = fixture!("tsql-1.3-encryption-off-server-supports", "c2s.1");
        let v = crate::classify::testing::classify(&[(Side::Client, login)]);
        assert_eq!(v, Some(credentials(Protocol::Mssql)));
    }

    // --- Mid-stream: TDS packets of a session already running --------------------
    // `tsql` sending `select 1` after a login in the clear; the responder
    // (--accept-login) answers LOGINACK, then DONE.

    #[test]
    fn tsql_session_is_plaintext_mssql_on_both_sides() {
        let v = replay!("tsql-1.3-encryption-off-server-none-sql-batch": "c2s.0", "s2c.0", "c2s.1");
        assert_eq!(v, Some(credentials(Protocol::Mssql)));
    }

    #[test]
    fn midstream_sql_batch_is_plaintext_mssql_midstream() {
        let batch = fixture!("tsql-1.3-encryption-off-server-none-sql-batch", "c2s.2");
        let v = classify_midstream(&[(Side::Client, batch)]);
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Mssql).with_reason(Reason::Midstream))
        );
    }

    #[test]
    fn midstream_done_result_is_plaintext_mssql_midstream() {
        let done = fixture!("tsql-1.3-encryption-off-server-none-sql-batch", "s2c.2");
        let v = classify_midstream(&[(Side::Server, done)]);
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Mssql).with_reason(Reason::Midstream))
        );
    }

    #[test]
    fn prelogin_is_not_a_midstream_request() {
        let pre = fixture!("tsql-1.3-encryption-require-server-supports", "c2s.0");
        assert!(!super::is_request(&crate::classify::PrefixBuf::new(pre).prefix()));
    }
}
