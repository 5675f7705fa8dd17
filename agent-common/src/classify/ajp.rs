//! AJP 1.3 (Apache JServ Protocol): a web server (httpd's mod_proxy_ajp,
//! mod_jk) forwards HTTP requests to a servlet container (Tomcat's AJP
//! connector, 8009) over long-lived connections, in clear. Packets to the
//! container start `12 34` + length, then the type: `02` forward request
//! (method code, then the protocol string `HTTP/1.x`) or `0A` CPing.
//! Packets from it start `AB` + length: `04` send headers (the status),
//! `03` body chunk, `05` end response, `09` CPong.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Ajp;

/// A forward request: magic, type 2, a method code (1..=27 in the spec),
/// then the protocol string's length and `HTTP/`.
#[inline(always)]
fn is_forward_request(d: &Prefix<'_>) -> bool {
    d.eq_at(0, &[0x12, 0x34])
        && d.at(4) == 0x02
        && d.at(5).wrapping_sub(1) < 27
        && d.eq_at(8, b"HTTP/")
}

/// A CPing, alone in its segment: `12 34 00 01 0A`.
#[inline(always)]
fn is_cping(d: &Prefix<'_>) -> bool {
    d.eq_at(0, &[0x12, 0x34, 0x00, 0x01, 0x0a]) && !d.has(6)
}

/// The container's headers for a response: `AB`, a length, `04`, a
/// status 100..=599, then the reason string's length.
#[inline(always)]
fn is_send_headers(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"AB") && d.at(4) == 0x04 && d.be16(5).wrapping_sub(100) < 500 && d.has(9)
}

impl Dissector for Ajp {
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client && (is_forward_request(d) || is_cping(d)) {
            f.open();
            return Verdict::plaintext(Protocol::Ajp);
        }
        PENDING
    }

    /// A pooled connection picked up between requests: the container's
    /// response headers name it too.
    #[inline(always)]
    fn midstream(_f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Server && is_send_headers(d) {
            return Verdict::plaintext(Protocol::Ajp);
        }
        PENDING
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::Side;
    use crate::classify::testing::{classify, classify_midstream};
    use crate::{Protocol, Verdict};

    // --- httpd 2.4 mod_proxy_ajp forwarding curl's GET to Tomcat 10.1 --------------

    #[test]
    fn mod_proxy_ajp_forward_request_is_plaintext_ajp() {
        let v = replay!("apache2-2.4-mod_proxy_ajp-tomcat-10.1": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Ajp)));
    }

    #[test]
    fn tomcat_send_headers_mid_stream_is_ajp() {
        let v = classify_midstream(&[(
            Side::Server,
            fixture!("apache2-2.4-mod_proxy_ajp-tomcat-10.1", "s2c.0"),
        )]);
        assert_eq!(v.map(|v| v.protocol), Some(Protocol::Ajp));
    }

    #[test]
    fn cping_is_ajp() {
        let v = classify(&[(Side::Client, &[0x12, 0x34, 0x00, 0x01, 0x0a])]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Ajp)));
    }

    #[test]
    fn magic_without_a_request_is_not_ajp() {
        let v = classify(&[(Side::Client, b"\x12\x34\x00\x10\x02\x02\x00\x08NOTHTTP\x00")]);
        assert_ne!(v.map(|v| v.protocol), Some(Protocol::Ajp));
    }
}
