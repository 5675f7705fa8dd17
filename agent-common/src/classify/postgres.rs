//! PostgreSQL (frontend/backend protocol 3.0).
//!
//! A client opens with one of four untyped messages: `int32 len` then a
//! code: StartupMessage `00 03 00 00` (protocol 3.0, cleartext from here on),
//! SSLRequest `04 d2 16 2f` (the server answers one byte: `S` = TLS follows,
//! `N` = refused, the client goes on in cleartext), GSSENCRequest
//! `04 d2 16 30` (`G` / `N`) and CancelRequest `04 d2 16 2e` (pid and secret
//! key, then close). A PG17 direct-TLS client sends a ClientHello with ALPN
//! `postgresql`, which is plain TLS to us. The server's first answer to a
//! StartupMessage names the authentication method; AuthenticationCleartext
//! (`R`, len 8, int32 3) means the password crosses the wire as is.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Encryption, Protocol, Reason, Verdict};

pub struct Postgres;

/// SSLRequest sent: `S` or `N` next.
const SSL: u8 = 0;
/// GSSENCRequest sent: `G` or `N` next.
const GSS: u8 = 1;
/// GSSAPI encryption accepted: tokens next.
const GSS_ACCEPTED: u8 = 2;
/// StartupMessage sent: the server's answer names the authentication
/// method.
const AUTH: u8 = 3;

impl Dissector for Postgres {
    const STEPS: u8 = 4;

    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Server {
            return PENDING;
        }
        if is_startup(d) {
            return f.opened::<Self>(Protocol::Postgres, AUTH);
        }
        if is_ssl_request(d) {
            return f.opened::<Self>(Protocol::Postgres, SSL);
        }
        if is_gssenc_request(d) {
            return f.opened::<Self>(Protocol::Postgres, GSS);
        }
        if is_cancel_request(d) {
            f.open();
            return Verdict::plaintext(Protocol::Postgres);
        }
        PENDING
    }

    /// A Query: not an opening message.
    #[inline(always)]
    fn midstream(_f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client && is_query(d) {
            return Verdict::plaintext(Protocol::Postgres);
        }
        PENDING
    }

    #[inline(always)]
    fn step(f: &mut FlowClassifier, step: u8, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client {
            if step == GSS_ACCEPTED && !is_startup(d) {
                // GSSAPI-wrapped bytes: encrypted, not TLS.
                return Verdict::new(Protocol::Postgres, Encryption::Encrypted);
            }
            return PENDING;
        }
        let reply = d.at(0);
        if step == SSL {
            if reply == b'S' {
                f.upgrade_accepted();
                return PENDING;
            }
            // `N` (or an error from a pre-7.0 server): cleartext follows.
            f.upgrade_refused();
            f.goto::<Self>(AUTH);
            return PENDING;
        }
        if step == GSS {
            if reply == b'G' {
                f.goto::<Self>(GSS_ACCEPTED);
            } else {
                // Refused: the client goes on with SSLRequest or startup.
                f.restart();
            }
            return PENDING;
        }
        if step == AUTH {
            if asks_cleartext_password(d) {
                return Verdict::plaintext(Protocol::Postgres)
                    .with_reason(Reason::CleartextCredentials);
            }
            return Verdict::plaintext(Protocol::Postgres);
        }
        PENDING
    }
}

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
const GSSENC_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];
const CANCEL_CODE: u32 = 0x04d2_162e;
const PROTOCOL_3: u32 = 0x0003_0000;
/// A StartupMessage carries user, database and a few options: kilobytes
/// at most; anything larger is some other protocol's length.
const MAX_STARTUP: u32 = 10_000;
const AUTH_CLEARTEXT: u32 = 3;

#[inline(always)]
fn is_ssl_request(d: &Prefix<'_>) -> bool {
    d.starts_with(&SSL_REQUEST)
}

#[inline(always)]
fn is_gssenc_request(d: &Prefix<'_>) -> bool {
    d.starts_with(&GSSENC_REQUEST)
}

#[inline(always)]
fn is_cancel_request(d: &Prefix<'_>) -> bool {
    d.has(16) && d.be32(0) == 16 && d.be32(4) == CANCEL_CODE
}

/// StartupMessage: sane length, protocol 3.0, then `key\0value\0` pairs
/// (the first key starts with a letter: `user`, `database`, ...).
#[inline(always)]
fn is_startup(d: &Prefix<'_>) -> bool {
    let len = d.be32(0);
    d.has(9)
        && d.be32(4) == PROTOCOL_3
        && (9..=MAX_STARTUP).contains(&len)
        && d.at(8).is_ascii_lowercase()
}

/// A frontend Query (`Q`, int32 length, SQL text): what a flow seen
/// mid-stream shows first.
#[inline(always)]
fn is_query(d: &Prefix<'_>) -> bool {
    let len = d.be32(1) as usize;
    d.has(6)
        && d.at(0) == b'Q'
        && (5..1 << 24).contains(&len)
        && len + 1 >= d.len()
        && d.at(5).is_ascii_alphabetic()
}

/// AuthenticationCleartextPassword.
#[inline(always)]
fn asks_cleartext_password(d: &Prefix<'_>) -> bool {
    d.at(0) == b'R' && d.be32(1) == 8 && d.be32(5) == AUTH_CLEARTEXT
}

#[cfg(test)]
mod tests {
    use crate::classify::testing::upgraded;
    use crate::{Protocol, Reason, TlsVersion, Verdict};

    // --- PostgreSQL (psql 15 against PostgreSQL 15) --------------------------------


    #[test]
    fn psql_startup_without_tls_is_plaintext_postgres() {
        // StartupMessage, then the server's SASL (SCRAM) request decides.
        let v = replay!("psql-15-scram-sslmode-disable": "c2s.0", "s2c.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Postgres)));
    }

    #[test]
    fn psql_sslrequest_answered_s_is_postgres_over_tls_1_3() {
        // SSLRequest, `S`, ClientHello, ServerHello: the version comes from TLS.
        let v = replay!("psql-15-sslmode-require": "c2s.0", "s2c.0", "c2s.1", "s2c.1");
        assert_eq!(v, Some(upgraded(Protocol::Postgres, TlsVersion::Tls13)));
    }

    #[test]
    fn psql_sslrequest_answered_s_without_server_hello_is_still_tls() {
        let v = replay!("psql-15-sslmode-require": "c2s.0", "s2c.0");
        assert_eq!(v, Some(upgraded(Protocol::Postgres, TlsVersion::Unknown)));
    }

    #[test]
    fn psql_sslrequest_answered_n_is_plaintext_starttls_refused() {
        // sslmode=prefer against ssl=off: `N`, then the StartupMessage in the
        // clear; the server's authentication request decides.
        let v = replay!("psql-15-sslmode-prefer-refused": "c2s.0", "s2c.0", "c2s.1", "s2c.1");
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Postgres).with_reason(Reason::StarttlsRefused))
        );
    }

    #[test]
    fn postgres_cleartext_password_request_is_cleartext_credentials() {
        // pg_hba `password`: AuthenticationCleartextPassword (R, 8, 3).
        let v = replay!("psql-15-cleartext-password": "c2s.0", "s2c.0");
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Postgres).with_reason(Reason::CleartextCredentials))
        );
    }

    #[test]
    fn postgres_startup_alone_is_plaintext_postgres_on_close() {
        let v = replay!("psql-15-scram-sslmode-disable": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Postgres)));
    }
}
