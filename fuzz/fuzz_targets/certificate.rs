//! The server-certificate path (agent/src/pipeline/certificates.rs) on
//! hostile bytes: the bytes after a ServerHello record, as the kernel
//! exports them with it, through the hello parser and the flow's
//! `TlsMeta`, and `certificates::parse` on the raw input. Whatever parses
//! must give bounded names and issues in order, at any time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plainsight::pipeline::{
    certificates::{self, ServerCert},
    tls_hello::{self, Hello, TlsMeta},
};

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = certificates::parse(data) {
        check(&c);
    }
    if let Some(Hello::Server(s)) = tls_hello::parse(data) {
        if let Some(Ok(c)) = &s.certificate {
            check(c);
        }
        let mut meta = TlsMeta::default();
        meta.add(Hello::Server(s));
        for now_ns in [i64::MIN, 0, 1_800_000_000_000_000_000, i64::MAX] {
            if let Some((issues, not_after)) = meta.certificate(now_ns) {
                assert!(issues.windows(2).all(|w| w[0] < w[1]), "{issues:?}");
                assert!(not_after.ends_with('Z'), "{not_after}");
            }
        }
    }
});

fn check(c: &ServerCert) {
    assert!(c.names.len() <= 100, "{} names", c.names.len());
    for sni in [None, Some("good.test"), Some("")] {
        for now in [i64::MIN, c.not_before, c.not_after, i64::MAX] {
            let issues = c.issues(sni, now);
            assert!(issues.windows(2).all(|w| w[0] < w[1]), "{issues:?}");
        }
    }
}
