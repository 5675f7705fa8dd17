//! The classifier over random segments per side, in random order, as the
//! kernel feeds it (the credentials scan, then `FlowClassifier::on_segment`
//! until a verdict), for a
//! flow seen from its SYN and for one first seen mid-stream (where a
//! server's bytes may answer a request it did not see, so the two may
//! decide differently): the segment budget holds, a verdict comes once and
//! is coherent, and a close's best guess exists exactly for a flow that
//! carried payload.
#![no_main]

use agent_common::classify::{PrefixBuf, credentials::Scan};
use agent_common::wire::MAX_SEGMENTS;
use agent_common::{FlowClassifier, Side};
use libfuzzer_sys::fuzz_target;
use plainsight_fuzz::{assert_coherent, segments};

fuzz_target!(|data: &[u8]| {
    classify(FlowClassifier::new(), data);
    classify(FlowClassifier::new_midstream(), data);
});

/// Feeds segments until the verdict (then nothing more, as the tracker
/// stops), else closes.
fn classify(mut c: FlowClassifier, data: &[u8]) {
    let mut fed = 0;
    for seg in segments(data) {
        let side = if seg.from_server {
            Side::Server
        } else {
            Side::Client
        };
        let buf = PrefixBuf::new(seg.payload);
        // The kernel hands only `may_scan` segments to the scan program:
        // every segment the scan wants must pass it.
        if c.credential_scan(side, &buf.prefix()) != Scan::None {
            let first = seg.payload.first().copied().unwrap_or_default();
            assert!(c.may_scan(side, first), "a scan the hook would skip");
        }
        let verdict = c.on_payload(side, seg.payload);
        for side in [Side::Client, Side::Server] {
            assert!(c.segments(side) <= MAX_SEGMENTS, "budget overrun");
        }
        fed += usize::from(!seg.payload.is_empty());
        if let Some(v) = verdict {
            assert!(fed > 0, "a verdict without payload");
            assert_coherent(&v);
            assert!(c.on_close().is_some(), "a decided flow has a best guess");
            return;
        }
    }
    let v = c.on_close();
    assert_eq!(
        v.is_some(),
        fed > 0,
        "a best guess exactly when payload was seen"
    );
    if let Some(v) = &v {
        assert_coherent(v);
    }
}
