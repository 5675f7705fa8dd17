//! SMTP, IMAP and POP3: server-first text protocols with an in-band TLS
//! upgrade.
//!
//! The server greets first: SMTP `220 ` (or `220-` for a multi-line
//! greeting; FTP greets with `220` too, see `ftp.rs`), IMAP `* OK` /
//! `* PREAUTH`, POP3 `+OK`. The client may then ask for TLS (SMTP/IMAP
//! `STARTTLS`, POP3 `STLS`); a positive answer (`220`, `<tag> OK`, `+OK`)
//! means the next bytes are a TLS handshake, a negative one that the
//! session goes on in cleartext. Credentials in the clear: `USER`/`PASS`
//! (POP3), `AUTH PLAIN`/`AUTH LOGIN` (SMTP, POP3; base64 is not
//! encryption), `<tag> LOGIN` / `<tag> AUTHENTICATE PLAIN` (IMAP).

use super::bytes::Prefix;

/// IMAP tags are short (`a001`, `A1`, `1`): the command word starts within
/// this many bytes.
const TAG_SPAN: usize = 12;

#[must_use]
#[inline(always)]
pub fn is_220(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"220 ") || d.eq_at(0, b"220-")
}

/// The 220 greeting names SMTP (`ESMTP`, `SMTP`, `Postfix`, `Exim`).
#[must_use]
#[inline(always)]
pub fn names_smtp(d: &Prefix<'_>) -> bool {
    d.find_ci(b"smtp", 80)
}

#[must_use]
#[inline(always)]
pub fn is_imap_greeting(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"* OK") || d.eq_at(0, b"* PREAUTH")
}

#[must_use]
#[inline(always)]
pub fn is_pop3_greeting(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"+OK")
}

/// SMTP client commands that only SMTP has.
#[must_use]
#[inline(always)]
pub fn is_smtp_command(d: &Prefix<'_>) -> bool {
    d.eq_at_ci(0, b"ehlo ") || d.eq_at_ci(0, b"helo ") || d.eq_at_ci(0, b"mail from:")
}

/// SMTP/IMAP `STARTTLS`, POP3 `STLS`.
#[must_use]
#[inline(always)]
pub fn is_starttls(d: &Prefix<'_>) -> bool {
    d.eq_at_ci(0, b"starttls") || d.eq_at_ci(0, b"stls\r\n") || d.find_ci(b" starttls", TAG_SPAN)
}

/// The positive answer to a STARTTLS-style command.
#[must_use]
#[inline(always)]
pub fn is_upgrade_ok(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"220") || d.eq_at(0, b"+OK") || d.find_ci(b" ok", TAG_SPAN)
}

/// Credentials in the clear, in the commands of any of the three.
#[must_use]
#[inline(always)]
pub fn has_credentials(d: &Prefix<'_>) -> bool {
    d.eq_at_ci(0, b"user ")
        || d.eq_at_ci(0, b"pass ")
        || d.eq_at_ci(0, b"auth plain")
        || d.eq_at_ci(0, b"auth login")
        || d.find_ci(b" login ", TAG_SPAN)
        || d.find_ci(b" authenticate plain", TAG_SPAN)
}
