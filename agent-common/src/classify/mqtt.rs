//! MQTT: the client opens with CONNECT (`0x10`, a 1-4 byte remaining
//! length, then the protocol name `00 04 MQTT` (3.1.1, 5) or `00 06 MQIsdp`
//! (3.1), the level and the connect flags). Flags 0x80 (user name) and
//! 0x40 (password) mean credentials in the clear.
//!
//! Mid-stream (CONNECT missing): the broker's CONNACK (`0x20`, possibly
//! alone in its segment) or a client's PUBLISH (`0x3q`, remaining length,
//! a printable topic) only claims the flow; the other side's next segment
//! must be an MQTT packet of its own before the flow is named `mqtt`.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Reason, Verdict};

pub struct Mqtt;

/// A CONNACK was seen: the client's packet confirms.
const FROM_CLIENT: u8 = 0;
/// A PUBLISH from the client was seen: the broker's packet confirms.
const FROM_SERVER: u8 = 1;

impl Dissector for Mqtt {
    const STEPS: u8 = 2;

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

    #[inline(always)]
    fn midstream(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Server && d.at(0) == CONNACK && (!d.has(2) || d.at(1) >= 2) {
            f.goto::<Self>(FROM_CLIENT);
        } else if side == Side::Client && is_publish(d) {
            f.goto::<Self>(FROM_SERVER);
        }
        PENDING
    }

    #[inline(always)]
    fn step(f: &mut FlowClassifier, step: u8, side: Side, d: &Prefix<'_>) -> Verdict {
        let confirmed = if step == FROM_CLIENT {
            if side == Side::Server {
                return PENDING;
            }
            is_publish(d) || is_client_packet(d)
        } else {
            if side == Side::Client {
                return PENDING;
            }
            is_publish(d) || is_server_packet(d)
        };
        if confirmed {
            return Verdict::plaintext(Protocol::Mqtt);
        }
        f.restart();
        PENDING
    }
}

const CONNACK: u8 = 0x20;

/// A PUBLISH (QoS 0-2) whose topic, right after the 1-4 byte remaining
/// length, has a length of 1..=255 and starts with two printable bytes.
#[inline(always)]
fn is_publish(d: &Prefix<'_>) -> bool {
    let b = d.at(0);
    if b & 0xf0 != 0x30 || (b >> 1) & 3 == 3 {
        return false;
    }
    if d.at(1) < 0x80 {
        topic_at(d, 2)
    } else if d.at(2) < 0x80 {
        topic_at(d, 3)
    } else if d.at(3) < 0x80 {
        topic_at(d, 4)
    } else {
        false
    }
}

#[inline(always)]
fn topic_at(d: &Prefix<'_>, o: usize) -> bool {
    d.at(o) == 0
        && d.at(o + 1) != 0
        && d.at(o + 2).is_ascii_graphic()
        && d.at(o + 3).is_ascii_graphic()
        && d.has(o + 4)
}

/// Fixed-size packets a client sends mid-session: SUBSCRIBE / UNSUBSCRIBE
/// (`0x82` / `0xa2`), PUBACK..PUBCOMP (`0x40 02`..`0x70 02`), PINGREQ and
/// DISCONNECT (`0xc0 00`, `0xe0 00`).
#[inline(always)]
fn is_client_packet(d: &Prefix<'_>) -> bool {
    let b = d.at(0);
    let len = d.at(1);
    d.has(2)
        && ((b == 0x82 || b == 0xa2)
            || (len == 2 && (b == 0x40 || b == 0x50 || b == 0x62 || b == 0x70))
            || (len == 0 && (b == 0xc0 || b == 0xe0)))
}

/// What a broker sends mid-session: PUBACK..PUBCOMP, SUBACK / UNSUBACK
/// (`0x90` / `0xb0`), PINGRESP (`0xd0 00`).
#[inline(always)]
fn is_server_packet(d: &Prefix<'_>) -> bool {
    let b = d.at(0);
    let len = d.at(1);
    d.has(2)
        && ((b == 0x90 || b == 0xb0)
            || (len == 2 && (b == 0x40 || b == 0x50 || b == 0x62 || b == 0x70))
            || (len == 0 && b == 0xd0))
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
    use crate::classify::testing::{classify_midstream, midstream};
    use crate::classify::Side;
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

    // --- Mid-stream: the CONNECT was missed ---------------------------------------------

    #[test]
    fn connack_then_publish_midstream_is_plaintext_mqtt() {
        let v = classify_midstream(&[
            (Side::Server, fixture!("mosquitto_pub-2.0-anonymous", "s2c.0")),
            (Side::Client, fixture!("mosquitto_pub-2.0-anonymous", "c2s.1")),
        ]);
        assert_eq!(v, Some(midstream(Protocol::Mqtt)));
    }

    #[test]
    fn connack_split_after_its_first_byte_then_publish_is_plaintext_mqtt() {
        let connack = fixture!("mosquitto_pub-2.0-anonymous", "s2c.0");
        let v = classify_midstream(&[
            (Side::Server, &connack[..1]),
            (Side::Server, &connack[1..]),
            (Side::Client, fixture!("mosquitto_pub-2.0-anonymous", "c2s.1")),
        ]);
        assert_eq!(v, Some(midstream(Protocol::Mqtt)));
    }

    #[test]
    fn publish_alone_is_not_named() {
        let v = classify_midstream(&[(Side::Client, fixture!("mosquitto_pub-2.0-anonymous", "c2s.1"))]);
        assert_ne!(v.map(|v| v.protocol), Some(Protocol::Mqtt));
    }

    #[test]
    fn connack_answered_by_http_is_not_mqtt() {
        let v = classify_midstream(&[
            (Side::Server, fixture!("mosquitto_pub-2.0-anonymous", "s2c.0")),
            (Side::Client, fixture!("curl-7.88-http-nginx-1.22", "c2s.0")),
        ]);
        assert_ne!(v.map(|v| v.protocol), Some(Protocol::Mqtt));
    }
}
