//! The server's certificate where the handshake shows it (TLS ≤ 1.2; TLS
//! 1.3 encrypts it): its problems (`CertIssue`) and its expiry, for
//! `cert_issues` / `cert_not_after` (README "Server certificates").
//!
//! The kernel exports the server's Certificate record with the ServerHello
//! before it when it starts in the ServerHello's segment, at most
//! `CERT_MAX` bytes of it (`classify::tls::export_len`); only the first
//! certificate of the chain, the server's own, is read. The DER is parsed by
//! `x509-parser`, never by hand; the bytes come from the network, so every
//! length is checked and nothing can panic (fuzz target `certificate`).

use x509_parser::{
    certificate::X509Certificate, extensions::GeneralName, prelude::FromDer, public_key::PublicKey,
};

/// A problem of a server certificate, in the order reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CertIssue {
    /// Past its notAfter at the flow's time.
    Expired,
    /// Before its notBefore at the flow's time.
    NotYetValid,
    /// Its issuer is its subject: no authority vouches for it.
    SelfSigned,
    /// None of its names (DNS SANs, else the subject CN) covers the server
    /// name the client asked for (SNI). Not checked without SNI.
    NameMismatch,
    /// RSA under 2048 bits, EC under 256.
    WeakKey,
    /// Signed with MD2, MD5 or SHA-1.
    WeakSignature,
}

impl CertIssue {
    pub const ALL: [Self; 6] = [
        Self::Expired,
        Self::NotYetValid,
        Self::SelfSigned,
        Self::NameMismatch,
        Self::WeakKey,
        Self::WeakSignature,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::SelfSigned => "self_signed",
            Self::NameMismatch => "name_mismatch",
            Self::WeakKey => "weak_key",
            Self::WeakSignature => "weak_signature",
        }
    }
}

/// Why a server certificate could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("the certificate is cut short (longer than the export bound)")]
    Truncated,
    #[error("not a TLS Certificate handshake message")]
    NotCertificate,
    #[error("the certificate's DER is not a valid X.509 certificate")]
    Unparsable,
}

impl CertError {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::NotCertificate | Self::Unparsable => "unparsable",
        }
    }
}

/// What the server's certificate says, time-independent: the issues that
/// depend on time are decided at the flow's time (`issues`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCert {
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    pub self_signed: bool,
    /// DNS SANs, else the subject's CNs, lower case; at most `MAX_NAMES`.
    pub names: Vec<String>,
    pub weak_key: bool,
    pub weak_signature: bool,
}

/// Names kept per certificate: a CDN's can carry hundreds.
const MAX_NAMES: usize = 100;
const HANDSHAKE: u8 = 0x16;
const CERTIFICATE: u8 = 11;

/// Signature algorithms with a broken hash: md2/md5/sha1WithRSAEncryption,
/// sha1WithRSA (OIW), ecdsa-with-SHA1, dsa-with-sha1.
const WEAK_SIGNATURES: [&str; 6] = [
    "1.2.840.113549.1.1.2",
    "1.2.840.113549.1.1.4",
    "1.2.840.113549.1.1.5",
    "1.3.14.3.2.29",
    "1.2.840.10045.4.1",
    "1.2.840.10040.4.3",
];

impl ServerCert {
    /// The certificate's issues for a flow at `now` (Unix seconds) that
    /// asked for `sni`, in `CertIssue` order.
    pub fn issues(&self, sni: Option<&str>, now: i64) -> Vec<CertIssue> {
        let mut out = Vec::new();
        if now > self.not_after {
            out.push(CertIssue::Expired);
        }
        if now < self.not_before {
            out.push(CertIssue::NotYetValid);
        }
        if self.self_signed {
            out.push(CertIssue::SelfSigned);
        }
        if let Some(sni) = sni
            && !self.names.iter().any(|n| name_matches(n, sni))
        {
            out.push(CertIssue::NameMismatch);
        }
        if self.weak_key {
            out.push(CertIssue::WeakKey);
        }
        if self.weak_signature {
            out.push(CertIssue::WeakSignature);
        }
        out
    }
}

/// RFC 6125: an exact match, or a wildcard `*.` standing for exactly one
/// whole left-most label.
fn name_matches(pattern: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(rest) => host
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => pattern == host,
    }
}

/// Reads the server's own certificate (the chain's first) from the
/// exported bytes: a Certificate handshake message, with or without the
/// record header before it.
pub fn parse(bytes: &[u8]) -> Result<ServerCert, CertError> {
    let msg = match bytes.first() {
        Some(&HANDSHAKE) => bytes.get(5..).ok_or(CertError::Truncated)?,
        _ => bytes,
    };
    if msg.first() != Some(&CERTIFICATE) {
        return Err(CertError::NotCertificate);
    }
    // type(1) length(3) list length(3), then the first certificate's
    // length(3) and its DER.
    let len = be24(msg, 7).ok_or(CertError::Truncated)?;
    let der = msg.get(10..10 + len).ok_or(CertError::Truncated)?;
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| CertError::Unparsable)?;
    Ok(facts(&cert))
}

fn facts(cert: &X509Certificate<'_>) -> ServerCert {
    let validity = cert.validity();
    let mut names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .take(MAX_NAMES)
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .map(str::to_ascii_lowercase)
            .take(MAX_NAMES)
            .collect();
    }
    let weak_key = match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => rsa.key_size() < 2048,
        Ok(PublicKey::EC(ec)) => ec.key_size() < 256,
        Ok(PublicKey::DSA(_)) => true,
        _ => false,
    };
    let sig = cert.signature_algorithm.algorithm.to_id_string();
    ServerCert {
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
        names,
        weak_key,
        weak_signature: WEAK_SIGNATURES.contains(&sig.as_str()),
    }
}

/// A big-endian 24-bit length at `at`.
fn be24(b: &[u8], at: usize) -> Option<usize> {
    let x = b.get(at..at + 3)?;
    Some(usize::from(x[0]) << 16 | usize::from(x[1]) << 8 | usize::from(x[2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_stand_for_one_label() {
        assert!(name_matches("db.internal", "DB.internal"));
        assert!(name_matches("*.example.com", "api.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("example.com", "api.example.com"));
    }

    #[test]
    fn cut_or_foreign_bytes_are_errors() {
        assert_eq!(parse(&[]), Err(CertError::NotCertificate));
        assert_eq!(parse(&[0x16, 3, 3]), Err(CertError::Truncated));
        assert_eq!(
            parse(&[0x16, 3, 3, 0, 9, 2, 0]),
            Err(CertError::NotCertificate)
        );
        // A certificate of 0x300 bytes, of which 3 arrived.
        let cut = [11, 0, 3, 6, 0, 3, 3, 0, 3, 0, 0x30, 0x82, 0x02];
        assert_eq!(parse(&cut), Err(CertError::Truncated));
        let junk = [11, 0, 0, 9, 0, 0, 6, 0, 0, 3, 1, 2, 3];
        assert_eq!(parse(&junk), Err(CertError::Unparsable));
    }
}
