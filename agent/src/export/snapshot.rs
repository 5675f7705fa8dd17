//! The edge list `/api/v1/edges` serves, published by the ring consumer as
//! an immutable snapshot. The API never touches the live edge table: a
//! request asks for a fresh snapshot and waits (bounded) for the consumer
//! to publish one, which it does at most every `EVERY`, between drains,
//! and only when asked. However many requests arrive, the consumer builds
//! at most one snapshot per `EVERY` and never waits for a reader.

use super::edge_list::EdgeList;
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The consumer publishes at most this often (a request sees edges at most
/// this much plus one drain period older than itself). Building costs the
/// consumer ~51 ms at 10,000 edges (the default `edges.max`; measured in
/// release on the 2-core test VM), so a request flood costs it at most
/// ~10% of its time, and the ring buffer absorbs each pause.
pub const EVERY: Duration = Duration::from_millis(500);
/// A request waits this long for a fresh snapshot, then serves the last
/// one (a stalled consumer must not hold connections).
pub const WAIT: Duration = Duration::from_secs(2);

struct Shared {
    latest: watch::Sender<Arc<EdgeList>>,
    wanted: AtomicBool,
}

/// The consumer's end.
pub struct Publisher {
    shared: Arc<Shared>,
    last: Option<Instant>,
}

/// The API's end.
#[derive(Clone)]
pub struct Snapshots {
    shared: Arc<Shared>,
}

pub fn channel() -> (Publisher, Snapshots) {
    let (latest, _) = watch::channel(Arc::new(EdgeList {
        edges: Vec::new(),
        dropped_flows: 0,
        agent: None,
    }));
    let shared = Arc::new(Shared {
        latest,
        wanted: AtomicBool::new(false),
    });
    (
        Publisher {
            shared: Arc::clone(&shared),
            last: None,
        },
        Snapshots { shared },
    )
}

impl Publisher {
    /// Publishes `build()` if a reader waits and the last snapshot is at
    /// least `EVERY` old; otherwise costs one atomic load.
    pub fn publish_if_wanted(&mut self, now: Instant, build: impl FnOnce() -> EdgeList) {
        if !self.shared.wanted.load(Ordering::Acquire)
            || self.last.is_some_and(|t| now.duration_since(t) < EVERY)
        {
            return;
        }
        self.shared.wanted.store(false, Ordering::Release);
        self.last = Some(now);
        self.shared.latest.send_replace(Arc::new(build()));
    }
}

impl Snapshots {
    /// A snapshot published after this call, or the last one if none comes
    /// within `WAIT`.
    pub async fn fresh(&self) -> Arc<EdgeList> {
        let mut rx = self.shared.latest.subscribe();
        self.shared.wanted.store(true, Ordering::Release);
        let _ = tokio::time::timeout(WAIT, rx.changed()).await;
        rx.borrow_and_update().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(dropped: u64) -> EdgeList {
        EdgeList {
            edges: Vec::new(),
            dropped_flows: dropped,
            agent: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn builds_only_when_asked_and_at_most_every_period() {
        let (mut publisher, snapshots) = channel();
        let t0 = Instant::now();
        let mut builds = 0;
        publisher.publish_if_wanted(t0, || {
            builds += 1;
            list(1)
        });
        assert_eq!(builds, 0, "nobody asked");

        let reader = tokio::spawn({
            let s = snapshots.clone();
            async move { s.fresh().await }
        });
        tokio::task::yield_now().await;
        publisher.publish_if_wanted(t0, || {
            builds += 1;
            list(2)
        });
        assert_eq!(reader.await.expect("reader").dropped_flows, 2);

        // Asked again at once: not before EVERY has passed.
        let reader = tokio::spawn({
            let s = snapshots.clone();
            async move { s.fresh().await }
        });
        tokio::task::yield_now().await;
        publisher.publish_if_wanted(t0 + EVERY / 2, || {
            builds += 1;
            list(3)
        });
        assert_eq!(builds, 1);
        publisher.publish_if_wanted(t0 + EVERY, || {
            builds += 1;
            list(4)
        });
        assert_eq!(builds, 2);
        assert_eq!(reader.await.expect("reader").dropped_flows, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_consumer_costs_a_reader_at_most_the_wait() {
        let (_publisher, snapshots) = channel();
        let t0 = tokio::time::Instant::now();
        assert_eq!(snapshots.fresh().await.dropped_flows, 0);
        assert_eq!(t0.elapsed(), WAIT);
    }
}
