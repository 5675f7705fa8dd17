//! TLS ClientHello/ServerHello bytes to metadata: versions, SNI, ALPN,
//! cipher. The kernel exports the hello record a flow opens with (agent-ebpf
//! hello.rs); `replay` hands the same bytes from a capture.
//!
//! The bytes come from the network: every length is checked, nothing can
//! panic, and a hello cut short (the export stops at `HELLO_MAX` bytes or at
//! the segment's end) yields every field that was complete.

use super::certificates::{self, CertError, CertIssue, ServerCert};
use agent_common::{
    Protocol, Reason, Side, TlsVersion, Verdict,
    classify::{PrefixBuf, tls},
    wire::HELLO_KIND_CLIENT_FLIGHT,
};
use std::borrow::Cow;

const HANDSHAKE: u8 = 0x16;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;
const EXT_PRE_SHARED_KEY: u16 = 41;
/// RFC 6066: the only server name type.
const HOST_NAME: u8 = 0;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hello {
    Client(ClientHello),
    Server(ServerHello),
    /// The head of the client's flight after the ServerHello
    /// (`wire::HELLO_KIND_CLIENT_FLIGHT`), read by `client_auth`.
    ClientFlight(Vec<u8>),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub legacy_version: u16,
    /// supported_versions, GREASE values left out.
    pub versions: Vec<u16>,
    /// The host name asked for (lower case), if it is a valid host name.
    pub sni: Option<String>,
    /// ALPN protocols offered, in the client's order.
    pub alpn: Vec<String>,
    /// The legacy session id (up to TLS 1.2, a server echoing a non-empty
    /// one resumes that session).
    pub session_id: Vec<u8>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerHello {
    pub legacy_version: u16,
    /// supported_versions (TLS 1.3 keeps 1.2 in the legacy field).
    pub selected_version: Option<u16>,
    pub cipher: u16,
    /// The ALPN protocol chosen. TLS 1.3 sends it encrypted
    /// (EncryptedExtensions), so only up to TLS 1.2 is it here.
    pub alpn: Option<String>,
    pub session_id: Vec<u8>,
    /// TLS 1.3: the server accepted a pre-shared key (resumption, or an
    /// external PSK): no certificates are exchanged.
    pub psk: bool,
    /// The server's certificate, from the Certificate record exported with
    /// the ServerHello (TLS ≤ 1.2, `tls::export_len`); `None` if none was.
    pub certificate: Option<Result<ServerCert, CertError>>,
}

impl ServerHello {
    pub fn version(&self) -> TlsVersion {
        let [major, minor] = self
            .selected_version
            .unwrap_or(self.legacy_version)
            .to_be_bytes();
        TlsVersion::from_wire(major, minor)
    }
}

/// The bytes the kernel exports for a segment (agent-ebpf hello.rs), for
/// `replay` to read the same: the hello record the segment starts, if it
/// starts one from the side that sends it (and for a TLS 1.2 ServerHello
/// the server's Certificate record after it), as `tls::export_len` bounds.
pub fn exported(payload: &[u8], side: Side) -> Option<&[u8]> {
    let buf = PrefixBuf::new(payload);
    let prefix = buf.prefix();
    let hello = tls::hello(&prefix, side)?;
    let n = payload.len().min(tls::export_len(&prefix, hello));
    payload.get(..n)
}

/// Reads one record of the kernel's hello ring: a hello, or (`kind`
/// `HELLO_KIND_CLIENT_FLIGHT`) the head of the client's flight, kept as
/// it is (at most `FLIGHT_MAX` bytes).
pub fn parse_export(kind: u8, bytes: &[u8]) -> Option<Hello> {
    if kind == HELLO_KIND_CLIENT_FLIGHT {
        return Some(Hello::ClientFlight(bytes.to_vec()));
    }
    parse(bytes)
}

/// Reads one hello record (header included); `None` if the bytes do not
/// start one or end before its fixed fields.
pub fn parse(record: &[u8]) -> Option<Hello> {
    let mut r = Reader(record);
    if r.u8()? != HANDSHAKE {
        return None;
    }
    r.take(2)?;
    let mut body = r.vec16_cut()?;
    let kind = body.u8()?;
    let mut msg = body.vec24_cut()?;
    match kind {
        CLIENT_HELLO => client_hello(&mut msg).map(Hello::Client),
        SERVER_HELLO => server_hello(&mut msg).map(|mut s| {
            // The server's Certificate record, exported after it.
            if !r.0.is_empty() {
                s.certificate = Some(certificates::parse(r.0));
            }
            Hello::Server(s)
        }),
        _ => None,
    }
}

fn client_hello(r: &mut Reader<'_>) -> Option<ClientHello> {
    let mut h = ClientHello {
        legacy_version: r.u16()?,
        ..ClientHello::default()
    };
    r.take(32)?; // random
    h.session_id = r.vec8()?.0.to_vec();
    r.vec16()?; // cipher suites
    r.vec8()?; // compression methods
    for (ty, mut data) in extensions(r) {
        match ty {
            EXT_SERVER_NAME => h.sni = server_name(&mut data),
            EXT_ALPN => h.alpn = alpn_list(&mut data),
            EXT_SUPPORTED_VERSIONS => {
                if let Some(mut list) = data.vec8() {
                    while let Some(v) = list.u16() {
                        if !is_grease(v) {
                            h.versions.push(v);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Some(h)
}

fn server_hello(r: &mut Reader<'_>) -> Option<ServerHello> {
    let legacy_version = r.u16()?;
    r.take(32)?; // random
    let session_id = r.vec8()?.0.to_vec();
    let mut h = ServerHello {
        legacy_version,
        session_id,
        cipher: r.u16()?,
        ..ServerHello::default()
    };
    r.u8()?; // compression method
    for (ty, mut data) in extensions(r) {
        match ty {
            EXT_SUPPORTED_VERSIONS => h.selected_version = data.u16(),
            EXT_ALPN => h.alpn = alpn_list(&mut data).into_iter().next(),
            EXT_PRE_SHARED_KEY => h.psk = true,
            _ => {}
        }
    }
    Some(h)
}

/// The complete extensions of a hello whose end may be cut off: the list
/// stops at the first one that is not whole. None at all before TLS 1.3 is
/// allowed.
fn extensions<'a>(r: &mut Reader<'a>) -> impl Iterator<Item = (u16, Reader<'a>)> {
    let mut list = r.vec16_cut().unwrap_or(Reader(&[]));
    std::iter::from_fn(move || {
        let ty = list.u16()?;
        let data = list.vec16()?;
        Some((ty, data))
    })
}

fn server_name(r: &mut Reader<'_>) -> Option<String> {
    let mut list = r.vec16()?;
    while let Some(ty) = list.u8() {
        let name = list.vec16()?;
        if ty == HOST_NAME {
            return host_name(name.0);
        }
    }
    None
}

/// A DNS name as SNI must carry (RFC 6066: no IP literals, no trailing
/// dot); anything else (binary, spaces, overlong) is dropped rather than
/// passed on to logs and the API.
fn host_name(b: &[u8]) -> Option<String> {
    let ok = !b.is_empty()
        && b.len() <= 253
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
    ok.then(|| String::from_utf8_lossy(b).to_ascii_lowercase())
}

fn alpn_list(r: &mut Reader<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let Some(mut list) = r.vec16() else {
        return out;
    };
    while let Some(id) = list.vec8() {
        // Printable ASCII only (every registered id is); GREASE ids and
        // binary ones are left out.
        if !id.0.is_empty() && id.0.iter().all(|c| (0x21..=0x7e).contains(c)) {
            out.push(String::from_utf8_lossy(id.0).into_owned());
        }
    }
    out
}

/// RFC 8701 GREASE values: `0x?a?a` with both bytes equal.
fn is_grease(v: u16) -> bool {
    let [a, b] = v.to_be_bytes();
    a == b && a & 0x0f == 0x0a
}

/// Bounds-checked big-endian reads over a byte slice.
#[derive(Clone, Copy)]
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }

    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(
            usize::from(*b.first()?) << 16 | usize::from(*b.get(1)?) << 8 | usize::from(*b.get(2)?),
        )
    }

    /// A vector with a one-byte length; `None` unless it is all there.
    fn vec8(&mut self) -> Option<Reader<'a>> {
        let n = usize::from(self.u8()?);
        self.take(n).map(Reader)
    }

    fn vec16(&mut self) -> Option<Reader<'a>> {
        let n = usize::from(self.u16()?);
        self.take(n).map(Reader)
    }

    /// A vector whose end may be cut off: what there is of it.
    fn vec16_cut(&mut self) -> Option<Reader<'a>> {
        let n = usize::from(self.u16()?);
        Some(self.cut(n))
    }

    fn vec24_cut(&mut self) -> Option<Reader<'a>> {
        let n = self.u24()?;
        Some(self.cut(n))
    }

    fn cut(&mut self, n: usize) -> Reader<'a> {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Reader(head)
    }
}

/// Ids in the IANA ALPN registry that name a protocol we report, and the
/// protocol. `h2` covers gRPC too.
const ALPN_PROTOCOLS: &[(&str, Protocol)] = &[
    ("h2", Protocol::Http2),
    ("http/1.1", Protocol::Http),
    ("http/1.0", Protocol::Http),
    ("http/0.9", Protocol::Http),
    ("postgresql", Protocol::Postgres),
    ("mqtt", Protocol::Mqtt),
    ("imap", Protocol::Imap),
    ("pop3", Protocol::Pop3),
    ("ftp", Protocol::Ftp),
    ("dot", Protocol::Dns),
    // TDS 8.0 "strict": SQL Server's TLS-first connections.
    ("tds/8.0", Protocol::Mssql),
];

/// The protocol an ALPN id names, if it is one we report.
pub fn alpn_protocol(id: &str) -> Option<Protocol> {
    ALPN_PROTOCOLS
        .iter()
        .find(|(name, _)| *name == id)
        .map(|(_, p)| *p)
}

/// IANA names of the suites seen in practice (TLS 1.3, ECDHE/DHE/RSA with
/// AES-GCM, ChaCha20, CBC, and the legacy 3DES/RC4 worth spotting).
const CIPHERS: &[(u16, &str)] = &[
    (0x1301, "TLS_AES_128_GCM_SHA256"),
    (0x1302, "TLS_AES_256_GCM_SHA384"),
    (0x1303, "TLS_CHACHA20_POLY1305_SHA256"),
    (0x1304, "TLS_AES_128_CCM_SHA256"),
    (0x1305, "TLS_AES_128_CCM_8_SHA256"),
    (0xc02b, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
    (0xc02c, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
    (0xc02f, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    (0xc030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    (0xcca8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    (0xcca9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    (0xccaa, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    (0x009e, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"),
    (0x009f, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"),
    (0x009c, "TLS_RSA_WITH_AES_128_GCM_SHA256"),
    (0x009d, "TLS_RSA_WITH_AES_256_GCM_SHA384"),
    (0xc009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"),
    (0xc00a, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"),
    (0xc013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
    (0xc014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"),
    (0xc023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"),
    (0xc024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"),
    (0xc027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"),
    (0xc028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"),
    (0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"),
    (0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"),
    (0x002f, "TLS_RSA_WITH_AES_128_CBC_SHA"),
    (0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA"),
    (0x003c, "TLS_RSA_WITH_AES_128_CBC_SHA256"),
    (0x003d, "TLS_RSA_WITH_AES_256_CBC_SHA256"),
    (0x000a, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0x0004, "TLS_RSA_WITH_RC4_128_MD5"),
    (0x0005, "TLS_RSA_WITH_RC4_128_SHA"),
];

/// The suite's IANA name, or its code as `0x1234`.
pub fn cipher_name(id: u16) -> Cow<'static, str> {
    CIPHERS.iter().find(|(code, _)| *code == id).map_or_else(
        || Cow::Owned(format!("0x{id:04x}")),
        |(_, n)| Cow::Borrowed(*n),
    )
}

/// What a flow's hellos said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsMeta {
    pub sni: Option<String>,
    pub alpn_offered: Vec<String>,
    /// The server's ALPN choice (visible up to TLS 1.2).
    pub alpn_selected: Option<String>,
    pub cipher: Option<u16>,
    /// The version the ServerHello negotiated.
    pub version: TlsVersion,
    /// The ClientHello's legacy session id (see `resumed`).
    pub client_session_id: Vec<u8>,
    /// The ServerHello resumed a session (TLS 1.3: a pre-shared key; up to
    /// 1.2: it echoed the client's session id): no certificates flow.
    pub resumed: bool,
    /// The head of the client's flight after the ServerHello
    /// (pipeline/client_auth.rs reads it).
    pub client_flight: Option<Vec<u8>>,
    /// The server's certificate, where the handshake showed it (TLS ≤ 1.2).
    pub server_cert: Option<Result<ServerCert, CertError>>,
}

impl Default for TlsMeta {
    fn default() -> Self {
        Self {
            sni: None,
            alpn_offered: Vec::new(),
            alpn_selected: None,
            cipher: None,
            version: TlsVersion::Unknown,
            client_session_id: Vec::new(),
            resumed: false,
            client_flight: None,
            server_cert: None,
        }
    }
}

impl TlsMeta {
    pub fn add(&mut self, hello: Hello) {
        match hello {
            Hello::Client(c) => {
                self.sni = c.sni;
                self.alpn_offered = c.alpn;
                self.client_session_id = c.session_id;
            }
            Hello::Server(s) => {
                self.version = s.version();
                self.cipher = Some(s.cipher);
                // TLS 1.3 echoes the session id always (middlebox
                // compatibility): only its PSK extension says resumed.
                self.resumed = if self.version == TlsVersion::Tls13 {
                    s.psk
                } else {
                    !s.session_id.is_empty() && s.session_id == self.client_session_id
                };
                self.alpn_selected = s.alpn;
                self.server_cert = s.certificate;
            }
            Hello::ClientFlight(b) => self.client_flight = Some(b),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The server certificate's issues at `now_ns` (`[]` when clean) and
    /// its notAfter (RFC 3339), if the handshake showed a readable one.
    pub fn certificate(&self, now_ns: i64) -> Option<(Vec<CertIssue>, String)> {
        let cert = self.server_cert.as_ref()?.as_ref().ok()?;
        let issues = cert.issues(self.sni.as_deref(), now_ns.div_euclid(1_000_000_000));
        let not_after = crate::clock::rfc3339_wide(i128::from(cert.not_after) * 1_000_000_000);
        Some((issues, not_after))
    }

    /// A ServerHello was seen and the client's flight after it not yet:
    /// the live agent holds such a flow's verdict a moment for it.
    pub fn awaits_client_flight(&self) -> bool {
        self.cipher.is_some() && self.client_flight.is_none()
    }

    /// The ALPN protocol the flow speaks: the server's choice, else the
    /// client's only offer (a server that takes ALPN must pick it or fail
    /// the handshake; gRPC and PostgreSQL direct TLS offer one). Unknown
    /// when a TLS 1.3 client offers several: the choice is encrypted.
    pub fn alpn(&self) -> Option<&str> {
        match (&self.alpn_selected, self.alpn_offered.as_slice()) {
            (Some(s), _) => Some(s),
            (None, [only]) => Some(only),
            _ => None,
        }
    }

    /// The application protocol inside the TLS, as ALPN names it.
    pub fn inner_protocol(&self) -> Option<Protocol> {
        self.alpn().and_then(alpn_protocol)
    }

    /// Fills in a TLS verdict's version when the kernel's prefix ended
    /// before the ServerHello's supported_versions (a post-quantum key
    /// share puts it past byte 1000), with `weak_tls` if it is old.
    pub fn refine(&self, v: &mut Verdict) {
        if v.encryption == agent_common::Encryption::Tls
            && v.tls_version == TlsVersion::Unknown
            && self.version != TlsVersion::Unknown
        {
            v.tls_version = self.version;
            if self.version.is_weak() {
                *v = v.with_reason(Reason::WeakTls);
            }
        }
    }
}

#[cfg(test)]
mod tests;
