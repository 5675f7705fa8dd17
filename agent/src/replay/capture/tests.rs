//! The readers on real captures (agent/tests/data, written by tcpdump and
//! dumpcap), on re-encodings of them, and on broken files.

use super::{Capture, CaptureError};
use crate::replay::testutil::{Order, Owned, Packets, data_file, frames, pcap, pcapng_section};

fn open_err(bytes: &[u8]) -> CaptureError {
    match Capture::open(bytes) {
        Ok(_) => panic!("opened"),
        Err(e) => e,
    }
}

/// Reads until the first error.
fn read_err(bytes: &[u8]) -> CaptureError {
    let mut cap = Capture::open(bytes).expect("header");
    loop {
        match cap.next_frame() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("read to the end"),
            Err(e) => return e,
        }
    }
}

#[test]
fn tcpdump_pcap_microseconds_ethernet() {
    let f = frames(&data_file("loopback.pcap"));
    assert!(f.len() > 40, "{} packets", f.len());
    assert!(f.iter().all(|p| p.link_type == 1));
    // 2025 or later, and stamps only go forward.
    assert!(f[0].ts_ns > 1_735_689_600_000_000_000, "{}", f[0].ts_ns);
    assert!(f.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    // Microsecond stamps: whole thousands of nanoseconds.
    assert!(f.iter().all(|p| p.ts_ns % 1000 == 0));
    // Ethernet + IPv4 or IPv6.
    assert!(
        f.iter()
            .all(|p| matches!(&p.data[12..14], [0x08, 0x00] | [0x86, 0xdd]))
    );
}

#[test]
fn tcpdump_pcap_nanoseconds_sll2() {
    let f = frames(&data_file("any-sll2.pcap"));
    assert!(!f.is_empty());
    assert!(
        f.iter()
            .all(|p| p.link_type == 276 && p.data[..2] == [0x08, 0x00])
    );
    assert!(f.iter().any(|p| p.ts_ns % 1000 != 0), "nanosecond stamps");
}

#[test]
fn dumpcap_pcapng_matches_tcpdump_pcap() {
    // Two tools recording the same traffic on the same interface.
    let ng = frames(&data_file("loopback.pcapng"));
    let pc = frames(&data_file("loopback.pcap"));
    let data = |f: &[Owned]| f.iter().map(|p| p.data.clone()).collect::<Vec<_>>();
    assert_eq!(data(&ng), data(&pc));
    for (a, b) in ng.iter().zip(&pc) {
        assert!(
            (a.ts_ns - b.ts_ns).abs() < 1_000_000,
            "{} vs {}",
            a.ts_ns,
            b.ts_ns
        );
    }
}

#[test]
fn every_encoding_reads_back_the_same_packets() {
    let orig = frames(&data_file("any-sll2.pcap"));
    for o in [Order::Little, Order::Big] {
        assert_eq!(frames(&pcap(&orig, 276, o, true)), orig);
        for p in [Packets::Enhanced, Packets::Obsolete] {
            assert_eq!(frames(&pcapng_section(&orig, o, p)), orig);
        }
        // Simple Packet Blocks carry no timestamp.
        let spb = frames(&pcapng_section(&orig, o, Packets::Simple));
        assert!(spb.iter().all(|p| p.ts_ns == 0));
        let data = |f: &[Owned]| f.iter().map(|p| p.data.clone()).collect::<Vec<_>>();
        assert_eq!(data(&spb), data(&orig));
    }
    // Microsecond pcap keeps the microseconds.
    let us = frames(&pcap(&orig, 276, Order::Big, false));
    assert!(
        us.iter()
            .zip(&orig)
            .all(|(a, b)| a.ts_ns == b.ts_ns / 1000 * 1000)
    );
}

#[test]
fn pcapng_sections_change_byte_order_and_interfaces() {
    let eth = frames(&data_file("loopback.pcap"));
    let sll2 = frames(&data_file("any-sll2.pcap"));
    let mut file = pcapng_section(&eth[..5], Order::Little, Packets::Enhanced);
    file.extend(pcapng_section(&sll2[..5], Order::Big, Packets::Enhanced));
    // Interfaces of mixed link types within one section.
    let mixed: Vec<Owned> = eth[5..8].iter().chain(&sll2[5..8]).cloned().collect();
    file.extend(pcapng_section(&mixed, Order::Little, Packets::Enhanced));
    let got = frames(&file);
    let want: Vec<Owned> = eth[..5]
        .iter()
        .chain(&sll2[..5])
        .chain(&mixed)
        .cloned()
        .collect();
    assert_eq!(got, want);
}

#[test]
fn pcapng_timestamp_resolution_and_offset() {
    // An IDB with if_tsresol = 2^-10 and if_tsoffset = 100 s; one EPB.
    let mut b = Vec::new();
    let mut block = |kind: u32, body: &[u8]| {
        let len = 12 + body.len() as u32;
        b.extend(kind.to_le_bytes());
        b.extend(len.to_le_bytes());
        b.extend(body);
        b.extend(len.to_le_bytes());
    };
    let mut shb = 0x1a2b_3c4d_u32.to_le_bytes().to_vec();
    shb.extend([1, 0, 0, 0]);
    shb.extend([0xff; 8]);
    block(0x0a0d_0d0a, &shb);
    let mut idb = vec![101, 0, 0, 0, 0, 0, 0, 0];
    idb.extend([9, 0, 1, 0, 0x80 | 10, 0, 0, 0]);
    idb.extend([14, 0, 8, 0]);
    idb.extend(100i64.to_le_bytes());
    idb.extend([0, 0, 0, 0]);
    block(1, &idb);
    let mut epb = vec![0, 0, 0, 0, 0, 0, 0, 0];
    epb.extend(2048u32.to_le_bytes()); // 2 s in 1/1024 units
    epb.extend([4, 0, 0, 0, 4, 0, 0, 0, 0x45, 0, 0, 0]);
    block(6, &epb);
    let f = frames(&b);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].ts_ns, 102_000_000_000);
    assert_eq!(f[0].link_type, 101);
    assert_eq!(f[0].data, [0x45, 0, 0, 0]);
}

#[test]
fn not_a_capture_says_so() {
    assert!(matches!(open_err(b""), CaptureError::Empty));
    let e = open_err(b"<!DOCTYPE html>");
    assert_eq!(
        e.to_string(),
        "not a pcap or pcapng capture (it starts with 3c 21 44 4f)"
    );
    let e = open_err(&[0x1f, 0x8b, 8, 0, 0, 0]);
    assert!(e.to_string().contains("gzip-compressed"), "{e}");
    assert!(matches!(
        open_err(b"\xd4\xc3"),
        CaptureError::Truncated { .. }
    ));
    assert!(matches!(
        open_err(b"\xd4\xd4"),
        CaptureError::NotACapture { .. }
    ));
}

#[test]
fn truncated_files_name_the_offset() {
    let file = data_file("loopback.pcap");
    let e = open_err(&file[..10]);
    assert_eq!(
        e.to_string(),
        "truncated pcap file header at byte offset 0: needs 24 bytes, the file ends after 10"
    );
    // Cut inside the first record's data: the record starts after the
    // 24-byte file header.
    let e = read_err(&file[..24 + 16 + 10]);
    assert!(
        matches!(
            e,
            CaptureError::Truncated {
                offset: 24,
                got: 26,
                ..
            }
        ),
        "{e}"
    );
    let e = read_err(&file[..24 + 5]);
    assert!(
        e.to_string()
            .starts_with("truncated packet record header at byte offset 24"),
        "{e}"
    );
    let ng = data_file("loopback.pcapng");
    let e = read_err(&ng[..ng.len() - 3]);
    assert!(
        e.to_string()
            .starts_with("truncated pcapng block at byte offset"),
        "{e}"
    );
}

#[test]
fn corrupt_lengths_are_errors() {
    let mut file = data_file("loopback.pcap");
    // First record's captured length: 2 GiB.
    file[24 + 8..24 + 12].copy_from_slice(&0x8000_0000u32.to_le_bytes());
    let e = read_err(&file);
    assert!(matches!(e, CaptureError::Corrupt { offset: 24, .. }), "{e}");

    let mut ng = data_file("loopback.pcapng");
    // The first block's trailing length.
    let shb_len = u32::from_le_bytes([ng[4], ng[5], ng[6], ng[7]]) as usize;
    ng[shb_len - 4] ^= 0x40;
    let e = read_err(&ng);
    assert_eq!(
        e.to_string(),
        format!(
            "corrupt pcapng block at byte offset 0: length {shb_len} at its start but {} at its end",
            shb_len ^ 0x40
        )
    );
}

#[test]
fn packets_on_undescribed_interfaces_are_corrupt() {
    let orig = frames(&data_file("any-sll2.pcap"));
    let mut ng = pcapng_section(&orig[..1], Order::Little, Packets::Enhanced);
    // The EPB, after the 28-byte SHB and the IDB, names interface 7.
    let idb_len = u32::from_le_bytes([ng[32], ng[33], ng[34], ng[35]]) as usize;
    ng[28 + idb_len + 8] = 7;
    let e = read_err(&ng);
    assert!(e.to_string().contains("interface 7"), "{e}");
}

#[test]
fn unsupported_versions() {
    let mut file = data_file("loopback.pcap");
    file[4] = 1;
    assert!(matches!(
        open_err(&file),
        CaptureError::Unsupported { offset: 4, .. }
    ));
}

#[test]
fn single_byte_corruptions_never_panic() {
    for name in ["any-sll2.pcap", "loopback.pcapng"] {
        let file = data_file(name);
        for i in 0..file.len() {
            for flip in [0xff, 0x80, 0x01] {
                let mut bad = file.clone();
                bad[i] ^= flip;
                let mut sink = |_| {};
                let _ = crate::replay::replay_reader(&bad[..], &mut sink);
            }
        }
    }
}
