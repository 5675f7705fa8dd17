//! Reading verdict events (and TLS hello records) from the kernel's ring
//! buffers into the pipeline's `Flow` records. The loop that feeds them to
//! the pipeline is the `run` command's (cli/run.rs); what a drain counted
//! comes back as a `RingReading` for the exporter to publish.

use crate::{
    clock,
    pipeline::{
        flow::{Flow, FlowId},
        ftp_data::{self, FtpData},
        tls_hello::{self, Hello, TlsMeta},
    },
};
use agent_common::{
    Encryption,
    wire::{
        EVENT_MIDSTREAM, EXPORT_MAX, FAMILY_V4, FlowEvent, HELLO_KIND_FTP, HelloHeader, Hook,
        addr_bytes,
    },
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
    read_event(bytes).map(|ev| flow_of(&ev))
}

/// One ring-buffer record's event, copied out of the ring; `None` if it
/// is not a whole event.
fn read_event(bytes: &[u8]) -> Option<FlowEvent> {
    if bytes.len() < size_of::<FlowEvent>() {
        return None;
    }
    // SAFETY: length checked; FlowEvent is plain data valid for any bytes.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) })
}

/// The flow an event tells, without TLS metadata (hellos add it).
fn flow_of(ev: &FlowEvent) -> Flow {
    Flow {
        client: addr(ev.family, ev.client_addr),
        client_port: ev.client_port,
        server: addr(ev.family, ev.server_addr),
        server_port: ev.server_port,
        hook: Hook::from_u8(ev.hook),
        verdict: ev.verdict(),
        midstream: ev.flags & EVENT_MIDSTREAM != 0,
        tls: TlsMeta::default(),
    }
}

/// Decodes one `HELLOS` record: the header and the hello bytes; `None` if
/// the record is not a whole header with the bytes it announces.
pub fn decode_hello(bytes: &[u8]) -> Option<(HelloHeader, &[u8])> {
    let (head, rest) = bytes.split_at_checked(size_of::<HelloHeader>())?;
    // SAFETY: length checked; HelloHeader is plain data valid for any bytes.
    let h: HelloHeader = unsafe { std::ptr::read_unaligned(head.as_ptr().cast()) };
    let len = usize::try_from(h.len)
        .ok()
        .filter(|n| (1..=EXPORT_MAX).contains(n))?;
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

/// The flow a hello record belongs to.
fn hello_flow(h: &HelloHeader) -> FlowId {
    FlowId {
        client: addr(h.family, h.client_addr),
        client_port: h.client_port,
        server: addr(h.family, h.server_addr),
        server_port: h.server_port,
    }
}

impl PendingHellos {
    /// Adds one decoded hello record.
    pub fn add(&mut self, h: &HelloHeader, bytes: &[u8], now_ns: i64) {
        if let Some(hello) = tls_hello::parse_export(h.kind, bytes) {
            self.add_hello(hello_flow(h), hello, now_ns);
        }
    }

    fn add_hello(&mut self, id: FlowId, hello: Hello, now_ns: i64) {
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

/// TLS flows whose verdict (made at the ServerHello) waits for the
/// client's flight after it, which shows whether the client sent a
/// certificate (pipeline/client_auth.rs): one round trip, so usually the
/// next drain. Bounded like `PendingHellos`: at most `PENDING_MAX` flows,
/// each for at most `HOLD_TTL_NS` (a handshake that fails before the
/// client's flight), after which it goes on with `client_auth` unknown;
/// when full, a flow goes on at once.
#[derive(Default)]
pub struct HeldFlows {
    flows: HashMap<FlowId, (Flow, i64)>,
}

const HOLD_TTL_NS: i64 = 2_000_000_000;

impl HeldFlows {
    /// Whether `flow` is to wait for its client's flight (`hold`): a flow
    /// that is not goes on without being moved.
    pub fn wants(&self, flow: &Flow) -> bool {
        flow.verdict.encryption == Encryption::Tls
            && flow.tls.awaits_client_flight()
            && self.flows.len() < PENDING_MAX
    }

    /// Holds a flow that `wants` it until its client's flight comes
    /// (`wants` is where the `PENDING_MAX` bound is kept).
    pub fn hold(&mut self, flow: Flow, now_ns: i64) {
        debug_assert!(self.wants(&flow), "held a flow `wants` turned away");
        self.flows.insert(flow.id(), (flow, now_ns));
    }

    /// Gives a held flow a hello record of its own; false if none is held.
    pub fn add(&mut self, id: &FlowId, hello: &Hello) -> bool {
        match self.flows.get_mut(id) {
            Some((flow, _)) => {
                flow.tls.add(hello.clone());
                true
            }
            None => false,
        }
    }

    /// The flows whose flight came, or whose time is up.
    pub fn release(&mut self, now_ns: i64) -> Vec<Flow> {
        if self.flows.is_empty() {
            return Vec::new();
        }
        let ready: Vec<FlowId> = self
            .flows
            .iter()
            .filter(|(_, (f, since))| {
                !f.tls.awaits_client_flight() || now_ns.saturating_sub(*since) >= HOLD_TTL_NS
            })
            .map(|(id, _)| *id)
            .collect();
        ready
            .iter()
            .filter_map(|id| self.flows.remove(id).map(|(f, _)| f))
            .collect()
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
    held: HeldFlows,
    /// FTP data connections announced on control connections.
    ftp: FtpData,
    /// One drain's verdict events, read before its hellos: the 44-byte
    /// events, not their flows (each flow is made once, where it is
    /// observed).
    batch: Vec<FlowEvent>,
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
            held: HeldFlows::default(),
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
    /// of the drain; a TLS flow waits in `HeldFlows` for its client's
    /// flight.
    pub fn drain(&mut self, mut observe: impl FnMut(&Flow, i64)) -> RingReading {
        let now = clock::now_ns();
        let mut read = RingReading::default();
        let ring = self.events.get_mut();
        while let Some(item) = ring.next() {
            match read_event(&item) {
                Some(ev) => {
                    read.received += 1;
                    self.batch.push(ev);
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
                Some((h, bytes)) => {
                    if let Some(hello) = tls_hello::parse_export(h.kind, bytes) {
                        let id = hello_flow(&h);
                        if !self.held.add(&id, &hello) {
                            self.pending.add_hello(id, hello, now);
                        }
                    }
                }
                None => read.malformed += 1,
            }
        }
        for ev in &self.batch {
            let mut flow = flow_of(ev);
            self.pending.attach(&mut flow);
            let ends = [
                SocketAddr::new(flow.client, flow.client_port),
                SocketAddr::new(flow.server, flow.server_port),
            ];
            self.ftp.name(ends, &mut flow.verdict, now);
            if self.held.wants(&flow) {
                self.held.hold(flow, now);
            } else {
                observe(&flow, now);
            }
        }
        self.batch.clear();
        for flow in self.held.release(now) {
            observe(&flow, now);
        }
        self.pending.expire(now);
        read
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_common::{Protocol, TlsVersion, Verdict};

    fn tls_flow(port: u16) -> Flow {
        let tls = TlsMeta {
            version: TlsVersion::Tls13,
            cipher: Some(0x1302),
            ..TlsMeta::default()
        };
        Flow {
            client: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            client_port: port,
            server: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            server_port: 443,
            hook: None,
            verdict: Verdict::new(Protocol::Tls, Encryption::Tls),
            midstream: false,
            tls,
        }
    }

    #[test]
    fn a_tls_verdict_waits_for_its_client_flight_or_its_time() {
        let mut held = HeldFlows::default();
        let s = 1_000_000_000;
        for f in [tls_flow(1), tls_flow(2)] {
            assert!(held.wants(&f), "held");
            held.hold(f, 0);
        }
        // Not TLS, or the flight already there: on at once.
        let mut plain = tls_flow(3);
        plain.verdict = Verdict::plaintext(Protocol::Http);
        assert!(!held.wants(&plain));
        let mut seen = tls_flow(4);
        seen.tls.client_flight = Some(vec![0x17, 3, 3, 0, 69]);
        assert!(!held.wants(&seen));
        assert!(held.release(s / 10).is_empty(), "nothing came yet");
        // Flow 1's flight comes: it goes on with it.
        let flight = Hello::ClientFlight(vec![0x14, 3, 3, 0, 1, 1, 0x17, 3, 3, 0, 69]);
        assert!(held.add(&tls_flow(1).id(), &flight));
        assert!(!held.add(&tls_flow(9).id(), &flight), "not held");
        let out = held.release(s / 5);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].client_port, 1);
        assert!(out[0].tls.client_flight.is_some());
        // Flow 2's never comes: it goes on after HOLD_TTL_NS without.
        assert!(held.release(HOLD_TTL_NS - 1).is_empty());
        let out = held.release(HOLD_TTL_NS);
        assert_eq!((out.len(), out[0].client_port), (1, 2));
        assert!(held.is_empty());
    }
}
