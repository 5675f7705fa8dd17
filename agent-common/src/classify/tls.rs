//! TLS and SSL record recognition, the negotiated version from a
//! ServerHello, and which segments may leave the kernel as hello bytes.

use super::{Side, bytes::Prefix};
use crate::TlsVersion;
use crate::wire::{CERT_MAX, HELLO_MAX};

/// What the first bytes of a TLS (or SSLv2) stream say. A plain `u8` enum,
/// no data: an `Option` of an enum with a payload leaves LLVM free to read
/// an undefined payload register on the `None` path, and the verifier
/// rejects arithmetic on whatever that register held (a pointer).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// Not TLS.
    None,
    ClientHello,
    /// `version` names the negotiated version.
    ServerHello,
    /// Any other TLS record (alert, change_cipher_spec, application data,
    /// another handshake message): TLS, but not the start of a handshake.
    Other,
}

const CONTENT_CHANGE_CIPHER_SPEC: u8 = 0x14;
const CONTENT_APPLICATION_DATA: u8 = 0x17;
const HANDSHAKE: u8 = 0x16;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const CERTIFICATE: u8 = 11;
const EXT_SUPPORTED_VERSIONS: u16 = 43;
/// Extensions walked in a ServerHello; real servers send fewer than this.
const MAX_EXTENSIONS: usize = 8;

/// Recognises a TLS record header (`16|14..17 03 00..04`) or an SSLv2 hello.
#[must_use]
#[inline(always)]
pub fn record(d: &Prefix<'_>) -> Record {
    if d.has(5) && d.at(1) == 3 && d.at(2) <= 4 {
        let ct = d.at(0);
        if ct == HANDSHAKE {
            return match d.at(5) {
                CLIENT_HELLO => Record::ClientHello,
                SERVER_HELLO => Record::ServerHello,
                _ => Record::Other,
            };
        }
        if (CONTENT_CHANGE_CIPHER_SPEC..=CONTENT_APPLICATION_DATA).contains(&ct) {
            return Record::Other;
        }
    }
    ssl2(d)
}

/// How far into a segment an application-data record header is looked for
/// when the flow was picked up inside a record (the record's tail first).
const EMBEDDED_SPAN: usize = 64;
/// The longest TLS 1.2 ciphertext record: 2^14 plus 2048 bytes of expansion.
const MAX_RECORD: u16 = 0x4800;

/// An application-data record header (`17 03 01..04`, a plausible length)
/// starts at one of the offsets `1..EMBEDDED_SPAN`: a flow first seen in
/// the middle of a TLS record. Branch-free over the offsets, as `find_ci`.
#[must_use]
#[inline(always)]
pub fn embedded_application_data(d: &Prefix<'_>) -> bool {
    let mut found = 0u32;
    let mut off = 1;
    while off < EMBEDDED_SPAN {
        // Arithmetic, not comparisons: BPF has no conditional set, and a
        // branch per offset would double the verifier's paths each time.
        let len = u32::from(d.be16(off + 3));
        let diff = u32::from(d.at(off) ^ CONTENT_APPLICATION_DATA) | u32::from(d.at(off + 1) ^ 3);
        let minor = u32::from(d.at(off + 2));
        // 1 when diff == 0, 1 <= minor <= 4, 1 <= len <= MAX_RECORD.
        let header = (diff.wrapping_sub(1) >> 31)
            & (minor.wrapping_sub(1).wrapping_sub(4) >> 31)
            & (len.wrapping_sub(1).wrapping_sub(u32::from(MAX_RECORD)) >> 31);
        #[expect(clippy::cast_possible_wrap, reason = "both are at most PREFIX")]
        let inside = ((((off + 5) as i64) - (d.len() as i64) - 1) >> 63) as u32 & 1;
        found |= header & inside;
        off += 1;
    }
    found != 0
}

/// The version a ServerHello (`record` said so) negotiates.
#[must_use]
#[inline(always)]
pub fn version(d: &Prefix<'_>) -> TlsVersion {
    if d.at(0) & 0x80 != 0 {
        TlsVersion::Ssl2
    } else {
        server_hello_version(d)
    }
}

/// The handshake message a hello export carries; the values are TLS
/// handshake types.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelloKind {
    Client = CLIENT_HELLO,
    Server = SERVER_HELLO,
}

/// A payload segment that starts a TLS ClientHello record sent by the
/// client, or a ServerHello record sent by the server: public handshake
/// metadata (version, SNI, ALPN, cipher), the only bytes docs/architecture.md "Verdicts" lets leave
/// the kernel. Only `hello` makes one (the field is private), and the
/// kernel's export takes one, so no other bytes can reach that code.
/// No data besides the kind, so `Option<Hello>` is one byte (see `Record`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello(HelloKind);

impl Hello {
    #[must_use]
    #[inline(always)]
    pub const fn kind(self) -> HelloKind {
        self.0
    }
}

/// The hello this segment starts, if it starts one: the classifier's own
/// recognition (`record`), restricted to TLS records (SSLv2 hellos carry
/// neither SNI nor ALPN) and to the side that sends that hello.
#[must_use]
#[inline(always)]
pub fn hello(d: &Prefix<'_>, side: Side) -> Option<Hello> {
    if d.at(0) != HANDSHAKE {
        return None;
    }
    match (record(d), side) {
        (Record::ClientHello, Side::Client) => Some(Hello(HelloKind::Client)),
        (Record::ServerHello, Side::Server) => Some(Hello(HelloKind::Server)),
        _ => None,
    }
}

/// Bytes of the record a hello starts (header included), as its header
/// says: the export stops there (`export_len`), so bytes after the hello
/// in the same segment (early data, encrypted records) never leave the
/// kernel; only a TLS 1.2 server's Certificate record may follow it out.
#[must_use]
#[inline(always)]
pub fn hello_record_len(d: &Prefix<'_>) -> usize {
    5 + d.be16(3) as usize
}

/// The head of a client's flight after a ServerHello (`FLIGHT_MAX` bytes,
/// all of them read) is a second ClientHello, behind an optional
/// ChangeCipherSpec: the ServerHello was a HelloRetryRequest (RFC 8446
/// 4.1.4), and the flight that shows whether the client sent a certificate
/// comes after the next ServerHello. Both runtimes then wait for it again
/// (agent-ebpf hello.rs `export_flight`, replay).
#[must_use]
#[inline(always)]
pub fn retried_client_hello(head: &[u8; crate::wire::FLIGHT_MAX]) -> bool {
    let ccs = head[0] == 0x14 && head[1] == 3 && head[3] == 0 && head[4] == 1 && head[5] == 1;
    let hello_at = |o: usize| head[o] == 0x16 && head[o + 1] == 3 && head[o + 5] == 1;
    if ccs { hello_at(6) } else { hello_at(0) }
}

/// How many bytes of the segment a hello export takes (before the
/// segment's own end): the hello's record, at most `HELLO_MAX`; for a
/// ServerHello followed, within the prefix, by a handshake record that
/// carries the server's Certificate message (public up to TLS 1.2; TLS 1.3
/// sends a ChangeCipherSpec and encrypted records there), through the end
/// of that record too, at most `HELLO_MAX + CERT_MAX`. One copy for both:
/// a second one would cost the hook programs' verifier ~40k instructions.
#[must_use]
#[inline(always)]
pub fn export_len(d: &Prefix<'_>, hello: Hello) -> usize {
    let record = hello_record_len(d);
    let certificate = hello.kind() == HelloKind::Server
        && d.at_var(record) == HANDSHAKE
        && d.at_var(record + 1) == 3
        && d.at_var(record + 5) == CERTIFICATE;
    let (end, max) = if certificate {
        (
            record + 5 + d.be16_var(record + 3) as usize,
            HELLO_MAX + CERT_MAX,
        )
    } else {
        (record, HELLO_MAX)
    };
    if end > max { max } else { end }
}

/// SSLv2-format record: a 2-byte length with the high bit set, then message
/// type CLIENT-HELLO (1) with version `00 02` or `03 0x` (the SSLv3/TLS
/// compatible hello old clients send), or SERVER-HELLO (4).
#[inline(always)]
fn ssl2(d: &Prefix<'_>) -> Record {
    if !d.has(5) || d.at(0) & 0x80 == 0 {
        return Record::None;
    }
    match (d.at(2), d.at(3), d.at(4)) {
        (1, 0, 2) | (1, 3, 0..=4) => Record::ClientHello,
        // SERVER-HELLO: session-id-hit, certificate type, then version 00 02.
        (4, _, _) if d.at(5) == 0 && d.at(6) == 2 => Record::ServerHello,
        _ => Record::None,
    }
}

/// The negotiated version: the supported_versions extension when present
/// (TLS 1.3 keeps `03 03` in the legacy field), else the legacy version once
/// every extension has been seen. Unknown if the prefix ends first.
#[inline(always)]
fn server_hello_version(d: &Prefix<'_>) -> TlsVersion {
    let legacy = TlsVersion::from_wire(d.at(9), d.at(10));
    // record(5) + handshake header(4) + version(2) + random(32)
    let sid_len = d.at(43) as usize;
    // session id, cipher suite(2), compression(1)
    let mut off = 44 + sid_len + 3;
    // No extensions at all (allowed before TLS 1.3): the handshake message
    // ends right after the compression method.
    let msg_end = 9 + ((d.at(6) as usize) << 16 | (d.at(7) as usize) << 8 | d.at(8) as usize);
    if off >= msg_end {
        return legacy;
    }
    if d.len() < off + 2 {
        return TlsVersion::Unknown;
    }
    let end = off + 2 + d.be16_var(off) as usize;
    off += 2;
    let mut n = 0;
    while n < MAX_EXTENSIONS {
        if off >= end {
            return legacy;
        }
        if d.len() < off + 4 {
            return TlsVersion::Unknown;
        }
        let len = d.be16_var(off + 2) as usize;
        if d.be16_var(off) == EXT_SUPPORTED_VERSIONS {
            if d.len() < off + 6 {
                return TlsVersion::Unknown;
            }
            return TlsVersion::from_wire(d.at_var(off + 4), d.at_var(off + 5));
        }
        off += 4 + len;
        n += 1;
    }
    TlsVersion::Unknown
}

#[cfg(test)]
mod tests {
    //! Which captured segments may leave the kernel as hello bytes.
    use super::{Hello, HelloKind, hello, hello_record_len};
    use crate::{Side, classify::PrefixBuf};

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../../tests/fixtures/", $name, ".bin")).as_slice()
        };
    }

    fn head(data: &[u8]) -> [u8; crate::wire::FLIGHT_MAX] {
        data[..crate::wire::FLIGHT_MAX]
            .try_into()
            .expect("16 bytes")
    }

    #[test]
    fn a_second_client_hello_after_a_hello_retry_request_is_recognised() {
        // s_client (X25519 first) against s_server -groups P-256: its
        // ChangeCipherSpec and second ClientHello, then its flight.
        let retry = fixture!("openssl-3.0-s_client-tls13-hrr.c2s.1");
        assert!(super::retried_client_hello(&head(retry)));
        let flight = fixture!("openssl-3.0-s_client-tls13-hrr.c2s.2");
        assert!(!super::retried_client_hello(&head(flight)));
        // A first ClientHello without a CCS before it reads as one too
        // (never seen after a ServerHello but a retry's).
        let first = fixture!("openssl-3.0-s_client-tls13-hrr.c2s.0");
        assert!(super::retried_client_hello(&head(first)));
        // Flights that are not hellos: TLS 1.2 client key exchange.
        let tls12 = fixture!("openssl-3.0-s_client-tls12.c2s.1");
        assert!(!super::retried_client_hello(&head(tls12)));
    }

    fn kind(data: &[u8], side: Side) -> Option<HelloKind> {
        let buf = PrefixBuf::new(data);
        hello(&buf.prefix(), side).map(Hello::kind)
    }

    #[test]
    fn client_and_server_hellos_are_exported_from_their_senders_only() {
        let ch = fixture!("curl-7.88-tls13-s_server.c2s.0");
        let sh = fixture!("curl-7.88-tls13-s_server.s2c.0");
        assert_eq!(kind(ch, Side::Client), Some(HelloKind::Client));
        assert_eq!(kind(sh, Side::Server), Some(HelloKind::Server));
        assert_eq!(
            kind(ch, Side::Server),
            None,
            "a ClientHello from the server"
        );
        assert_eq!(
            kind(sh, Side::Client),
            None,
            "a ServerHello from the client"
        );
    }

    #[test]
    fn the_export_ends_with_the_hello_record() {
        // curl's 243-byte segment is one 238-byte record plus its header;
        // s_server's first 512 bytes hold the ServerHello (122 bytes) and
        // then ChangeCipherSpec and encrypted records, which stay behind.
        let ch = fixture!("curl-7.88-tls13-s_server.c2s.0");
        let sh = fixture!("curl-7.88-tls13-s_server.s2c.0");
        assert_eq!(hello_record_len(&PrefixBuf::new(ch).prefix()), ch.len());
        let sh_len = hello_record_len(&PrefixBuf::new(sh).prefix());
        assert_eq!(sh_len, 5 + 0x7a);
        assert_eq!(sh.get(sh_len), Some(&0x14), "ChangeCipherSpec follows");
    }

    #[test]
    fn a_tls12_server_hello_export_takes_the_certificate_record_after_it() {
        use super::export_len;
        // s_server's TLS 1.2 flight: a 98-byte ServerHello record, then a
        // Certificate record of 5 + 0x317 bytes.
        let sh = fixture!("curl-7.88-tls12-s_server.s2c.0");
        let buf = PrefixBuf::new(sh);
        let h = hello(&buf.prefix(), Side::Server).expect("a ServerHello");
        assert_eq!(export_len(&buf.prefix(), h), 98 + 5 + 0x317);
        // TLS 1.3: ChangeCipherSpec after the ServerHello, nothing more.
        let sh = fixture!("curl-7.88-tls13-s_server.s2c.0");
        let buf = PrefixBuf::new(sh);
        let h = hello(&buf.prefix(), Side::Server).expect("a ServerHello");
        assert_eq!(export_len(&buf.prefix(), h), 5 + 0x7a);
        // A ClientHello: its record only.
        let ch = fixture!("curl-7.88-tls12-s_server.c2s.0");
        let buf = PrefixBuf::new(ch);
        let h = hello(&buf.prefix(), Side::Client).expect("a ClientHello");
        assert_eq!(
            export_len(&buf.prefix(), h),
            hello_record_len(&buf.prefix())
        );
    }

    #[test]
    fn nothing_else_is_a_hello() {
        for (data, side) in [
            (fixture!("curl-7.88-http-nginx-1.22.c2s.0"), Side::Client),
            (fixture!("curl-7.88-http-nginx-1.22.s2c.0"), Side::Server),
            (fixture!("curl-7.88-h2c-nginx-1.22.c2s.0"), Side::Client),
            (fixture!("psql-15-sslmode-require.c2s.0"), Side::Client),
            (fixture!("psql-15-sslmode-require.s2c.0"), Side::Server),
            (fixture!("redis-cli-7.0-set.c2s.0"), Side::Client),
            (fixture!("bash-5.2-text-echo.c2s.0"), Side::Client),
            // TLS, but no hello: application data after the handshake.
            (fixture!("curl-7.88-tls13-s_server.c2s.2"), Side::Client),
            (&[], Side::Client),
            (&[0x16, 3, 1, 0], Side::Client),
        ] {
            assert_eq!(kind(data, side), None, "{:?}", data.get(..8));
        }
    }
}
