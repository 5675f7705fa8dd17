//! HTTP/1.x requests and responses, and the HTTP/2 prior-knowledge preface.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Http;

impl Dissector for Http {
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, _side: Side, d: &Prefix<'_>) -> Verdict {
        if is_h2_preface(d) {
            f.open();
            return Verdict::plaintext(Protocol::Http2);
        }
        if is_request(d) {
            f.open();
            return Verdict::plaintext(Protocol::Http);
        }
        if is_response(d) {
            return Verdict::plaintext(Protocol::Http);
        }
        PENDING
    }
}

const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"TRACE ",
    b"CONNECT ",
];

/// An HTTP/1.x request line starts with a method and a space.
fn is_request(d: &Prefix<'_>) -> bool {
    let mut i = 0;
    while i < METHODS.len() {
        if d.starts_with(METHODS[i]) {
            return true;
        }
        i += 1;
    }
    false
}

fn is_response(d: &Prefix<'_>) -> bool {
    d.starts_with(b"HTTP/1.")
}

/// The client connection preface of HTTP/2 over cleartext (h2c, gRPC).
fn is_h2_preface(d: &Prefix<'_>) -> bool {
    d.starts_with(b"PRI * HTTP/2.0\r\n")
}

#[cfg(test)]
mod tests {
    use crate::classify::testing::classify;
    use crate::classify::Side;
    use crate::{Protocol, Verdict};

    // --- HTTP --------------------------------------------------------------------

    #[test]
    fn curl_http_get_is_plaintext_http() {
        let v = replay!("curl-7.88-http-python-3.11": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Http)));
    }

    #[test]
    fn curl_http_get_to_nginx_is_plaintext_http() {
        let v = replay!("curl-7.88-http-nginx-1.22": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Http)));
    }

    #[test]
    fn python_http_response_is_plaintext_http() {
        // HTTP/1.0 status line from http.server, seen without the request.
        let v = classify(&[(
            Side::Server,
            fixture!("curl-7.88-http-python-3.11", "s2c.0"),
        )]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Http)));
    }

    #[test]
    fn nginx_http_response_is_plaintext_http() {
        let v = classify(&[(Side::Server, fixture!("curl-7.88-http-nginx-1.22", "s2c.0"))]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Http)));
    }

    #[test]
    fn h2c_preface_is_plaintext_http2() {
        // curl --http2-prior-knowledge: preface and SETTINGS in one segment.
        let v = replay!("curl-7.88-h2c-nginx-1.22": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Http2)));
    }
}
