//! What `/readyz` answers: ready once the programs are attached, the ring
//! consumer has drained at least once and Kubernetes identities are synced
//! (or their sync timed out, said in the body); not ready again while the
//! consumer stalls, because verdicts then pile up in the ring and are lost,
//! and while programs it attached were taken off (nothing is seen there).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// No drain for this long is a stalled consumer. It drains at least every
/// `kernel::events::POLL` (100 ms), so this is 50 missed polls.
pub const STALL: Duration = Duration::from_secs(5);

pub struct Readiness {
    started: Instant,
    attached: AtomicBool,
    /// Milliseconds after `started` of the last drain, plus one (0: none yet).
    last_drain_ms: AtomicU64,
    kubernetes: Option<KubeSync>,
    /// What was taken off, said in `/readyz` until it is back.
    lost: Mutex<Option<String>>,
}

/// The Kubernetes identity source's sync, when it is on.
pub struct KubeSync {
    pub synced: Box<dyn Fn() -> bool + Send + Sync>,
    /// Ready anyway after this long (peers are then named by CIDR or IP
    /// until the lists complete).
    pub timeout: Duration,
}

impl Readiness {
    pub fn new(started: Instant, kubernetes: Option<KubeSync>) -> Self {
        Self {
            started,
            attached: AtomicBool::new(false),
            last_drain_ms: AtomicU64::new(0),
            kubernetes,
            lost: Mutex::new(None),
        }
    }

    /// What `set_lost` last said.
    pub fn lost(&self) -> Option<String> {
        self.lost
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `Some(what)` while programs the agent attached are gone, `None` once
    /// they are back.
    pub fn set_lost(&self, what: Option<String>) {
        *self.lost.lock().unwrap_or_else(PoisonError::into_inner) = what;
    }

    pub fn attached(&self) {
        self.attached.store(true, Ordering::Release);
    }

    /// Called by the consumer after every drain: one atomic store.
    pub fn drained(&self) {
        self.drained_at(Instant::now());
    }

    fn drained_at(&self, now: Instant) {
        let ms = u64::try_from(now.duration_since(self.started).as_millis()).unwrap_or(u64::MAX);
        self.last_drain_ms
            .store(ms.saturating_add(1), Ordering::Release);
    }

    /// `Ok(body)` when ready, `Err(one-line reason)` when not.
    pub fn check(&self) -> Result<String, String> {
        self.check_at(Instant::now())
    }

    fn check_at(&self, now: Instant) -> Result<String, String> {
        if !self.attached.load(Ordering::Acquire) {
            return Err("programs not attached yet".into());
        }
        if let Some(what) = &*self.lost.lock().unwrap_or_else(PoisonError::into_inner) {
            return Err(format!(
                "attachment lost: {what}; nothing is observed there"
            ));
        }
        let since_start = now.duration_since(self.started);
        match self.last_drain_ms.load(Ordering::Acquire) {
            0 => return Err("verdict ring not drained yet".into()),
            n => {
                let idle = since_start.saturating_sub(Duration::from_millis(n - 1));
                if idle > STALL {
                    return Err(format!(
                        "verdict ring not drained for {} s: the consumer is stalled, verdicts are being lost",
                        idle.as_secs()
                    ));
                }
            }
        }
        match &self.kubernetes {
            Some(k) if !(k.synced)() => {
                if since_start < k.timeout {
                    Err("kubernetes identities not synced yet".into())
                } else {
                    Ok(format!(
                        "ready; kubernetes identities not synced after {} s \
                         (kubernetes.sync_timeout): peers named by CIDR or IP until they are",
                        k.timeout.as_secs()
                    ))
                }
            }
            _ => Ok("ready".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn ready_needs_attach_then_a_drain_and_stops_when_draining_stops() {
        let t0 = Instant::now();
        let r = Readiness::new(t0, None);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(r.check_at(at(1)).unwrap_err(), "programs not attached yet");
        r.attached();
        assert_eq!(
            r.check_at(at(1)).unwrap_err(),
            "verdict ring not drained yet"
        );
        r.drained_at(at(1));
        assert_eq!(r.check_at(at(2)).unwrap(), "ready");
        assert_eq!(r.check_at(at(1) + STALL).unwrap(), "ready");
        let e = r.check_at(at(7)).unwrap_err();
        assert!(e.starts_with("verdict ring not drained for 6 s"), "{e}");
        r.drained_at(at(7));
        assert_eq!(r.check_at(at(7)).unwrap(), "ready");
        r.set_lost(Some("cgroup_ingress detached from /sys/fs/cgroup/x".into()));
        let e = r.check_at(at(7)).unwrap_err();
        assert!(
            e.starts_with("attachment lost: cgroup_ingress detached"),
            "{e}"
        );
        r.set_lost(None);
        assert_eq!(r.check_at(at(7)).unwrap(), "ready");
    }

    #[test]
    fn kubernetes_sync_holds_readiness_until_it_completes_or_times_out() {
        let t0 = Instant::now();
        let synced = Arc::new(AtomicBool::new(false));
        let r = Readiness::new(
            t0,
            Some(KubeSync {
                synced: Box::new({
                    let s = Arc::clone(&synced);
                    move || s.load(Ordering::Relaxed)
                }),
                timeout: Duration::from_secs(30),
            }),
        );
        r.attached();
        let at = |s: u64| t0 + Duration::from_secs(s);
        r.drained_at(at(10));
        assert_eq!(
            r.check_at(at(10)).unwrap_err(),
            "kubernetes identities not synced yet"
        );
        r.drained_at(at(30));
        let late = r.check_at(at(30)).unwrap();
        assert!(late.contains("not synced after 30 s"), "{late}");
        synced.store(true, Ordering::Relaxed);
        assert_eq!(r.check_at(at(30)).unwrap(), "ready");
    }
}
