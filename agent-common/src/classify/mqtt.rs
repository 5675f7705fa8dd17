//! MQTT: the client opens with CONNECT (`0x10`, a 1-4 byte remaining
//! length, then the protocol name `00 04 MQTT` (3.1.1, 5) or `00 06 MQIsdp`
//! (3.1), the level and the connect flags). Flags 0x80 (user name) and
//! 0x40 (password) mean credentials in the clear.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Reason, Verdict};

pub struct Mqtt;

impl Dissector for Mqtt {
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Server {
            return PENDING;
        }
        let c = connect(d);
        if c == 0 {
            return PENDING;
        }
        f.open();
        let v = Verdict::plaintext(Protocol::Mqtt);
        if c == 2 {
            v.with_reason(Reason::CleartextCredentials)
        } else {
            v
        }
    }
}

/// CONNECT: `None` / plain / with credentials, as 0 / 1 / 2.
#[inline(always)]
fn connect(d: &Prefix<'_>) -> u8 {
    if d.at(0) != 0x10 {
        return 0;
    }
    // Remaining length: 1 or 2 bytes in practice (CONNECT is small).
    if d.at(1) < 0x80 {
        at(d, 2)
    } else if d.at(2) < 0x80 {
        at(d, 3)
    } else {
        0
    }
}

#[inline(always)]
fn at(d: &Prefix<'_>, o: usize) -> u8 {
    let flags = if d.eq_at(o, b"\x00\x04MQTT") {
        d.at(o + 7)
    } else if d.eq_at(o, b"\x00\x06MQIsdp") {
        d.at(o + 9)
    } else {
        return 0;
    };
    if flags & 0xc0 != 0 { 2 } else { 1 }
}

#[cfg(test)]
mod tests {
    use crate::{Protocol, Reason, Verdict};

    // --- MQTT (mosquitto_pub 2.0 against mosquitto 2.0) --------------------------------

    #[test]
    fn mqtt_connect_without_credentials_is_plaintext_mqtt() {
        let v = replay!("mosquitto_pub-2.0-anonymous": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Mqtt)));
    }

    #[test]
    fn mqtt_connect_with_user_and_password_is_cleartext_credentials() {
        let v = replay!("mosquitto_pub-2.0-userpass": "c2s.0");
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Mqtt).with_reason(Reason::CleartextCredentials))
        );
    }
}
