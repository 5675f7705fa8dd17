//! Reading verdict events (and TLS hello records) from the kernel and
//! handing each flow to the pipeline.

use crate::{
    clock,
    metrics::Metrics,
    pipeline::Pipeline,
    tls_hello::{self, TlsMeta},
};
use agent_common::wire::{
    EVENT_MIDSTREAM, FAMILY_V4, FlowEvent, HELLO_MAX, HelloHeader, Hook, addr_bytes,
};
use aya::maps::{MapData, RingBuf};
use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};
use tokio::io::unix::AsyncFd;

/// A verdict event decoded into userspace types.
#[derive(Debug, Clone)]
pub struct Flow {
    pub client: IpAddr,
    pub client_port: u16,
    pub server: IpAddr,
    pub server_port: u16,
    pub hook: Option<Hook>,
    pub verdict: agent_common::Verdict,
    pub midstream: bool,
    /// What the flow's TLS hellos said (empty if none was seen).
    pub tls: TlsMeta,
}

/// A connection's endpoints, client first: how hello records find their
/// flow's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowId {
    pub client: IpAddr,
    pub client_port: u16,
    pub server: IpAddr,
    pub server_port: u16,
}

impl Flow {
    pub fn id(&self) -> FlowId {
        FlowId {
            client: self.client,
            client_port: self.client_port,
            server: self.server,
            server_port: self.server_port,
        }
    }
}

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

/// How often the ring buffer is drained when the kernel does not wake us
/// (it wakes us only when the ring is a quarter full; see the kernel's
/// `wakeup_flags`).
const POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// The two rings and what `drain` keeps between calls.
struct Rings {
    events: AsyncFd<RingBuf<MapData>>,
    hellos: AsyncFd<RingBuf<MapData>>,
    pending: PendingHellos,
    batch: Vec<Flow>,
}

/// Drains both ring buffers on every wakeup of either and every `POLL`,
/// when the pipeline also does its housekeeping.
pub async fn consume(
    events: RingBuf<MapData>,
    hellos: RingBuf<MapData>,
    metrics: std::sync::Arc<Metrics>,
    mut pipeline: Pipeline,
) -> anyhow::Result<()> {
    // SAFETY: each ring buffer owns its fd and outlives its registration,
    // which is dropped with `rings` at the end of this function.
    let register = |r| unsafe { AsyncFd::register(r) }.map_err(|e| anyhow::anyhow!("{e}"));
    let mut rings = Rings {
        events: register(events)?,
        hellos: register(hellos)?,
        pending: PendingHellos::default(),
        batch: Vec::new(),
    };
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            guard = rings.events.readable() => guard?.clear_ready(),
            guard = rings.hellos.readable() => guard?.clear_ready(),
            _ = tick.tick() => pipeline.tick(clock::now_ns()),
        }
        rings.drain(&metrics, &mut pipeline);
    }
}

impl Rings {
    /// Verdicts first, then hellos (see `PendingHellos` for why), then the
    /// verdicts go on with their hellos' metadata.
    fn drain(&mut self, metrics: &Metrics, pipeline: &mut Pipeline) {
        let now = clock::now_ns();
        let ring = self.events.get_mut();
        while let Some(item) = ring.next() {
            match decode(&item) {
                Some(flow) => {
                    metrics.events_received.inc();
                    self.batch.push(flow);
                }
                None => {
                    metrics.events_malformed.inc();
                }
            }
        }
        let ring = self.hellos.get_mut();
        while let Some(item) = ring.next() {
            match decode_hello(&item) {
                Some((h, bytes)) => self.pending.add(&h, bytes, now),
                None => {
                    metrics.events_malformed.inc();
                }
            }
        }
        for mut flow in self.batch.drain(..) {
            self.pending.attach(&mut flow);
            pipeline.observe(&flow, now);
        }
        self.pending.expire(now);
    }
}
