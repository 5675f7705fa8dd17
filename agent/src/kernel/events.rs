//! Reading verdict events (and TLS hello records) from the kernel's ring
//! buffers into the pipeline's `Flow` records. The loop that feeds them to
//! the pipeline is the `run` command's (cli/run.rs); what a drain counted
//! comes back as a `RingReading` for the exporter to publish.

use crate::{
    clock,
    pipeline::{
        flow::{Flow, FlowId},
        ftp_data::{self, FtpData},
        tls_hello::{self, TlsMeta},
    },
};
use agent_common::wire::{
    EVENT_MIDSTREAM, FAMILY_V4, FlowEvent, HELLO_KIND_FTP, HELLO_MAX, HelloHeader, Hook, addr_bytes,
};
use aya::maps::{MapData, RingBuf};
use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};
use tokio::io::unix::AsyncFd;

fn addr(family: u8, words: [u32; 4]) -> IpAddr {
    let bytes = addr_bytes(&words);
    if family == FAMILY_V4 {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(bytes))
    }
}

/// Decodes one ring-buffer record; `None` if it is not a whole event.
pub fn decode(bytes: &[u8]) -> Option<Flow> {
    if bytes.len() < size_of::<FlowEvent>() {
        return None;
    }
    // SAFETY: length checked; FlowEvent is plain data valid for any bytes.
    let ev: FlowEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    Some(Flow {
        client: addr(ev.family, ev.client_addr),
        client_port: ev.client_port,
        server: addr(ev.family, ev.server_addr),
        server_port: ev.server_port,
        hook: Hook::from_u8(ev.hook),
        verdict: ev.verdict(),
        midstream: ev.flags & EVENT_MIDSTREAM != 0,
        tls: TlsMeta::default(),
    })
}

/// Decodes one `HELLOS` record: the header and the hello bytes; `None` if
/// the record is not a whole header with the bytes it announces.
pub fn decode_hello(bytes: &[u8]) -> Option<(HelloHeader, &[u8])> {
    let (head, rest) = bytes.split_at_checked(size_of::<HelloHeader>())?;
    // SAFETY: length checked; HelloHeader is plain data valid for any bytes.
    let h: HelloHeader = unsafe { std::ptr::read_unaligned(head.as_ptr().cast()) };
    let len = usize::try_from(h.len)
        .ok()
        .filter(|n| (1..=HELLO_MAX).contains(n))?;
    Some((h, rest.get(..len)?))
}

/// Hellos waiting for their flow's verdict, which comes on the ServerHello
/// (or at the close, for a flow whose server never answered).
///
/// Why a hello never arrives after its verdict: the kernel writes a hello
/// record before it classifies the segment that carries it, and the
/// ClientHello precedes the ServerHello that decides; `drain` reads the
/// verdict ring first and the hello ring after, so every hello written
/// before a verdict we hold is read in the same drain.
///
/// Bounded: at most `PENDING_MAX` flows, each for at most `PENDING_TTL_NS`
/// (a hello whose flow never gets a verdict, e.g. evicted from the flow
/// table, must not stay). When full, the new hello is dropped: a flow
/// then shows no TLS metadata, and its verdict is unaffected.
#[derive(Default)]
pub struct PendingHellos {
    flows: HashMap<FlowId, (TlsMeta, i64)>,
}

const PENDING_MAX: usize = 8192;
const PENDING_TTL_NS: i64 = 60_000_000_000;

impl PendingHellos {
    /// Adds one decoded hello record.
    pub fn add(&mut self, h: &HelloHeader, bytes: &[u8], now_ns: i64) {
        let Some(hello) = tls_hello::parse(bytes) else {
            return;
        };
        let id = FlowId {
            client: addr(h.family, h.client_addr),
            client_port: h.client_port,
            server: addr(h.family, h.server_addr),
            server_port: h.server_port,
        };
        if self.flows.len() >= PENDING_MAX && !self.flows.contains_key(&id) {
            self.expire(now_ns);
            if self.flows.len() >= PENDING_MAX {
                log::debug!("TLS hello of {id:?} dropped: {PENDING_MAX} flows await their verdict");
                return;
            }
        }
        let entry = self
            .flows
            .entry(id)
            .or_insert_with(|| (TlsMeta::default(), now_ns));
        entry.0.add(hello);
    }

    /// Gives a flow its hellos' metadata, and the version a ServerHello
    /// showed if the kernel could not read it.
    pub fn attach(&mut self, f: &mut Flow) {
        // Most flows have no hellos: skip hashing their id.
        if self.flows.is_empty() {
            return;
        }
        if let Some((meta, _)) = self.flows.remove(&f.id()) {
            meta.refine(&mut f.verdict);
            f.tls = meta;
        }
    }

    pub fn expire(&mut self, now_ns: i64) {
        self.flows
            .retain(|_, (_, since)| now_ns.saturating_sub(*since) < PENDING_TTL_NS);
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

/// Which ring failed (`EVENTS`, `HELLOS`); the errno is the source.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("registering the {ring} ring buffer with the runtime")]
    Register {
        ring: &'static str,
        #[source]
        error: std::io::Error,
    },
    #[error("waiting for records in the {ring} ring buffer")]
    Wait {
        ring: &'static str,
        #[source]
        error: std::io::Error,
    },
}

/// How often the ring buffer is drained when the kernel does not wake us
/// (it wakes us only when the ring is a quarter full; see the kernel's
/// `wakeup_flags`).
pub const POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// What one drain read besides the flows: counts for the exporter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingReading {
    /// Verdict events decoded.
    pub received: u64,
    /// Records that were not a whole verdict event or hello record.
    pub malformed: u64,
}

/// The two rings and what `drain` keeps between calls.
pub struct Rings {
    events: AsyncFd<RingBuf<MapData>>,
    hellos: AsyncFd<RingBuf<MapData>>,
    pending: PendingHellos,
    /// FTP data connections announced on control connections.
    ftp: FtpData,
    batch: Vec<Flow>,
}

impl Rings {
    pub fn new(events: RingBuf<MapData>, hellos: RingBuf<MapData>) -> Result<Self, EventsError> {
        // SAFETY: each ring buffer owns its fd and outlives its registration,
        // which is dropped with the `Rings`.
        let register = |ring, r| {
            unsafe { AsyncFd::register(r) }.map_err(|e| EventsError::Register {
                ring,
                error: e.into(),
            })
        };
        Ok(Self {
            events: register("EVENTS", events)?,
            hellos: register("HELLOS", hellos)?,
            pending: PendingHellos::default(),
            ftp: FtpData::default(),
            batch: Vec::new(),
        })
    }

    /// Waits until the kernel wakes us for either ring; drain every `POLL`
    /// besides.
    pub async fn readable(&mut self) -> Result<(), EventsError> {
        let wait = |ring| move |error| EventsError::Wait { ring, error };
        tokio::select! {
            guard = self.events.readable() => guard.map_err(wait("EVENTS"))?.clear_ready(),
            guard = self.hellos.readable() => guard.map_err(wait("HELLOS"))?.clear_ready(),
        }
        Ok(())
    }

    /// Verdicts first, then hellos (see `PendingHellos` for why), then the
    /// verdicts go to `observe` with their hellos' metadata and the time
    /// of the drain.
    pub fn drain(&mut self, mut observe: impl FnMut(&Flow, i64)) -> RingReading {
        let now = clock::now_ns();
        let mut read = RingReading::default();
        let ring = self.events.get_mut();
        while let Some(item) = ring.next() {
            match decode(&item) {
                Some(flow) => {
                    read.received += 1;
                    self.batch.push(flow);
                }
                None => read.malformed += 1,
            }
        }
        let ring = self.hellos.get_mut();
        while let Some(item) = ring.next() {
            match decode_hello(&item) {
                Some((h, bytes)) if h.kind == HELLO_KIND_FTP => {
                    if let Some(a) = ftp_data::parse(bytes) {
                        let client = SocketAddr::new(addr(h.family, h.client_addr), h.client_port);
                        let server = SocketAddr::new(addr(h.family, h.server_addr), h.server_port);
                        self.ftp.announce(client, server, a, now);
                    }
                }
                Some((h, bytes)) => self.pending.add(&h, bytes, now),
                None => read.malformed += 1,
            }
        }
        for mut flow in self.batch.drain(..) {
            self.pending.attach(&mut flow);
            let ends = [
                SocketAddr::new(flow.client, flow.client_port),
                SocketAddr::new(flow.server, flow.server_port),
            ];
            self.ftp.name(ends, &mut flow.verdict, now);
            observe(&flow, now);
        }
        self.pending.expire(now);
        read
    }
}
