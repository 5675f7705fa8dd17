//! MySQL / MariaDB client/server protocol.
//!
//! Packets are `int24 length (LE), seq, payload`. The server speaks first:
//! the Initial Handshake (seq 0, protocol `0a`, NUL-terminated version
//! string), or an ERR packet (`ff`) when it refuses the host. The client
//! answers with seq 1: either a 32-byte SSLRequest whose capability flags
//! carry CLIENT_SSL (0x0800), after which TLS starts, or a full
//! HandshakeResponse without it (user name and auth data in the clear). A
//! server that switches the client to `mysql_clear_password`
//! (AuthSwitchRequest, `fe` + plugin name) asks for the password as is.
//!
//! A greeting without CLIENT_SSL is not `starttls_refused`: the client
//! never asked, so nothing was refused (as a PostgreSQL client that sends
//! no SSLRequest). `starttls_refused` stays for a request answered no
//! (PostgreSQL `N`, STARTTLS answered with an error); MySQL has no such
//! answer, a server without TLS just does not offer it. The corpus agrees:
//! MySQL 5.0.54 (caps 0xa22c), 5.1.67 (0xf7ff, 10 logins) and MariaDB 10.6
//! (0xf7fe) greetings lack CLIENT_SSL and are labelled plaintext without a
//! reason.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Reason, Verdict};

pub struct Mysql;

/// Greeting seen: the client's answer says TLS or not.
const GREETED: u8 = 0;
/// HandshakeResponse in the clear: an AuthSwitch may follow.
const AUTH: u8 = 1;

impl Dissector for Mysql {
    const STEPS: u8 = 2;

    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client {
            return PENDING;
        }
        if is_greeting(d) {
            return f.opened::<Self>(Protocol::Mysql, GREETED);
        }
        if is_greeting_error(d) {
            f.open();
            return Verdict::plaintext(Protocol::Mysql);
        }
        PENDING
    }

    /// A command: not an opening message.
    #[inline(always)]
    fn midstream(_f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client && is_command(d) {
            return Verdict::plaintext(Protocol::Mysql);
        }
        PENDING
    }

    #[inline(always)]
    fn step(f: &mut FlowClassifier, step: u8, side: Side, d: &Prefix<'_>) -> Verdict {
        if step == GREETED {
            if side == Side::Server {
                return PENDING;
            }
            return match response(d) {
                Response::SslRequest => {
                    f.upgrade_accepted();
                    // SSLRequest and ClientHello in one segment.
                    if d.at(36) == 0x16 && d.at(37) == 3 {
                        f.expect_server_hello();
                    }
                    PENDING
                }
                Response::Cleartext => {
                    f.goto::<Self>(AUTH);
                    PENDING
                }
                Response::Not => Verdict::plaintext(Protocol::Mysql),
            };
        }
        if side == Side::Client {
            return PENDING;
        }
        if asks_clear_password(d) {
            return Verdict::plaintext(Protocol::Mysql).with_reason(Reason::CleartextCredentials);
        }
        Verdict::plaintext(Protocol::Mysql)
    }
}

const PROTOCOL_10: u8 = 0x0a;
const ERR: u8 = 0xff;
const AUTH_SWITCH: u8 = 0xfe;
/// CLIENT_SSL (0x0800) in the low capability word: bit 3 of byte 5.
const CLIENT_SSL_BYTE5: u8 = 0x08;
/// CLIENT_PROTOCOL_41 (0x0200): bit 1 of byte 5; every client since 4.1.
const CLIENT_PROTOCOL_41_BYTE5: u8 = 0x02;
const SSL_REQUEST_LEN: u32 = 32;

/// Initial Handshake v10: sane length, seq 0, `0a`, version starting with a
/// digit (`8.0.36`, `5.5.5-10.11.6-MariaDB`).
#[inline(always)]
fn is_greeting(d: &Prefix<'_>) -> bool {
    let len = d.le24(0);
    d.has(10)
        && (20..1024).contains(&len)
        && d.at(3) == 0
        && d.at(4) == PROTOCOL_10
        && d.at(5).is_ascii_digit()
}

/// An ERR packet in place of the greeting (`Host '...' is not allowed`).
#[inline(always)]
fn is_greeting_error(d: &Prefix<'_>) -> bool {
    let len = d.le24(0);
    d.has(9)
        && (4..1024).contains(&len)
        && d.at(3) == 0
        && d.at(4) == ERR
        && d.at(7).is_ascii_graphic()
}

/// What the client answers the greeting with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Response {
    Not,
    SslRequest,
    Cleartext,
}

#[inline(always)]
fn response(d: &Prefix<'_>) -> Response {
    let len = d.le24(0);
    if !d.has(36)
        || d.at(3) != 1
        || !(SSL_REQUEST_LEN..1 << 16).contains(&len)
        || d.at(5) & CLIENT_PROTOCOL_41_BYTE5 == 0
    {
        return Response::Not;
    }
    if d.at(5) & CLIENT_SSL_BYTE5 != 0 {
        Response::SslRequest
    } else {
        Response::Cleartext
    }
}

/// AuthSwitchRequest to `mysql_clear_password`.
#[inline(always)]
fn asks_clear_password(d: &Prefix<'_>) -> bool {
    d.at(4) == AUTH_SWITCH && d.eq_at(5, b"mysql_clear_password\0")
}

/// A command packet (seq 0) as a flow seen mid-stream shows first:
/// COM_QUERY (03) or COM_STMT_PREPARE (16) with SQL text.
#[inline(always)]
fn is_command(d: &Prefix<'_>) -> bool {
    let len = d.le24(0) as usize;
    let cmd = d.at(4);
    d.has(6)
        && d.at(3) == 0
        && len >= 2
        && len + 4 >= d.len()
        && (cmd == 0x03 || cmd == 0x16)
        && d.at(5).is_ascii_alphabetic()
}

#[cfg(test)]
mod tests {
    use crate::classify::testing::upgraded;
    use crate::{Protocol, TlsVersion, Verdict};

    // --- MySQL / MariaDB (mariadb 10.11 client and server) --------------------------

    #[test]
    fn mariadb_ssl_request_is_mysql_over_tls_1_3() {
        // Greeting, the 32-byte SSLRequest with CLIENT_SSL, ClientHello,
        // ServerHello.
        let v = replay!("mariadb-10.11-ssl": "s2c.0", "c2s.0", "c2s.1", "s2c.1");
        assert_eq!(v, Some(upgraded(Protocol::Mysql, TlsVersion::Tls13)));
    }

    #[test]
    fn mariadb_handshake_response_without_ssl_is_plaintext_mysql() {
        // --skip-ssl: a full HandshakeResponse (user name in the clear); the
        // server's OK (no switch to mysql_clear_password) decides.
        let v = replay!("mariadb-10.11-skip-ssl": "s2c.0", "c2s.0", "s2c.1");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Mysql)));
    }

    #[test]
    fn mariadb_greeting_alone_is_plaintext_mysql_on_close() {
        let v = replay!("mariadb-10.11-skip-ssl": "s2c.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Mysql)));
    }
}
