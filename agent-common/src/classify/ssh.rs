//! SSH: both sides open with an identification string `SSH-2.0-...`
//! (RFC 4253 4.2); everything after it is encrypted by SSH itself.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Encryption, Protocol, Verdict};

pub struct Ssh;

impl Dissector for Ssh {
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, _side: Side, d: &Prefix<'_>) -> Verdict {
        if d.starts_with(b"SSH-") {
            f.open();
            return Verdict::new(Protocol::Ssh, Encryption::Encrypted);
        }
        PENDING
    }
}

#[cfg(test)]
mod tests {
    use crate::{Encryption, Protocol, Verdict};

    // --- SSH -----------------------------------------------------------------------

    #[test]
    fn ssh_banner_is_encrypted_ssh() {
        let v = replay!("openssh-9.2-banner-sink": "c2s.0");
        assert_eq!(v, Some(Verdict::new(Protocol::Ssh, Encryption::Encrypted)));
    }
}
