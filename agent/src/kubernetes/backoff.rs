//! Retry delays after watch and list errors: exponential, capped, with full
//! jitter so that a thousand agents that lost the API server together do not
//! come back together.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            attempt: 0,
        }
    }

    /// A delay in [ceiling/2, ceiling], where the ceiling doubles per call up
    /// to `max`. Half is kept fixed so a retry never comes at once.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(random_unit())
    }

    pub const fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A uniform number in [0, 1): std's per-instance random hasher keys are
/// enough entropy for jitter, without a random-number crate.
pub fn random_unit() -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "53 random bits are plenty")]
    let r = (RandomState::new().hash_one(0u8) >> 11) as f64;
    r / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(1000));
        for ceiling in [100, 200, 400, 800, 1000, 1000] {
            let d = b.next_delay();
            assert!(
                d >= ms(ceiling / 2) && d <= ms(ceiling),
                "{d:?} for ceiling {ceiling}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= ms(100));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            seen.insert(
                Backoff::new(Duration::from_secs(10), Duration::from_secs(10)).next_delay(),
            );
        }
        assert!(seen.len() > 10, "{seen:?}");
    }
}
