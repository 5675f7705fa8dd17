//! FTP control connections.
//!
//! The server greets with `220` like SMTP; the greeting usually says `FTP`
//! (`220 (vsFTPd 3.0.3)`), and the client's first commands tell the two
//! apart anyway (`USER`, `AUTH TLS`, `FEAT`, `SYST` vs `EHLO`). `AUTH TLS`
//! (or `AUTH SSL`, RFC 4217) answered `234` upgrades the control
//! connection to TLS; `USER`/`PASS` in the clear are credentials (even
//! `anonymous`: the server takes whatever password follows).

use super::bytes::Prefix;

#[must_use]
#[inline(always)]
pub fn names_ftp(d: &Prefix<'_>) -> bool {
    d.find_ci(b"ftp", 80)
}

/// Commands only an FTP client sends first.
#[must_use]
#[inline(always)]
pub fn is_ftp_command(d: &Prefix<'_>) -> bool {
    is_auth_tls(d)
        || d.eq_at_ci(0, b"feat\r\n")
        || d.eq_at_ci(0, b"syst\r\n")
        || d.eq_at_ci(0, b"opts ")
}

#[must_use]
#[inline(always)]
pub fn is_auth_tls(d: &Prefix<'_>) -> bool {
    d.eq_at_ci(0, b"auth tls") || d.eq_at_ci(0, b"auth ssl")
}

/// `234 Proceed with negotiation.`
#[must_use]
#[inline(always)]
pub fn is_auth_tls_ok(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"234")
}
