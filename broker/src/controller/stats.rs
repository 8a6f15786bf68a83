//! What the controller did, for `/metrics`: terms it won, leadership it changed, and its
//! fenced transactions (latency, conflicts, refusals because its term was over).

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

#[derive(Debug)]
pub struct ControllerStats {
    /// Times this broker became controller.
    pub terms: AtomicU64,
    /// Partition leadership changes it wrote (a new leader, or none).
    pub leader_changes: AtomicU64,
    /// Of those, elections of a leader that was not in the ISR (unclean).
    pub unclean_elections: AtomicU64,
    /// Transactions refused because another controller's term had begun.
    pub fenced: AtomicU64,
    /// Transactions refused because a record changed under them (retried or reported).
    pub conflicts: AtomicU64,
    /// Time of each fenced transaction, in seconds.
    pub transactions: Histogram,
}

impl Default for ControllerStats {
    fn default() -> Self {
        ControllerStats {
            terms: AtomicU64::new(0),
            leader_changes: AtomicU64::new(0),
            unclean_elections: AtomicU64::new(0),
            fenced: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            // 0.5 ms to about 8 s.
            transactions: Histogram::new(exponential_buckets(0.0005, 2.0, 15)),
        }
    }
}
