//! NATS: text protocol; the server speaks first with `INFO {json}`, the
//! client answers `CONNECT {json}`. Checked before HTTP: `CONNECT {` is
//! not an HTTP CONNECT (whose target is `host:port`, never `{`).

use super::bytes::Prefix;

#[must_use]
#[inline(always)]
pub fn is_info(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"INFO {")
}

#[must_use]
#[inline(always)]
pub fn is_connect(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"CONNECT {")
}
