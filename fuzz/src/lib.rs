//! The input format the `classifier` and `tracker` targets share: a
//! sequence of TCP segments of up to two connections between the same two
//! hosts. `cargo xtask fuzz` writes the seeds in it (xtask/src/fuzz.rs,
//! `segment_record`) from the classifier fixtures, so mutations start from
//! real sessions.
//!
//! One record per segment: a control byte, a length byte, then (for an
//! explicit sequence number) four bytes of it, then up to `len` payload
//! bytes (fewer if the input ends). Control bits:
//!
//! | bits | meaning |
//! |---|---|
//! | 0 | direction: 0 from the client port, 1 from the server port |
//! | 1-4 | SYN, ACK, FIN, RST |
//! | 5-6 | sequence number: 0 the sender's next byte, 1 its previous segment's again (a retransmit), 2 past a gap, 3 explicit |
//! | 7 | which of the two connections |

use agent_common::Verdict;
use agent_common::headers::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};

/// One decoded segment.
#[derive(Clone, Copy, Debug)]
pub struct Seg<'a> {
    /// From the connection's server port.
    pub from_server: bool,
    /// The second connection.
    pub second: bool,
    pub flags: u8,
    pub seq: SeqMode,
    pub payload: &'a [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqMode {
    Next,
    Again,
    Gap,
    Explicit(u32),
}

/// The records of `data`, in order.
pub fn segments(mut data: &[u8]) -> impl Iterator<Item = Seg<'_>> {
    std::iter::from_fn(move || {
        let (&[ctrl, len], rest) = data.split_first_chunk::<2>()?;
        data = rest;
        let seq = match (ctrl >> 5) & 3 {
            0 => SeqMode::Next,
            1 => SeqMode::Again,
            2 => SeqMode::Gap,
            _ => {
                let (n, rest) = data.split_first_chunk::<4>()?;
                data = rest;
                SeqMode::Explicit(u32::from_be_bytes(*n))
            }
        };
        let (payload, rest) = data.split_at(usize::from(len).min(data.len()));
        data = rest;
        let flags = [TCP_SYN, TCP_ACK, TCP_FIN, TCP_RST]
            .iter()
            .enumerate()
            .filter(|(i, _)| ctrl & (2 << i) != 0)
            .fold(0, |f, (_, bit)| f | bit);
        Some(Seg {
            from_server: ctrl & 1 != 0,
            second: ctrl & 0x80 != 0,
            flags,
            seq,
            payload,
        })
    })
}

/// What the verdict model promises of every verdict (docs/architecture.md
/// "Verdicts"): a TLS version only on TLS, each reason only with the
/// encryption it is about.
pub fn assert_coherent(v: &Verdict) {
    use agent_common::{Encryption, Reason, TlsVersion};
    if v.tls_version != TlsVersion::Unknown {
        assert_eq!(v.encryption, Encryption::Tls, "a TLS version on {v:?}");
    }
    match v.reason {
        Reason::StarttlsUpgraded => assert_eq!(v.encryption, Encryption::Tls, "{v:?}"),
        Reason::WeakTls => {
            assert_eq!(v.encryption, Encryption::Tls, "{v:?}");
            assert!(v.tls_version.is_weak(), "{v:?}");
        }
        Reason::StarttlsRefused | Reason::LoginOnlyEncrypted | Reason::CleartextCredentials => {
            assert_eq!(v.encryption, Encryption::Plaintext, "{v:?}");
        }
        Reason::None | Reason::Midstream => {}
        // Policy requirements are the agent's judgement, never the classifier's.
        Reason::ClientAuthRequired | Reason::MinTlsRequired | Reason::CertIssuesRequired => {
            panic!("a policy reason from the classifier: {v:?}")
        }
    }
}
