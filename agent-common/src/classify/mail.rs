//! SMTP, IMAP, POP3 and FTP: server-first text protocols with an in-band
//! TLS upgrade. One state machine: SMTP and FTP both greet with `220`, and
//! the client's first command may be what tells them apart.
//!
//! The server greets first: SMTP `220 ` (or `220-` for a multi-line
//! greeting; FTP greets with `220` too, see `ftp.rs`), IMAP `* OK` /
//! `* PREAUTH`, POP3 `+OK`. The client may then ask for TLS (SMTP/IMAP
//! `STARTTLS`, POP3 `STLS`); a positive answer (`220`, `<tag> OK`, `+OK`)
//! means the next bytes are a TLS handshake, a negative one that the
//! session goes on in cleartext. Credentials in the clear: `USER`/`PASS`
//! (POP3), `AUTH PLAIN`/`AUTH LOGIN` (SMTP, POP3; base64 is not
//! encryption), `<tag> LOGIN` / `<tag> AUTHENTICATE PLAIN` (IMAP).
//!
//! FTP control connections: the greeting usually says `FTP` (`220
//! (vsFTPd 3.0.3)`), and the client's first commands tell FTP and SMTP
//! apart anyway (`USER`, `AUTH TLS`, `FEAT`, `SYST` vs `EHLO`). `AUTH TLS`
//! (or `AUTH SSL`, RFC 4217) answered `234` upgrades the control
//! connection to TLS; `USER`/`PASS` in the clear are credentials (even
//! `anonymous`: the server takes whatever password follows).

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Reason, Verdict};

pub struct Mail;

/// Greeting seen: watching the client's commands.
const COMMANDS: u8 = 0;
/// STARTTLS (or STLS, AUTH TLS) sent: the answer decides.
const UPGRADE: u8 = 1;

impl Dissector for Mail {
    const STEPS: u8 = 2;
    const AWAITS_UPGRADE_ANSWER: Option<u8> = Some(UPGRADE);

    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client {
            return PENDING;
        }
        if is_220(d) {
            let proto = if names_smtp(d) {
                Protocol::Smtp
            } else if names_ftp(d) {
                Protocol::Ftp
            } else {
                // Decided by the client's first command.
                Protocol::Unknown
            };
            return f.opened::<Self>(proto, COMMANDS);
        }
        if is_imap_greeting(d) {
            return f.opened::<Self>(Protocol::Imap, COMMANDS);
        }
        if is_pop3_greeting(d) {
            return f.opened::<Self>(Protocol::Pop3, COMMANDS);
        }
        PENDING
    }

    #[inline(always)]
    fn step(f: &mut FlowClassifier, step: u8, side: Side, d: &Prefix<'_>) -> Verdict {
        if step == UPGRADE {
            if side == Side::Client {
                return PENDING;
            }
            if is_upgrade_ok(d) || is_auth_tls_ok(d) {
                f.upgrade_accepted();
            } else {
                f.upgrade_refused();
                f.goto::<Self>(COMMANDS);
            }
            return PENDING;
        }
        if side == Side::Server {
            return PENDING;
        }
        if f.protocol() == Protocol::Unknown {
            // A bare 220 greeting: the first command names the protocol.
            if is_smtp_command(d) {
                f.name(Protocol::Smtp);
            } else if is_ftp_command(d) || d.eq_at_ci(0, b"user ") {
                f.name(Protocol::Ftp);
            }
        }
        if is_starttls(d) || is_auth_tls(d) {
            f.goto::<Self>(UPGRADE);
            return PENDING;
        }
        if has_credentials(d) {
            return Verdict::plaintext(f.protocol()).with_reason(Reason::CleartextCredentials);
        }
        PENDING
    }
}

/// IMAP tags are short (`a001`, `A1`, `1`): the command word starts within
/// this many bytes.
const TAG_SPAN: usize = 12;

#[inline(always)]
fn is_220(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"220 ") || d.eq_at(0, b"220-")
}

/// The 220 greeting names SMTP (`ESMTP`, `SMTP`, `Postfix`, `Exim`).
#[inline(always)]
fn names_smtp(d: &Prefix<'_>) -> bool {
    d.find_ci(b"smtp", 80)
}

#[inline(always)]
fn is_imap_greeting(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"* OK") || d.eq_at(0, b"* PREAUTH")
}

#[inline(always)]
fn is_pop3_greeting(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"+OK")
}

/// SMTP client commands that only SMTP has.
#[inline(always)]
fn is_smtp_command(d: &Prefix<'_>) -> bool {
    d.eq_at_ci(0, b"ehlo ") || d.eq_at_ci(0, b"helo ") || d.eq_at_ci(0, b"mail from:")
}

/// SMTP/IMAP `STARTTLS`, POP3 `STLS`.
#[inline(always)]
fn is_starttls(d: &Prefix<'_>) -> bool {
    d.eq_at_ci(0, b"starttls") || d.eq_at_ci(0, b"stls\r\n") || d.find_ci(b" starttls", TAG_SPAN)
}

/// The positive answer to a STARTTLS-style command.
#[inline(always)]
fn is_upgrade_ok(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"220") || d.eq_at(0, b"+OK") || d.find_ci(b" ok", TAG_SPAN)
}

/// Credentials in the clear, in the commands of any of the four.
#[inline(always)]
fn has_credentials(d: &Prefix<'_>) -> bool {
    d.eq_at_ci(0, b"user ")
        || d.eq_at_ci(0, b"pass ")
        || d.eq_at_ci(0, b"auth plain")
        || d.eq_at_ci(0, b"auth login")
        || d.find_ci(b" login ", TAG_SPAN)
        || d.find_ci(b" authenticate plain", TAG_SPAN)
}

#[inline(always)]
fn names_ftp(d: &Prefix<'_>) -> bool {
    d.find_ci(b"ftp", 80)
}

/// Commands only an FTP client sends first.
#[inline(always)]
fn is_ftp_command(d: &Prefix<'_>) -> bool {
    is_auth_tls(d)
        || d.eq_at_ci(0, b"feat\r\n")
        || d.eq_at_ci(0, b"syst\r\n")
        || d.eq_at_ci(0, b"opts ")
}

#[inline(always)]
fn is_auth_tls(d: &Prefix<'_>) -> bool {
    d.eq_at_ci(0, b"auth tls") || d.eq_at_ci(0, b"auth ssl")
}

/// `234 Proceed with negotiation.`
#[inline(always)]
fn is_auth_tls_ok(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"234")
}
