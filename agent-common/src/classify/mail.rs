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

/// A segment of an `ftp` control connection that announces where a data
/// connection goes: the server's `227` (PASV) / `229` (EPSV) reply, the
/// client's `PORT` / `EPRT` command. What of the control connection is
/// read after its verdict, bounded to the prefix (an address and a port);
/// `agent/src/pipeline/ftp_data.rs` parses it and names the data flow.
#[must_use]
#[inline(always)]
pub fn ftp_announces(side: Side, d: &Prefix<'_>) -> bool {
    if side == Side::Server {
        d.eq_at(0, b"227 ") || d.eq_at(0, b"229 ")
    } else {
        d.eq_at_ci(0, b"port ") || d.eq_at_ci(0, b"eprt ")
    }
}

/// `234 Proceed with negotiation.`
#[inline(always)]
fn is_auth_tls_ok(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"234")
}

#[cfg(test)]
mod tests {
    use crate::classify::testing::{upgraded, refused, credentials};
    use crate::{Protocol, Reason, TlsVersion, Verdict};

    // --- IMAP / POP3 (curl 7.88 against dovecot 2.3) ------------------------------

    #[test]
    fn imap_authenticate_plain_is_cleartext_credentials() {
        // Greeting, CAPABILITY, then `A002 AUTHENTICATE PLAIN <base64>`.
        let v = replay!("curl-7.88-imap-login-dovecot-2.3": "s2c.0", "c2s.0", "s2c.1", "c2s.1");
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Imap).with_reason(Reason::CleartextCredentials))
        );
    }

    #[test]
    fn imap_starttls_accepted_is_imap_over_tls_1_3() {
        let v = replay!("curl-7.88-imap-starttls-dovecot-2.3":
            "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2", "c2s.2", "s2c.3");
        assert_eq!(v, Some(upgraded(Protocol::Imap, TlsVersion::Tls13)));
    }

    #[test]
    fn pop3_auth_plain_is_cleartext_credentials() {
        let v = replay!("curl-7.88-pop3-login-dovecot-2.3": "s2c.0", "c2s.0", "s2c.1", "c2s.1");
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Pop3).with_reason(Reason::CleartextCredentials))
        );
    }

    #[test]
    fn pop3_stls_accepted_is_pop3_over_tls_1_3() {
        let v = replay!("curl-7.88-pop3-starttls-dovecot-2.3":
            "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2", "c2s.2", "s2c.3");
        assert_eq!(v, Some(upgraded(Protocol::Pop3, TlsVersion::Tls13)));
    }

    #[test]
    fn pop3_greeting_and_capabilities_alone_are_plaintext_pop3() {
        let v = replay!("curl-7.88-pop3-login-dovecot-2.3": "s2c.0", "c2s.0", "s2c.1");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Pop3)));
    }

    // --- FTP (curl 7.88 against vsftpd 3.0) -------------------------------------------

    #[test]
    fn ftp_user_in_the_clear_is_cleartext_credentials() {
        // Even `USER anonymous`: the password follows in the clear.
        let v = replay!("curl-7.88-ftp-anonymous-vsftpd-3.0": "s2c.0", "c2s.0");
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Ftp).with_reason(Reason::CleartextCredentials))
        );
    }

    #[test]
    fn ftp_auth_tls_accepted_is_ftp_over_tls_1_3() {
        // curl sends `AUTH SSL`; vsftpd answers 234, then a TLS 1.3 handshake.
        let v =
            replay!("curl-7.88-ftp-auth-tls-vsftpd-3.0": "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2");
        assert_eq!(v, Some(upgraded(Protocol::Ftp, TlsVersion::Tls13)));
    }

    #[test]
    fn ftp_greeting_alone_is_plaintext_ftp() {
        let v = replay!("curl-7.88-ftp-anonymous-vsftpd-3.0": "s2c.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Ftp)));
    }

    #[test]
    fn ftp_data_announcements_are_picked_from_their_senders_only() {
        use super::ftp_announces;
        use crate::classify::{PrefixBuf, Side};
        // vsftpd's `229 Entering Extended Passive Mode (|||40028|)`.
        let pasv = PrefixBuf::new(fixture!("curl-7.88-ftp-anonymous-vsftpd-3.0", "s2c.4"));
        let port = PrefixBuf::new(b"PORT 127,0,0,1,156,64\r\n");
        assert!(ftp_announces(Side::Server, &pasv.prefix()));
        assert!(!ftp_announces(Side::Client, &pasv.prefix()));
        assert!(ftp_announces(Side::Client, &port.prefix()));
        assert!(!ftp_announces(Side::Server, &port.prefix()));
        let user = PrefixBuf::new(fixture!("curl-7.88-ftp-anonymous-vsftpd-3.0", "c2s.0"));
        assert!(!ftp_announces(Side::Client, &user.prefix()));
    }

    // --- STARTTLS refused (openssl s_client -starttls asks whether or not the
    // server offers it, and starts its handshake whatever the answer) ----------

    #[test]
    fn imap_starttls_refused_then_client_hello_is_plaintext_starttls_refused() {
        // `. BAD TLS support isn't enabled.`, s_client's ClientHello anyway,
        // dovecot's `* BAD` to it: no TLS ever ran.
        let v = replay!("openssl-3.0-s_client-imap-starttls-refused-dovecot-2.3":
            "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2", "c2s.2", "s2c.3");
        assert_eq!(v, Some(refused(Protocol::Imap)));
    }

    #[test]
    fn pop3_stls_refused_then_client_hello_is_plaintext_starttls_refused() {
        let v = replay!("openssl-3.0-s_client-pop3-stls-refused-dovecot-2.3":
            "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2");
        assert_eq!(v, Some(refused(Protocol::Pop3)));
    }

    #[test]
    fn ftp_auth_tls_refused_then_client_hello_is_plaintext_starttls_refused() {
        // vsftpd with ssl_enable=NO answers AUTH TLS `530`.
        let v = replay!("openssl-3.0-s_client-ftp-auth-tls-refused-vsftpd-3.0":
            "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2");
        assert_eq!(v, Some(refused(Protocol::Ftp)));
    }

    #[test]
    fn smtp_starttls_refused_then_client_hello_is_plaintext_starttls_refused() {
        // aiosmtpd without a TLS context: `454 TLS not available`.
        let v = replay!("openssl-3.0-s_client-smtp-starttls-refused-aiosmtpd-1.4":
            "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2", "c2s.2", "s2c.3");
        assert_eq!(v, Some(refused(Protocol::Smtp)));
    }

    #[test]
    fn ftp_auth_refused_then_user_in_the_clear_is_cleartext_credentials() {
        // curl --ssl (TLS if possible): AUTH SSL and AUTH TLS refused, then
        // USER/PASS in the clear; the credentials outrank the refusal.
        let v = replay!("curl-7.88-ftp-ssl-try-refused-vsftpd-3.0":
            "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2", "c2s.2");
        assert_eq!(v, Some(credentials(Protocol::Ftp)));
    }

    // --- STARTTLS not offered: the client never asks ---------------------------

    #[test]
    fn imap_without_starttls_offered_login_is_cleartext_credentials() {
        // dovecot with ssl = no; curl --ssl does not ask when CAPABILITY lacks it.
        let v = replay!("curl-7.88-imap-ssl-try-not-offered-dovecot-2.3": "s2c.0", "c2s.0", "s2c.1", "c2s.1");
        assert_eq!(v, Some(credentials(Protocol::Imap)));
    }

    #[test]
    fn pop3_without_stls_offered_login_is_cleartext_credentials() {
        let v = replay!("curl-7.88-pop3-ssl-try-not-offered-dovecot-2.3": "s2c.0", "c2s.0", "s2c.1", "c2s.1");
        assert_eq!(v, Some(credentials(Protocol::Pop3)));
    }

    // --- SMTP (curl 7.88, swaks, s_client against aiosmtpd 1.4) ------------------
    // aiosmtpd writes each EHLO line on its own: when the proxy reads them one
    // by one, the server's six segments are spent before it answers STARTTLS.

    #[test]
    fn smtp_starttls_accepted_is_smtp_over_tls_version_past_the_budget() {
        // The `220 Ready` and the ServerHello come after the server's sixth
        // segment: the client's ClientHello after STARTTLS decides TLS, and
        // the version stays unknown.
        let v = replay!("curl-7.88-smtp-starttls-aiosmtpd-1.4":
            "s2c.0", "c2s.0", "s2c.1", "s2c.2", "s2c.3", "s2c.4", "s2c.5",
            "c2s.1", "c2s.2", "c2s.3", "c2s.4", "c2s.5");
        assert_eq!(v, Some(upgraded(Protocol::Smtp, TlsVersion::Unknown)));
    }

    #[test]
    fn smtp_starttls_offered_but_unused_is_plaintext_smtp_without_reason() {
        // The EHLO reply offers STARTTLS; curl without --ssl sends MAIL FROM.
        let v = replay!("curl-7.88-smtp-starttls-offered-unused-aiosmtpd-1.4":
            "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2", "c2s.2", "s2c.3", "c2s.3",
            "s2c.4", "c2s.4", "c2s.5", "s2c.5");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Smtp)));
    }

    #[test]
    fn smtp_starttls_not_offered_is_plaintext_smtp_without_reason() {
        // curl --ssl does not ask when the EHLO reply lacks STARTTLS.
        let v = replay!("curl-7.88-smtp-ssl-try-not-offered-aiosmtpd-1.4":
            "s2c.0", "c2s.0", "s2c.1", "s2c.2", "s2c.3", "s2c.4", "s2c.5",
            "c2s.1", "c2s.2", "c2s.3", "c2s.4", "c2s.5");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Smtp)));
    }

    #[test]
    fn smtp_auth_plain_is_cleartext_credentials() {
        let v = replay!("curl-7.88-smtp-auth-plain-aiosmtpd-1.4": "s2c.0", "c2s.0", "s2c.1", "c2s.1");
        assert_eq!(v, Some(credentials(Protocol::Smtp)));
    }

    #[test]
    fn smtp_starttls_refused_then_mail_in_the_clear_is_starttls_refused() {
        // swaks --tls-optional: STARTTLS offered, answered 454, and the mail
        // goes on in the clear: the downgrade the reason is for.
        let v = replay!("swaks-20201014-smtp-tls-optional-refused-aiosmtpd-1.4":
            "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2", "c2s.2", "s2c.3", "c2s.3",
            "s2c.4", "c2s.4", "s2c.5", "c2s.5");
        assert_eq!(v, Some(refused(Protocol::Smtp)));
    }

    #[test]
    fn smtp_starttls_unanswered_within_the_budget_then_close_is_starttls_refused() {
        // swaks --tls: the 454 comes after the server's sixth segment, then
        // swaks hangs up. STARTTLS asked, no TLS followed.
        let v = replay!("swaks-20201014-smtp-tls-required-refused-aiosmtpd-1.4":
            "s2c.0", "c2s.0", "s2c.1", "s2c.2", "s2c.3", "s2c.4", "s2c.5", "c2s.1");
        assert_eq!(v, Some(refused(Protocol::Smtp)));
    }
}
