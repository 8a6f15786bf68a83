//! Replication between brokers (gRPC, broker/proto/runnel.proto `Replication`): the
//! leader serves followers' fetch sessions (`rpc::replication`), each follower runs one
//! fetch session per partition it follows (`fetcher`), and leaders write ISR changes to
//! the metadata store (`isr`). The partition's own part (progress, high watermark,
//! follower appends, truncation) is in `partition::replication`.

pub mod fetcher;
pub mod isr;

use std::sync::atomic::AtomicU64;

/// Replication counters of this broker, for `/metrics`.
#[derive(Debug, Default)]
pub struct ReplicationStats {
    /// ISR changes this broker wrote as leader.
    pub isr_shrinks: AtomicU64,
    pub isr_expands: AtomicU64,
    /// ISR writes refused by their compare (the record moved on, or this broker's
    /// registration is gone) or failed.
    pub isr_write_failures: AtomicU64,
    /// Record bytes this broker fetched as follower.
    pub follower_fetch_bytes: AtomicU64,
    /// Fetch sessions this broker (as follower) had to open again.
    pub follower_reconnects: AtomicU64,
    /// Follower fetches this broker refused as leader, by reason.
    pub fenced_stale_broker_epoch: AtomicU64,
    pub fenced_leader_epoch: AtomicU64,
    pub fenced_not_leader: AtomicU64,
}
