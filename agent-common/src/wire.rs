//! Types that cross the kernel/userspace boundary. `#[repr(C)]`, explicit
//! widths, fields largest-first and explicit padding, so both sides agree on
//! every byte; `size_of` is pinned by const assertions.

use crate::{Encryption, Protocol, Reason, TlsVersion, Verdict};

/// Bytes of each payload segment the classifier sees. 128 covers every
/// opening message we recognise (a MySQL HandshakeResponse's capability
/// flags sit at offset 4..8, a PostgreSQL SSLRequest is 8 bytes, banners
/// name themselves in their first words), usually reaches the
/// supported_versions extension of a TLS 1.3 ServerHello with an X25519 key
/// share, and fits the 512-byte BPF stack.
pub const PREFIX: usize = 128;

/// Payload segments inspected per direction before giving up. Server-first
/// protocols and STARTTLS upgrades need a few round trips (SMTP: greeting,
/// EHLO reply, often in two segments, the STARTTLS answer, the
/// ServerHello); after that the flow costs one map lookup per packet.
pub const MAX_SEGMENTS: u8 = 6;

/// Default capacity of the kernel flow table (`--max-flows`).
pub const DEFAULT_MAX_FLOWS: u32 = 65_536;

/// Capacity of the embryonic table (flows that have carried no payload yet:
/// handshakes) for a flow table of `max_flows`. A quarter, at least 256:
/// a handshake lives one round trip, so few are open at once, and a SYN
/// flood only ever evicts other handshakes (see `track::carries_payload`).
#[must_use]
pub const fn embryonic_capacity(max_flows: u32) -> u32 {
    let quarter = max_flows / 4;
    if quarter < 256 { 256 } else { quarter }
}

/// Address family of a flow, as carried in keys and events.
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

/// Which program saw the flow.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Cgroup = 0,
    Tc = 1,
}

impl Hook {
    #[must_use]
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Cgroup),
            1 => Some(Self::Tc),
            _ => None,
        }
    }

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cgroup => "cgroup",
            Self::Tc => "tc",
        }
    }
}

/// Canonical flow key: one endpoint ordering for both directions of a
/// connection, so both find the same entry. Addresses are network-order
/// bytes held in four `u32` words (IPv4 in the first; the rest zero): word
/// stores and compares are single BPF instructions, where byte arrays turn
/// into calls to memset. The order itself only has to be consistent.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub lo_addr: [u32; 4],
    pub hi_addr: [u32; 4],
    pub lo_port: u16,
    pub hi_port: u16,
    pub family: u8,
    pub _pad0: u8,
    pub _pad1: u16,
}
const _: () = assert!(core::mem::size_of::<FlowKey>() == 40);

impl FlowKey {
    /// (client address, client port, server address, server port), given
    /// which endpoint the flow's state says is the client.
    #[must_use]
    #[inline(always)]
    pub const fn endpoints(&self, client_is_hi: bool) -> ([u32; 4], u16, [u32; 4], u16) {
        if client_is_hi {
            (self.hi_addr, self.hi_port, self.lo_addr, self.lo_port)
        } else {
            (self.lo_addr, self.lo_port, self.hi_addr, self.hi_port)
        }
    }
}

/// Network-order address bytes of a key word array.
#[must_use]
pub fn addr_bytes(words: &[u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 4 {
        let b = words[i].to_ne_bytes();
        out[i * 4] = b[0];
        out[i * 4 + 1] = b[1];
        out[i * 4 + 2] = b[2];
        out[i * 4 + 3] = b[3];
        i += 1;
    }
    out
}

/// `FlowState.flags` bits.
pub const FLOW_MIDSTREAM: u8 = 1;
pub const FLOW_CLIENT_IS_HI: u8 = 2;
pub const FLOW_DONE: u8 = 4;
pub const FLOW_SEQ_CLIENT: u8 = 8;
pub const FLOW_SEQ_SERVER: u8 = 16;
pub const FLOW_FIN_CLIENT: u8 = 32;
pub const FLOW_FIN_SERVER: u8 = 64;
/// A ServerHello was exported and the client's next flight has not been
/// seen yet: its head shows whether the client sent a certificate
/// (`track::client_flight`, README "Mutual TLS").
pub const FLOW_AWAIT_FLIGHT: u8 = 128;

/// Per-flow kernel state, the value of the flow table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FlowState {
    /// Next expected sequence number per side (client, server): a segment
    /// that does not start there is a retransmit or a second sighting of the
    /// same packet (both ends on one node) and is not classified again.
    pub next_seq: [u32; 2],
    pub classifier: crate::FlowClassifier,
    pub flags: u8,
    /// Segments (other than pure ACKs) seen after the verdict, up to
    /// `MARK_SOCKET_AFTER`.
    pub after_verdict: u8,
    /// 1 once the flow's SYN was seen twice: both ends of the connection
    /// are on this node (or the SYN was retransmitted). The kernel then
    /// remembers each of its segments per CPU, so that the second
    /// sighting skips the flow table.
    pub node_local: u8,
    pub _pad1: u8,
}

/// Segments (pure ACKs skip the flow table and do not count) a decided flow
/// must carry before the cgroup hook marks its
/// socket for the shortcut: creating socket storage costs about a
/// microsecond, which a short connection (a request, a reply, a close)
/// would never earn back.
pub const MARK_SOCKET_AFTER: u8 = 8;
const _: () = assert!(core::mem::size_of::<FlowState>() == 20);
const _: () = assert!(core::mem::align_of::<FlowState>() == 4);

/// One classified flow, sent once per flow on the ring buffer. Carries the
/// verdict, never application bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FlowEvent {
    /// Network-order address words, as in `FlowKey`.
    pub client_addr: [u32; 4],
    pub server_addr: [u32; 4],
    pub client_port: u16,
    pub server_port: u16,
    pub family: u8,
    pub hook: u8,
    pub protocol: u8,
    pub encryption: u8,
    pub reason: u8,
    pub tls_version: u8,
    /// `EVENT_*` bits.
    pub flags: u8,
    pub _pad0: u8,
}
const _: () = assert!(core::mem::size_of::<FlowEvent>() == 44);

/// `FlowEvent.flags`: the flow was first seen without its SYN (the verdict's
/// `midstream` reason is the classifier's call; this says how it was seen).
pub const EVENT_MIDSTREAM: u8 = 1;

impl FlowEvent {
    /// The verdict this event carries; unknown wire values read as `unknown`.
    #[must_use]
    pub fn verdict(&self) -> Verdict {
        Verdict {
            protocol: Protocol::from_u8(self.protocol).unwrap_or(Protocol::Unknown),
            encryption: Encryption::from_u8(self.encryption).unwrap_or(Encryption::Unknown),
            reason: Reason::from_u8(self.reason).unwrap_or(Reason::None),
            tls_version: TlsVersion::from_u8(self.tls_version).unwrap_or(TlsVersion::Unknown),
        }
    }
}

/// Most bytes of one hello exported (`HelloEvent`). Measured on the
/// corpus's real hellos: curl/OpenSSL/Go ClientHellos are 200–520 bytes with
/// SNI and ALPN in their first ~350; Chrome's post-quantum ClientHello is
/// 1756 bytes with its extensions in random order (SNI ended at byte 1751,
/// ALPN at 1467); ServerHellos are 60–160 bytes, 1215 with an ML-KEM key
/// share before supported_versions. 2048 covers all of them when the hello
/// arrives as one segment. Only the hello's own record is copied, so most
/// exports are far smaller.
pub const HELLO_MAX: usize = 2048;

/// What precedes the hello bytes in a `HELLOS` ring-buffer record: the flow
/// the hello belongs to, oriented like `FlowEvent`, so userspace can join
/// it with that flow's verdict.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HelloHeader {
    pub client_addr: [u32; 4],
    pub server_addr: [u32; 4],
    pub client_port: u16,
    pub server_port: u16,
    pub family: u8,
    /// `classify::tls::HelloKind`: 1 ClientHello, 2 ServerHello; or
    /// `HELLO_KIND_CLIENT_FLIGHT` or `HELLO_KIND_FTP`.
    pub kind: u8,
    pub _pad0: u16,
    /// Bytes that follow the header (1..=EXPORT_MAX: `HELLO_MAX` for a
    /// hello, and `CERT_MAX` more for the Certificate after a ServerHello).
    pub len: u32,
    pub _pad1: u32,
}
const _: () = assert!(core::mem::size_of::<HelloHeader>() == 48);

/// `HelloHeader.kind` of a client-flight record: the first `FLIGHT_MAX`
/// bytes of the client's first segment after the ServerHello that is more
/// than a lone ChangeCipherSpec. Record headers and, up to TLS 1.2, the
/// cleartext handshake header of the client's Certificate: enough to tell
/// whether the client authenticated (agent pipeline/client_auth.rs), and
/// nothing of the application's bytes.
pub const HELLO_KIND_CLIENT_FLIGHT: u8 = 3;

/// Bytes of the client's flight exported: a ChangeCipherSpec record (6),
/// then a record header (5) and, up to TLS 1.2, a handshake header (4) and
/// the length of the certificate list (3) need 12; TLS 1.3 needs 11.
pub const FLIGHT_MAX: usize = 16;

/// Most bytes of the server's Certificate record exported with the
/// ServerHello before it (TLS ≤ 1.2, when it starts in the ServerHello's
/// segment: `classify::tls::export_len`): the record and handshake headers
/// and the chain's first certificate, the server's own, which is all that
/// is read (1–2 KB for RSA-2048 and P-256 certificates, up to 4 KB with
/// long name lists). Longer ones are counted as truncated.
pub const CERT_MAX: usize = 4096;

/// `HelloHeader::kind` of an FTP control connection's line that announces
/// a data connection (`classify::mail::ftp_announces`), at most `PREFIX`
/// bytes: it shares the hello ring (bounded public metadata, an address
/// and a port) rather than adding a third.
pub const HELLO_KIND_FTP: u8 = 0x46;

/// A hello record as the kernel assembles it; only the header and `len`
/// bytes of `bytes` go on the ring.
#[repr(C)]
pub struct HelloEvent {
    pub header: HelloHeader,
    pub bytes: [u8; EXPORT_MAX],
}

/// Most bytes of one hello record on the ring: a ServerHello and the
/// server's Certificate record after it.
pub const EXPORT_MAX: usize = HELLO_MAX + CERT_MAX;

/// Per-CPU kernel counters; the index into the `STATS` array.
///
/// The hot paths bump one slot each, so the kernel's `Packets` and
/// `TcpPackets` slots hold only what the others do not: read them through
/// `Stat::totals`, which adds the shortcut and parse-failure slots back in.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// Every packet the hook programs saw (derived by `totals`; the kernel
    /// slot stays 0).
    Packets = 0,
    /// TCP packets parsed (the kernel slot counts those that went through
    /// the flow tracker; `totals` adds `PureAcks` and the two fast paths).
    TcpPackets = 1,
    PayloadSegments = 2,
    FlowsCreated = 3,
    VerdictsEmitted = 4,
    EventsLost = 5,
    ParseTruncated = 6,
    ParseFragment = 7,
    ParseIpv6ExtLimit = 8,
    FlowTableFull = 9,
    PayloadLoadFailed = 10,
    FlowsClosed = 11,
    Loopback = 12,
    ParseBadTcpOffset = 13,
    NotTcp = 14,
    TailCallFailed = 15,
    /// Packets of decided flows that took the cgroup hook's socket-storage
    /// shortcut instead of a flow-table lookup.
    SocketFastPath = 16,
    /// TLS hellos put on the `HELLOS` ring.
    HellosExported = 17,
    /// TLS hellos dropped because the `HELLOS` ring was full.
    HellosLost = 18,
    /// Segments without payload and without SYN/FIN/RST: they change no
    /// flow state, so they skip the flow table on both hooks.
    PureAcks = 19,
    /// TC hook: segments of decided flows that continued exactly where the
    /// CPU's recent-flow slot left off, and skipped the flow table.
    RecentFastPath = 20,
    /// Flows opened by a bare SYN, in the embryonic table until their first
    /// payload. `FlowsCreated`/`FlowsClosed` count the main table only, so
    /// its evictions are flows that carried payload.
    EmbryosCreated = 21,
    /// Embryonic flows moved to the main table at their first payload.
    EmbryosPromoted = 22,
    /// Embryonic flows closed (FIN/RST) before any payload. Embryonic
    /// evictions = created - promoted - closed - entries.
    EmbryosClosed = 23,
    /// Segments the credentials scan read past the prefix
    /// (`classify::credentials`): at most one per flow.
    CredentialScans = 24,
    /// Segments that skipped the flow table as the second sighting of the
    /// segment this CPU's hook just tracked (both sockets of a node-local
    /// connection on the cgroup hook, both pods' veths on TC).
    SecondSightings = 25,
}

impl Stat {
    pub const COUNT: u32 = 26;

    /// The slots of TCP segments that skipped the flow table: the raw
    /// `TcpPackets` slot counts only those that took the long way.
    pub const SHORTCUTS: [Stat; 4] = [
        Self::PureAcks,
        Self::SocketFastPath,
        Self::RecentFastPath,
        Self::SecondSightings,
    ];

    /// Packet totals from the kernel's raw per-slot sums: every packet is
    /// counted in exactly one of the tracked, shortcut and parse-failure
    /// slots, and `Packets` / `TcpPackets` are rebuilt from them.
    #[must_use]
    pub fn totals(mut raw: [u64; Self::COUNT as usize]) -> [u64; Self::COUNT as usize] {
        let tcp = raw[Self::TcpPackets as usize]
            + Self::SHORTCUTS
                .iter()
                .map(|s| raw[*s as usize])
                .sum::<u64>();
        let failed: u64 = [
            Self::ParseTruncated,
            Self::ParseFragment,
            Self::ParseIpv6ExtLimit,
            Self::ParseBadTcpOffset,
            Self::NotTcp,
        ]
        .iter()
        .map(|s| raw[*s as usize])
        .sum();
        raw[Self::TcpPackets as usize] = tcp;
        raw[Self::Packets as usize] = tcp + failed;
        raw
    }

    pub const ALL: [Stat; Self::COUNT as usize] = [
        Self::Packets,
        Self::TcpPackets,
        Self::PayloadSegments,
        Self::FlowsCreated,
        Self::VerdictsEmitted,
        Self::EventsLost,
        Self::ParseTruncated,
        Self::ParseFragment,
        Self::ParseIpv6ExtLimit,
        Self::FlowTableFull,
        Self::PayloadLoadFailed,
        Self::FlowsClosed,
        Self::Loopback,
        Self::ParseBadTcpOffset,
        Self::NotTcp,
        Self::TailCallFailed,
        Self::SocketFastPath,
        Self::HellosExported,
        Self::HellosLost,
        Self::PureAcks,
        Self::RecentFastPath,
        Self::EmbryosCreated,
        Self::EmbryosPromoted,
        Self::EmbryosClosed,
        Self::CredentialScans,
        Self::SecondSightings,
    ];
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` data with explicit padding and no pointers.
    unsafe impl aya::Pod for super::FlowKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FlowState {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FlowEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::HelloHeader {}
}

#[cfg(test)]
mod tests {
    use super::Stat;

    #[test]
    fn stat_list_is_in_slot_order() {
        for (i, s) in Stat::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i, "{s:?}");
        }
    }

    #[test]
    fn totals_count_each_packet_once_whichever_slot_it_went_to() {
        let mut raw = [0u64; Stat::COUNT as usize];
        for (s, n) in [
            (Stat::TcpPackets, 5),
            (Stat::PureAcks, 7),
            (Stat::SocketFastPath, 11),
            (Stat::RecentFastPath, 13),
            (Stat::NotTcp, 2),
            (Stat::ParseTruncated, 1),
        ] {
            raw[s as usize] = n;
        }
        let t = Stat::totals(raw);
        assert_eq!(t[Stat::TcpPackets as usize], 5 + 7 + 11 + 13);
        assert_eq!(t[Stat::Packets as usize], 5 + 7 + 11 + 13 + 2 + 1);
        assert_eq!(t[Stat::RecentFastPath as usize], 13, "slots stay");
    }
}
