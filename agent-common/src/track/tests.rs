use super::*;
use crate::wire::MAX_SEGMENTS;
use crate::{Encryption, Protocol};

const CLIENT_PORT: u16 = 40000;
const SERVER_PORT: u16 = 8080;

/// A segment from the client (the "lo" endpoint here) or the server.
fn seg(side: Side, flags: u8, seq: u32, payload_len: u32) -> Segment {
    let (from_lo, sport, dport) = match side {
        Side::Client => (true, CLIENT_PORT, SERVER_PORT),
        Side::Server => (false, SERVER_PORT, CLIENT_PORT),
    };
    Segment {
        from_lo,
        sport,
        dport,
        flags,
        seq,
        payload_len,
    }
}

/// A flow opened by the client's SYN (ISN 100) and the server's SYN-ACK
/// (ISN 500): data starts at 101 and 501.
fn opened() -> FlowState {
    let syn = seg(Side::Client, TCP_SYN, 100, 0);
    let mut st = fresh(new_flow(&syn).expect("a SYN starts a flow"));
    assert_eq!(inspect(&mut st, Side::Client, &syn), Inspect::NO);
    let syn_ack = seg(Side::Server, TCP_SYN | TCP_ACK, 500, 0);
    assert_eq!(inspect(&mut st, Side::Server, &syn_ack), Inspect::NO);
    st
}

fn feeds(skip: u32) -> Inspect {
    Inspect {
        classify: true,
        skip,
    }
}

#[test]
fn pure_acks_change_nothing() {
    assert!(!changes_state(TCP_ACK, 0));
    assert!(changes_state(TCP_ACK, 1));
    for flags in [TCP_SYN, TCP_FIN | TCP_ACK, TCP_RST] {
        assert!(changes_state(flags, 0), "{flags:#x}");
    }
    // What the kernel's shortcut relies on: tracking a pure ACK would
    // have created, classified and closed nothing.
    let ack = seg(Side::Client, TCP_ACK, 101, 0);
    assert_eq!(new_flow(&ack), None);
    let mut st = opened();
    let before = st;
    assert_eq!(inspect(&mut st, Side::Client, &ack), Inspect::NO);
    assert!(!finished(&mut st, Side::Client, ack.flags));
    assert_eq!(st.flags, before.flags);
    assert_eq!(st.next_seq, before.next_seq);
}

#[test]
fn the_syn_sender_is_the_client_whichever_endpoint_is_lo() {
    for from_lo in [true, false] {
        let mut syn = seg(Side::Client, TCP_SYN, 1, 0);
        syn.from_lo = from_lo;
        let st = fresh(new_flow(&syn).expect("flow"));
        assert_eq!(side(&st, from_lo), Side::Client);
        assert_eq!(side(&st, !from_lo), Side::Server);
        assert_eq!(st.flags & FLOW_MIDSTREAM, 0);
    }
}

#[test]
fn a_flow_first_seen_at_payload_is_midstream_with_the_ephemeral_port_as_client() {
    // The server speaks first: its port is the lower one.
    let reply = seg(Side::Server, TCP_ACK, 9000, 20);
    let st = fresh(new_flow(&reply).expect("payload starts a flow"));
    assert_ne!(st.flags & FLOW_MIDSTREAM, 0);
    assert_eq!(side(&st, reply.from_lo), Side::Server);
    assert_eq!(st.classifier, FlowClassifier::new_midstream());
    // On equal ports, the sender.
    for from_lo in [true, false] {
        let s = Segment {
            from_lo,
            sport: 7000,
            dport: 7000,
            ..reply
        };
        let st = fresh(new_flow(&s).expect("flow"));
        assert_eq!(side(&st, from_lo), Side::Client);
    }
}

#[test]
fn lone_acks_fins_resets_and_syn_acks_start_nothing() {
    for flags in [TCP_ACK, TCP_FIN | TCP_ACK, TCP_RST, TCP_SYN | TCP_ACK] {
        assert_eq!(
            new_flow(&seg(Side::Client, flags, 1, 0)),
            None,
            "{flags:#x}"
        );
    }
    // Payload with a FIN or RST is the flow's end, not its start.
    assert_eq!(new_flow(&seg(Side::Client, TCP_FIN | TCP_ACK, 1, 5)), None);
    assert_eq!(new_flow(&seg(Side::Client, TCP_RST | TCP_ACK, 1, 5)), None);
}

#[test]
fn in_order_payload_is_classified_once() {
    let mut st = opened();
    let data = seg(Side::Client, TCP_ACK, 101, 3);
    assert_eq!(inspect(&mut st, Side::Client, &data), feeds(0));
    assert_eq!(
        inspect(&mut st, Side::Client, &data),
        Inspect::NO,
        "retransmit"
    );
    let old = seg(Side::Client, TCP_ACK, 103, 1);
    assert_eq!(
        inspect(&mut st, Side::Client, &old),
        Inspect::NO,
        "keep-alive"
    );
    let next = seg(Side::Client, TCP_ACK, 104, 2);
    assert_eq!(inspect(&mut st, Side::Client, &next), feeds(0));
    // Each direction has its own sequence.
    let reply = seg(Side::Server, TCP_ACK, 501, 4);
    assert_eq!(inspect(&mut st, Side::Server, &reply), feeds(0));
    assert_eq!(st.next_seq, [106, 505]);
}

#[test]
fn a_repacketised_retransmit_gives_only_its_new_bytes() {
    let mut st = opened();
    assert_eq!(
        inspect(&mut st, Side::Client, &seg(Side::Client, TCP_ACK, 101, 2)),
        feeds(0)
    );
    assert_eq!(
        inspect(&mut st, Side::Client, &seg(Side::Client, TCP_ACK, 101, 4)),
        feeds(2)
    );
    assert_eq!(st.next_seq[0], 105);
}

#[test]
fn a_segment_past_a_gap_is_not_classified_nor_held() {
    let mut st = opened();
    let late = seg(Side::Client, TCP_ACK, 104, 3);
    assert_eq!(inspect(&mut st, Side::Client, &late), Inspect::NO);
    assert_eq!(st.next_seq[0], 101, "the gap stays where it was");
    // The gap fills; the segment seen past it is gone (neither the kernel
    // nor replay holds it), only its retransmit would be classified.
    let first = seg(Side::Client, TCP_ACK, 101, 3);
    assert_eq!(inspect(&mut st, Side::Client, &first), feeds(0));
    assert_eq!(inspect(&mut st, Side::Client, &late), feeds(0));
}

#[test]
fn sequence_numbers_wrap() {
    let syn = seg(Side::Client, TCP_SYN, u32::MAX - 1, 0);
    let mut st = fresh(new_flow(&syn).expect("flow"));
    let _ = inspect(&mut st, Side::Client, &syn);
    assert_eq!(st.next_seq[0], u32::MAX);
    let data = seg(Side::Client, TCP_ACK, u32::MAX, 3);
    assert_eq!(inspect(&mut st, Side::Client, &data), feeds(0));
    assert_eq!(st.next_seq[0], 2);
    // Before the wrap is behind, after it is a gap.
    let behind = seg(Side::Client, TCP_ACK, u32::MAX - 5, 4);
    assert_eq!(inspect(&mut st, Side::Client, &behind), Inspect::NO);
    let overlap = seg(Side::Client, TCP_ACK, 0, 4);
    assert_eq!(inspect(&mut st, Side::Client, &overlap), feeds(2));
}

#[test]
fn a_midstream_side_starts_at_its_first_payload() {
    let first = seg(Side::Client, TCP_ACK, 9, 1);
    let mut st = fresh(new_flow(&first).expect("flow"));
    assert_eq!(inspect(&mut st, Side::Client, &first), feeds(0));
    let earlier = seg(Side::Client, TCP_ACK, 8, 1);
    assert_eq!(inspect(&mut st, Side::Client, &earlier), Inspect::NO);
    // The other side has no sequence yet: any payload starts it.
    let reply = seg(Side::Server, TCP_ACK, 77_777, 1);
    assert_eq!(inspect(&mut st, Side::Server, &reply), feeds(0));
}

#[test]
fn payload_on_the_syn_is_the_first_data() {
    // TCP Fast Open: the request rides on the SYN.
    let syn = seg(Side::Client, TCP_SYN, 100, 30);
    let mut st = fresh(new_flow(&syn).expect("flow"));
    assert_eq!(inspect(&mut st, Side::Client, &syn), feeds(0));
    assert_eq!(st.next_seq[0], 131);
    assert_eq!(
        inspect(&mut st, Side::Client, &syn),
        Inspect::NO,
        "seen twice"
    );
}

#[test]
fn a_retransmitted_syn_is_the_same_connection_a_new_isn_is_not() {
    let mut st = opened();
    assert!(!restarts(&st, &seg(Side::Client, TCP_SYN, 100, 0)));
    let _ = inspect(&mut st, Side::Client, &seg(Side::Client, TCP_SYN, 100, 0));
    assert_eq!(st.next_seq[0], 101, "a retransmitted SYN changes nothing");
    // Reused ports: the old connection sent data, the new SYN has its own ISN.
    let _ = inspect(&mut st, Side::Client, &seg(Side::Client, TCP_ACK, 101, 5));
    assert!(restarts(&st, &seg(Side::Client, TCP_SYN, 7000, 0)));
    assert!(restarts(&st, &seg(Side::Client, TCP_SYN, 100, 0)));
    // A SYN from the old flow's server side is a connection the other way.
    assert!(restarts(&opened(), &seg(Side::Server, TCP_SYN, 500, 0)));
    // A flow first seen mid-stream never saw the client's SYN.
    let mid = seg(Side::Server, TCP_ACK, 9000, 5);
    let st = fresh(new_flow(&mid).expect("flow"));
    assert!(restarts(&st, &seg(Side::Client, TCP_SYN, 1, 0)));
    // TCP Fast Open: the same SYN seen twice, after its data was taken.
    let tfo = seg(Side::Client, TCP_SYN, 100, 30);
    let mut st = fresh(new_flow(&tfo).expect("flow"));
    let _ = inspect(&mut st, Side::Client, &tfo);
    assert!(!restarts(&st, &tfo));
}

#[test]
fn a_side_the_classifier_no_longer_wants_is_not_tracked() {
    let mut st = opened();
    let text = b"some text in the middle";
    let mut seq = 101;
    for _ in 0..MAX_SEGMENTS {
        let s = seg(Side::Client, TCP_ACK, seq, 5);
        assert_eq!(inspect(&mut st, Side::Client, &s), feeds(0));
        // The server has not spoken: the client's last segment gives up.
        let _ = classify(&mut st, Side::Client, text);
        seq += 5;
    }
    assert!(is_decided(&st));
    let s = seg(Side::Client, TCP_ACK, seq, 5);
    assert_eq!(inspect(&mut st, Side::Client, &s), Inspect::NO);
    assert_eq!(st.next_seq[0], seq, "decided: nothing tracked");
}

#[test]
fn a_verdict_decides_the_flow_and_close_gives_none_after_it() {
    let mut st = opened();
    let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let s = seg(Side::Client, TCP_ACK, 101, 27);
    assert_eq!(inspect(&mut st, Side::Client, &s), feeds(0));
    let v = classify(&mut st, Side::Client, get).expect("verdict");
    assert_eq!(v, Verdict::plaintext(Protocol::Http));
    assert!(is_decided(&st));
    assert_eq!(classify(&mut st, Side::Client, get), None);
    assert_eq!(close(&mut st), None);
}

#[test]
fn close_gives_the_best_verdict_once_and_nothing_without_payload() {
    assert_eq!(close(&mut opened()), None);
    let mut st = opened();
    let hello = b"hello";
    let _ = classify(&mut st, Side::Client, hello);
    let v = close(&mut st).expect("best verdict");
    assert_eq!(v.encryption, Encryption::Plaintext);
    assert_eq!(close(&mut st), None, "once");
}

#[test]
fn rst_or_a_fin_from_each_side_finishes() {
    let mut st = opened();
    assert!(!finished(&mut st, Side::Client, TCP_FIN | TCP_ACK));
    assert!(
        !finished(&mut st, Side::Client, TCP_FIN | TCP_ACK),
        "a retransmitted FIN is not the other side's"
    );
    assert!(finished(&mut st, Side::Server, TCP_FIN | TCP_ACK));
    assert!(finished(&mut opened(), Side::Server, TCP_RST));
}

#[test]
fn fresh_words_are_the_fresh_state() {
    for flags in [0, FLOW_CLIENT_IS_HI, FLOW_MIDSTREAM | FLOW_CLIENT_IS_HI] {
        // SAFETY: five u32 words are the 20-byte, 4-aligned FlowState.
        let st: FlowState = unsafe { core::mem::transmute(fresh_words(flags)) };
        let want = fresh(flags);
        assert_eq!(st.next_seq, want.next_seq);
        assert_eq!(st.classifier, want.classifier);
        assert_eq!(
            (st.flags, st.after_verdict),
            (want.flags, want.after_verdict)
        );
    }
}

#[test]
fn the_client_flight_is_taken_once_after_the_server_hello() {
    let mut st = opened();
    assert_eq!(
        client_flight(&mut st, Side::Client, 80),
        0,
        "no ServerHello yet"
    );
    await_client_flight(&mut st);
    assert_eq!(
        client_flight(&mut st, Side::Server, 900),
        0,
        "the server's bytes"
    );
    assert_eq!(
        client_flight(&mut st, Side::Client, 6),
        0,
        "a lone ChangeCipherSpec"
    );
    assert_eq!(client_flight(&mut st, Side::Client, 12), 12);
    assert_eq!(client_flight(&mut st, Side::Client, 736), 0, "only once");
    await_client_flight(&mut st);
    assert_eq!(client_flight(&mut st, Side::Client, 736), FLIGHT_MAX as u32);
}
