//! The flow tracker (`agent_common::track`) over random segment sequences
//! of two connections, composed as the kernel's observe.rs and replay's
//! flows.rs compose it, with what it promises checked at every step:
//! at most one verdict per flow, and only for a flow that carried payload;
//! classified bytes per side contiguous (none twice, none skipped); the SYN
//! sender is the client; a pure ACK changes nothing (the kernel skips the
//! flow table for it).
#![no_main]

use agent_common::headers::{TCP_FIN, TCP_SYN};
use agent_common::track::{self, Inspect};
use agent_common::wire::{FLOW_MIDSTREAM, FlowState};
use agent_common::{Side, Verdict};
use libfuzzer_sys::fuzz_target;
use plainsight_fuzz::{SeqMode, assert_coherent, segments};

/// Per connection: (client port, server port, whether the server is the
/// flow key's "lo" end). The second has equal ports, so a mid-stream flow
/// takes its sender as the client.
const CONNECTIONS: [(u16, u16, bool); 2] = [(40000, 8080, false), (50000, 50000, true)];
/// Initial sequence numbers near the wrap, per connection and direction.
const ISN: u32 = 0xffff_ff00;

struct Flow {
    st: FlowState,
    verdicts: u32,
    classified_any: bool,
    /// Where each side's next classified byte must start, once it has one.
    next_classified: [Option<u32>; 2],
}

impl Flow {
    fn verdict(&mut self, v: Option<Verdict>) {
        let Some(v) = v else { return };
        self.verdicts += 1;
        assert_eq!(self.verdicts, 1, "a second verdict: {v:?}");
        assert!(self.classified_any, "a verdict for a flow without payload");
        assert!(track::is_decided(&self.st));
        assert_coherent(&v);
    }

    fn close(mut self) {
        let v = track::close(&mut self.st);
        self.verdict(v);
        assert!(track::is_decided(&self.st));
    }
}

fuzz_target!(|data: &[u8]| {
    let mut flows: [Option<Flow>; 2] = [None, None];
    // The sender's model per connection and direction: next byte, previous
    // segment's start.
    let mut next = [[ISN; 2]; 2];
    let mut prev = [[ISN; 2]; 2];
    for seg in segments(data) {
        let conn = usize::from(seg.second);
        let dir = usize::from(seg.from_server);
        let (cport, sport, server_is_lo) = CONNECTIONS[conn];
        let seq = match seg.seq {
            SeqMode::Next => next[conn][dir],
            SeqMode::Again => prev[conn][dir],
            SeqMode::Gap => next[conn][dir].wrapping_add(1000),
            SeqMode::Explicit(n) => n,
        };
        let len = u32::try_from(seg.payload.len()).expect("at most 255 bytes");
        prev[conn][dir] = seq;
        next[conn][dir] = seq
            .wrapping_add(len)
            .wrapping_add(u32::from(seg.flags & (TCP_SYN | TCP_FIN) != 0));
        let (from, to) = if seg.from_server {
            (sport, cport)
        } else {
            (cport, sport)
        };
        let t = track::Segment {
            from_lo: seg.from_server == server_is_lo,
            sport: from,
            dport: to,
            flags: seg.flags,
            seq,
            payload_len: len,
        };
        segment(&mut flows[conn], &t, seg.payload);
    }
    for f in flows.into_iter().flatten() {
        f.close();
    }
});

fn segment(slot: &mut Option<Flow>, t: &track::Segment, payload: &[u8]) {
    if !track::changes_state(t.flags, t.payload_len) {
        if let Some(f) = slot {
            unchanged_by_pure_ack(&f.st, t);
        }
        return;
    }
    if t.is_client_syn()
        && slot.as_ref().is_some_and(|f| track::restarts(&f.st, t))
        && let Some(old) = slot.take()
    {
        old.close();
    }
    let flow = match slot {
        Some(f) => f,
        None => {
            let Some(flags) = track::new_flow(t) else {
                return;
            };
            assert_eq!(
                flags & FLOW_MIDSTREAM != 0,
                !t.is_client_syn(),
                "mid-stream exactly when first seen without a SYN"
            );
            let f = slot.insert(Flow {
                st: track::fresh(flags),
                verdicts: 0,
                classified_any: false,
                next_classified: [None; 2],
            });
            if t.is_client_syn() {
                assert_eq!(
                    track::side(&f.st, t.from_lo),
                    Side::Client,
                    "the SYN sender is the client"
                );
            }
            f
        }
    };
    let side = track::side(&flow.st, t.from_lo);
    let Inspect { classify, skip } = track::inspect(&mut flow.st, side, t);
    if classify {
        assert!(!track::is_decided(&flow.st), "a decided flow classified");
        assert!(skip < t.payload_len, "nothing new to classify");
        let start = t
            .seq
            .wrapping_add(u32::from(t.flags & TCP_SYN != 0))
            .wrapping_add(skip);
        let i = side as usize;
        if let Some(want) = flow.next_classified[i] {
            assert_eq!(start, want, "classified bytes twice or past a gap");
        }
        flow.next_classified[i] = Some(start.wrapping_add(t.payload_len - skip));
        let bytes = payload.get(skip as usize..).unwrap_or_default();
        flow.classified_any = true;
        let v = track::classify(&mut flow.st, side, bytes);
        flow.verdict(v);
    }
    if t.is_closing()
        && track::finished(&mut flow.st, side, t.flags)
        && let Some(f) = slot.take()
    {
        f.close();
    }
}

/// The kernel skips the flow table for a pure ACK: running it through the
/// tracker anyway must change nothing.
fn unchanged_by_pure_ack(st: &FlowState, t: &track::Segment) {
    let mut after = *st;
    let side = track::side(&after, t.from_lo);
    assert_eq!(
        track::inspect(&mut after, side, t),
        Inspect {
            classify: false,
            skip: 0
        }
    );
    assert!(!track::finished(&mut after, side, t.flags));
    assert_eq!(
        (after.next_seq, after.classifier, after.flags),
        (st.next_seq, st.classifier, st.flags),
        "a pure ACK changed the flow"
    );
}
