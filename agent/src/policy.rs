//! Policy: whether a classified flow is acceptable. Until allow-rules land
//! every readable flow is a violation; encrypted ones are `ok`.

use agent_common::{Encryption, Verdict};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    /// TLS or another encryption.
    Ok,
    /// Plaintext, but an allow-rule covers it.
    #[expect(
        dead_code,
        reason = "allow-rules arrive with the policy config (issue 5)"
    )]
    Allowed,
    /// Plaintext (or unclassifiable) and nothing allows it.
    Violation,
}

impl Policy {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Allowed => "allowed",
            Self::Violation => "violation",
        }
    }
}

/// `unknown` counts as a violation: we cannot show those bytes are
/// encrypted, and a custom binary protocol in the clear is a real leak.
pub fn evaluate(v: &Verdict) -> Policy {
    match v.encryption {
        Encryption::Tls | Encryption::Encrypted => Policy::Ok,
        Encryption::Plaintext | Encryption::Unknown => Policy::Violation,
    }
}
