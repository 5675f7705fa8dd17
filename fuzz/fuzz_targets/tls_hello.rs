//! The TLS hello parser (agent/src/pipeline/tls_hello.rs) on hostile bytes:
//! what the kernel would export from a segment (`exported`), and `parse` on
//! it and on the raw bytes; whatever parses feeds the flow's `TlsMeta` and
//! the verdict refinement.
#![no_main]

use agent_common::wire::EXPORT_MAX;
use agent_common::{Encryption, Protocol, Side, Verdict};
use libfuzzer_sys::fuzz_target;
use plainsight::pipeline::tls_hello::{self, Hello, TlsMeta};
use plainsight_fuzz::assert_coherent;

fuzz_target!(|data: &[u8]| {
    let mut meta = TlsMeta::default();
    for side in [Side::Client, Side::Server] {
        if let Some(rec) = tls_hello::exported(data, side) {
            assert!(
                rec.len() <= EXPORT_MAX && data.starts_with(rec),
                "exported more than the segment's hello"
            );
            if let Some(h) = tls_hello::parse(rec) {
                check(&h);
                meta.add(h);
            }
        }
    }
    if let Some(h) = tls_hello::parse(data) {
        check(&h);
        meta.add(h);
    }
    let _ = meta.inner_protocol();
    if let Some(c) = meta.cipher {
        assert!(!tls_hello::cipher_name(c).is_empty());
    }
    let mut v = Verdict::new(Protocol::Tls, Encryption::Tls);
    meta.refine(&mut v);
    assert_coherent(&v);
});

fn check(h: &Hello) {
    if let Hello::Client(c) = h
        && let Some(sni) = &c.sni
    {
        assert!(
            !sni.is_empty() && *sni == sni.to_ascii_lowercase(),
            "SNI {sni:?}"
        );
    }
}
