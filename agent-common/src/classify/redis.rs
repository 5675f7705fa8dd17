//! Redis (RESP2/RESP3).
//!
//! Clients send commands as RESP arrays of bulk strings (`*N\r\n$len\r\n`)
//! or as inline text (`PING\r\n`); the server never speaks first. Replies
//! start with a type byte: `+` simple string, `-` error, `:` integer, `$`
//! bulk, `*` array, and in RESP3 `%` map, `|` attribute, `>` push, `_`
//! null, `#` boolean, `,` double. `AUTH password` and `HELLO 3 AUTH user
//! password` carry the password as is; clients send them first.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Reason, Verdict};

pub struct Redis;

impl Dissector for Redis {
    /// Registered before the mail protocols: a `+OK` after the client spoke
    /// (or in a flow picked up mid-stream) is a Redis reply, not a POP3
    /// greeting (POP3 speaks first, Redis never does).
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Server {
            // Mid-stream, before the client said anything, `+OK <text>` is
            // a POP3 greeting or reply (Redis's `+OK` ends the line):
            // left to `mail`.
            let pop3_like = f.segments(Side::Client) == 0 && d.eq_at(0, b"+OK ");
            if f.client_spoke() && is_reply(d) && !pop3_like {
                return Verdict::plaintext(Protocol::Redis);
            }
            return PENDING;
        }
        match command(d) {
            Command::Auth => {
                f.open();
                Verdict::plaintext(Protocol::Redis).with_reason(Reason::CleartextCredentials)
            }
            Command::Plain => {
                f.open();
                Verdict::plaintext(Protocol::Redis)
            }
            Command::Not => PENDING,
        }
    }
}

/// A client command, and whether it carries a password.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Command {
    Not,
    Plain,
    Auth,
}

#[inline(always)]
fn command(d: &Prefix<'_>) -> Command {
    if d.at(0) == b'*' && d.at(1).is_ascii_digit() {
        // `*N\r\n$` with a one- or two-digit N.
        if d.eq_at(2, b"\r\n$") {
            return array_command(d, 4);
        }
        if d.at(2).is_ascii_digit() && d.eq_at(3, b"\r\n$") {
            return array_command(d, 5);
        }
        return Command::Not;
    }
    // `HELLO <protover>`: a bare "hello " is just a friendly text protocol.
    let hello = d.eq_at_ci(0, b"hello ") && d.at(6).is_ascii_digit();
    if d.eq_at_ci(0, b"auth ") || (hello && d.find_ci(b" auth ", 24)) {
        return Command::Auth;
    }
    if d.eq_at_ci(0, b"ping\r\n") || hello {
        return Command::Plain;
    }
    Command::Not
}

/// The first bulk string of a RESP array, at `o`, names the command.
#[inline(always)]
fn array_command(d: &Prefix<'_>, o: usize) -> Command {
    if d.eq_at_ci(o, b"$4\r\nauth\r\n") {
        return Command::Auth;
    }
    // HELLO protover AUTH user pass: `$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH`.
    if d.eq_at_ci(o, b"$5\r\nhello\r\n$1\r\n") && d.eq_at_ci(o + 18, b"$4\r\nauth\r\n") {
        return Command::Auth;
    }
    Command::Plain
}

/// A server reply: a type byte, what must follow it, and a line end at the end
/// of the segment (unless the segment is longer than the prefix).
#[inline(always)]
fn is_reply(d: &Prefix<'_>) -> bool {
    let t = d.at(0);
    let next = d.at(1);
    let num = next.is_ascii_digit() || next == b'-';
    let head = match t {
        b'+' => next.is_ascii_alphanumeric(),
        b'-' => next.is_ascii_uppercase(),
        b':' | b'$' | b'*' | b'%' | b'|' | b'>' => num,
        b'_' => next == b'\r',
        b'#' => next == b't' || next == b'f',
        _ => false,
    };
    head && d.has(3) && ends_with_crlf(d)
}

#[inline(always)]
fn ends_with_crlf(d: &Prefix<'_>) -> bool {
    // The last byte is enough (`\n`): some servers' replies end `\r\n\n`.
    d.has(crate::wire::PREFIX) || d.at_var(d.len() - 1) == b'\n'
}

#[cfg(test)]
mod tests {
    use crate::classify::testing::classify_midstream;
    use crate::classify::Side;
    use crate::{Protocol, Reason, Verdict};

    // --- Redis (redis-cli 7.0 against redis-server 7.0) ------------------------------

    #[test]
    fn redis_resp_command_is_plaintext_redis() {
        let v = replay!("redis-cli-7.0-set": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Redis)));
    }

    #[test]
    fn redis_auth_is_cleartext_credentials() {
        // redis-cli --user app --pass ...: `AUTH app app-pw` first.
        let v = replay!("redis-cli-7.0-auth": "c2s.0");
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Redis).with_reason(Reason::CleartextCredentials))
        );
    }

    #[test]
    fn redis_resp3_client_auth_is_cleartext_credentials() {
        let v = replay!("redis-cli-7.0-resp3-auth": "c2s.0");
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Redis).with_reason(Reason::CleartextCredentials))
        );
    }

    #[test]
    fn redis_inline_ping_is_plaintext_redis() {
        let v = replay!("redis-cli-7.0-inline-ping": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Redis)));
    }

    #[test]
    fn redis_reply_seen_first_midstream_is_redis_midstream() {
        // `+OK\r\n` from the server of a flow picked up mid-stream: a reply,
        // so Redis (a POP3 greeting only comes first on a fresh flow).
        let v = classify_midstream(&[(Side::Server, fixture!("redis-cli-7.0-set", "s2c.0"))]);
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Redis).with_reason(Reason::Midstream))
        );
    }

    #[test]
    fn pop3_greeting_seen_first_midstream_is_not_redis() {
        // dovecot's `+OK Dovecot ready.`: a Redis `+OK` ends the line.
        let v = classify_midstream(&[(
            Side::Server,
            fixture!("curl-7.88-pop3-login-dovecot-2.3", "s2c.0"),
        )]);
        assert_eq!(v.map(|v| v.protocol), Some(Protocol::Pop3));
    }
}
