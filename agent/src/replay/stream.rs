//! One direction of a TCP connection, put back in sequence order.
//!
//! The kernel classifies a segment only if it starts exactly where the last
//! one ended, so retransmits and duplicates are never classified twice. A
//! capture also shows segments out of order (and a kernel in the path would
//! have seen them reordered by the stack), so replay holds a few early
//! segments until the gap before them fills. Past a gap that never fills it
//! classifies nothing, as the kernel would: the bytes after it are not the
//! first bytes.

/// Out-of-order segments held per direction. A handful covers reordering;
/// the classifier reads only the first few segments anyway.
const MAX_PENDING: usize = 8;

#[derive(Default)]
pub struct Stream {
    /// The sequence number the next new byte has; `None` before the SYN or
    /// the first payload segment.
    next: Option<u32>,
    pending: Vec<Pending>,
}

struct Pending {
    seq: u32,
    len: u32,
    bytes: Vec<u8>,
}

/// Signed distance from `b` to `a` in sequence space (RFC 1982 arithmetic).
fn diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

impl Stream {
    /// The first data byte will have sequence number `seq` (SYN + 1). A
    /// retransmitted SYN changes nothing.
    pub fn start_at(&mut self, seq: u32) {
        self.next.get_or_insert(seq);
    }

    /// Takes one payload segment (`len` bytes of sequence space, `bytes` of
    /// them captured). Returns the captured payloads that are now in order:
    /// this segment's new bytes and any held segments that follow it.
    pub fn push(&mut self, seq: u32, len: u32, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let next = *self.next.get_or_insert(seq);
        if diff(seq, next) > 0 {
            let held = self.pending.iter().any(|p| p.seq == seq);
            if !held && self.pending.len() < MAX_PENDING {
                self.pending.push(Pending {
                    seq,
                    len,
                    bytes: bytes.to_vec(),
                });
            }
            return out;
        }
        self.take(seq, len, bytes, &mut out);
        // Held segments that now start at (or before) the next byte.
        while let Some(i) = self
            .pending
            .iter()
            .position(|p| self.next.is_some_and(|n| diff(p.seq, n) <= 0))
        {
            let p = self.pending.swap_remove(i);
            self.take(p.seq, p.len, &p.bytes, &mut out);
        }
        out
    }

    /// A segment starting at or before `next`: keeps its new bytes, if any
    /// (a retransmit may be repacketised and carry old and new data).
    fn take(&mut self, seq: u32, len: u32, bytes: &[u8], out: &mut Vec<Vec<u8>>) {
        let Some(next) = self.next else {
            return;
        };
        let end = seq.wrapping_add(len);
        if diff(end, next) <= 0 {
            return; // nothing new: a retransmit or duplicate
        }
        let old = next.wrapping_sub(seq) as usize;
        if let Some(new) = bytes.get(old..).filter(|b| !b.is_empty()) {
            out.push(new.to_vec());
        }
        self.next = Some(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(s: &mut Stream, seq: u32, data: &[u8]) -> Vec<Vec<u8>> {
        s.push(seq, data.len() as u32, data)
    }

    #[test]
    fn in_order_and_retransmits() {
        let mut s = Stream::default();
        s.start_at(101);
        assert_eq!(push(&mut s, 101, b"abc"), vec![b"abc".to_vec()]);
        assert!(push(&mut s, 101, b"abc").is_empty(), "retransmit");
        assert!(push(&mut s, 103, b"c").is_empty(), "keep-alive style");
        assert_eq!(push(&mut s, 104, b"de"), vec![b"de".to_vec()]);
    }

    #[test]
    fn out_of_order_is_released_when_the_gap_fills() {
        let mut s = Stream::default();
        s.start_at(1);
        assert!(push(&mut s, 4, b"def").is_empty());
        assert!(push(&mut s, 7, b"gh").is_empty());
        assert_eq!(
            push(&mut s, 1, b"abc"),
            vec![b"abc".to_vec(), b"def".to_vec(), b"gh".to_vec()]
        );
    }

    #[test]
    fn repacketised_retransmit_gives_only_new_bytes() {
        let mut s = Stream::default();
        s.start_at(1);
        push(&mut s, 1, b"ab");
        assert_eq!(push(&mut s, 1, b"abcd"), vec![b"cd".to_vec()]);
    }

    #[test]
    fn first_payload_starts_a_stream_without_syn() {
        let mut s = Stream::default();
        assert_eq!(push(&mut s, 9, b"x"), vec![b"x".to_vec()]);
        assert!(push(&mut s, 8, b"w").is_empty());
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut s = Stream::default();
        s.start_at(u32::MAX - 1);
        assert!(push(&mut s, 1, b"cd").is_empty());
        assert_eq!(
            push(&mut s, u32::MAX - 1, b"ab!"),
            vec![b"ab!".to_vec(), b"cd".to_vec()]
        );
    }

    #[test]
    fn pending_is_bounded() {
        let mut s = Stream::default();
        s.start_at(0);
        for i in 1..100u32 {
            push(&mut s, i * 10, b"x");
        }
        assert_eq!(s.pending.len(), MAX_PENDING);
    }
}
