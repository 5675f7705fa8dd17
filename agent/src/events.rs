//! Reading verdict events from the kernel and handing each flow to the
//! pipeline.

use crate::{clock, metrics::Metrics, pipeline::Pipeline};
use agent_common::wire::{FAMILY_V4, FlowEvent, Hook, addr_bytes};
use aya::maps::{MapData, RingBuf};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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
        midstream: ev.flags & 1 != 0,
    })
}

/// How often the ring buffer is drained when the kernel does not wake us
/// (it wakes us only when the ring is a quarter full; see the kernel's
/// `wakeup_flags`).
const POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Drains the ring buffer on every wakeup and every `POLL`, when the
/// pipeline also does its housekeeping.
pub async fn consume(
    ring: RingBuf<MapData>,
    metrics: std::sync::Arc<Metrics>,
    mut pipeline: Pipeline,
) -> anyhow::Result<()> {
    // SAFETY: the ring buffer owns its fd and outlives the registration,
    // which is dropped with `fd` at the end of this function.
    let mut fd = unsafe { AsyncFd::register(ring) }.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            guard = fd.readable_mut() => {
                let mut guard = guard?;
                drain(guard.get_inner_mut(), &metrics, &mut pipeline);
                guard.clear_ready();
            }
            _ = tick.tick() => {
                drain(fd.get_mut(), &metrics, &mut pipeline);
                pipeline.tick(clock::now_ns());
            }
        }
    }
}

fn drain(ring: &mut RingBuf<MapData>, metrics: &Metrics, pipeline: &mut Pipeline) {
    let now = clock::now_ns();
    while let Some(item) = ring.next() {
        match decode(&item) {
            Some(flow) => {
                metrics.events_received.inc();
                pipeline.observe(&flow, now);
            }
            None => {
                metrics.events_malformed.inc();
            }
        }
    }
}
