//! ActiveMQ OpenWire: both peers open with a WireFormatInfo command, a
//! 4-byte size, the command type `01`, then the magic `ActiveMQ` and the
//! wire-format version, so either side's first segment names it.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Openwire;

/// OpenWire's command type of WireFormatInfo.
const WIREFORMAT_INFO: u8 = 1;

impl Dissector for Openwire {
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, _side: Side, d: &Prefix<'_>) -> Verdict {
        if d.at(4) == WIREFORMAT_INFO && d.eq_at(5, b"ActiveMQ") {
            f.open();
            return Verdict::plaintext(Protocol::Openwire);
        }
        PENDING
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::testing::classify;
    use crate::classify::Side;
    use crate::{Protocol, Verdict};

    // nDPI's openwire capture: an ActiveMQ client and broker on 61616.

    #[test]
    fn openwire_wireformatinfo_is_plaintext_openwire() {
        let v = replay!("ndpi-openwire-wireformatinfo": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Openwire)));
    }

    #[test]
    fn the_brokers_wireformatinfo_alone_is_openwire() {
        let v = classify(&[(
            Side::Server,
            fixture!("ndpi-openwire-wireformatinfo", "s2c.0"),
        )]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Openwire)));
    }
}
