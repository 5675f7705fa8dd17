//! `plainsight replay` on hostile files: the pcap/pcapng readers
//! (agent/src/replay/capture), link and IP/TCP decoding, and the tracker
//! and classifier behind them. Whatever the bytes, no panic, an error that
//! can be printed, and every flow counted once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plainsight::replay::replay_reader;
use plainsight_fuzz::assert_coherent;

fuzz_target!(|data: &[u8]| {
    let mut flows = 0;
    let result = replay_reader(data, &mut |r| {
        flows += 1;
        assert_coherent(&r.verdict);
    });
    match result {
        Ok(stats) => {
            assert_eq!(stats.flows, flows);
            assert!(stats.tcp_segments <= stats.packets);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
