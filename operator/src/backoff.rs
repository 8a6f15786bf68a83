//! Per-object retry backoff for the controllers' error policies: 1 s after the first
//! failure, doubling with each consecutive one up to 5 minutes; a success resets it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Consecutive failures per (namespace, name).
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<(String, String), u32>>,
}

impl Backoff {
    /// Counts one reconcile's outcome.
    pub fn record(&self, key: (String, String), ok: bool) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if ok {
            failures.remove(&key);
        } else {
            *failures.entry(key).or_insert(0) += 1;
        }
    }

    /// How long to wait before retrying after the failures counted so far.
    pub fn delay(&self, key: &(String, String)) -> Duration {
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .copied()
            .unwrap_or(1);
        Duration::from_secs(1 << failures.saturating_sub(1).min(8)).min(Duration::from_secs(300))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_per_failure_and_a_success_resets_it() {
        let backoff = Backoff::default();
        let key = ("ns".to_string(), "demo".to_string());
        assert_eq!(backoff.delay(&key), Duration::from_secs(1));
        for _ in 0..3 {
            backoff.record(key.clone(), false);
        }
        assert_eq!(backoff.delay(&key), Duration::from_secs(4));
        for _ in 0..20 {
            backoff.record(key.clone(), false);
        }
        assert_eq!(backoff.delay(&key), Duration::from_secs(256));
        backoff.record(key.clone(), true);
        assert_eq!(backoff.delay(&key), Duration::from_secs(1));
    }
}
