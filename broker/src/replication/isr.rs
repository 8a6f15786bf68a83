//! ISR changes written by the leader: a follower that stopped keeping up leaves the ISR,
//! one that caught up joins it. Each change is one store transaction that compares the
//! partition record's mod revision (nothing changed it since the leader read it) and
//! this broker's registration's create revision (a leader whose lease expired, or that
//! restarted, cannot write: it can never shrink the ISR to itself as a zombie).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch as signal;
use tracing::{info, warn};

use super::ReplicationStats;
use crate::config::Config;
use crate::metadata::cache::MetadataCache;
use crate::metadata::schema::{encode, Keys};
use crate::metadata::store::{Compare, MetadataStore, Op, Txn};
use crate::partition::manager::ReplicaManager;
use crate::partition::replication::IsrChange;
use crate::partition::Partition;

#[derive(Debug)]
pub struct IsrWriter {
    config: Arc<Config>,
    replicas: Arc<ReplicaManager>,
    cache: Arc<MetadataCache>,
    store: Arc<dyn MetadataStore>,
    keys: Keys,
    stats: Arc<ReplicationStats>,
}

impl IsrWriter {
    pub fn new(
        config: Arc<Config>,
        replicas: Arc<ReplicaManager>,
        cache: Arc<MetadataCache>,
        store: Arc<dyn MetadataStore>,
        keys: Keys,
        stats: Arc<ReplicationStats>,
    ) -> IsrWriter {
        IsrWriter {
            config,
            replicas,
            cache,
            store,
            keys,
            stats,
        }
    }

    /// Checks every led partition's ISR until `shutdown`: often enough that a follower
    /// that caught up joins within a fraction of a second, and that one that fell behind
    /// leaves within half of `replica.lag.time.max.ms` after it passed.
    pub async fn run(self, mut shutdown: signal::Receiver<bool>) {
        let every = (self.config.replica_lag_max / 2)
            .clamp(Duration::from_millis(20), Duration::from_millis(250));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            self.pass().await;
        }
    }

    async fn pass(&self) {
        let image = self.cache.image();
        // A broker shutting down is not taken back into an ISR the controller just took it
        // out of (controlled shutdown).
        let live: BTreeMap<i32, i64> = image
            .brokers
            .iter()
            .filter(|(_, b)| !b.registration.shutting_down)
            .map(|(id, b)| (*id, b.epoch))
            .collect();
        for partition in self.replicas.all() {
            if let Some(change) = partition.wanted_isr(self.config.replica_lag_max, &live) {
                self.write(&partition, change).await;
            }
        }
    }

    async fn write(&self, partition: &Partition, change: IsrChange) {
        let name = format!("{}-{}", partition.topic, partition.index);
        let image = self.cache.image();
        let Some(current) = image
            .partitions
            .get(&*partition.topic)
            .and_then(|ps| ps.get(&partition.index))
        else {
            return;
        };
        // The image must show the record the change was computed from; an older or newer
        // one means the replica has not applied it yet (the next pass will).
        if current.value.leader_epoch != change.leader_epoch
            || current.value.partition_epoch != change.partition_epoch
            || current.value.leader != self.config.broker_id
        {
            return;
        }
        let mut next = current.value.clone();
        next.isr = change.isr.clone();
        next.partition_epoch += 1;
        let key = self.keys.partition(&partition.topic, partition.index);
        let value = match encode("partition", &key, &next) {
            Ok(v) => v,
            Err(err) => {
                warn!(partition = %name, error = %err, "failed to encode an ISR change");
                return;
            }
        };
        let txn = Txn::when(vec![
            Compare::mod_revision(key.clone(), current.mod_revision),
            Compare::create_revision(
                self.keys.broker(self.config.broker_id),
                self.replicas.broker_epoch(),
            ),
        ])
        .and_then(vec![Op::put(key, value)]);
        partition.propose_isr(&change);
        let outcome = self.store.txn(txn).await;
        if !matches!(&outcome, Ok(r) if r.succeeded) {
            partition.withdraw_isr();
        }
        match outcome {
            Ok(response) if response.succeeded => {
                if !change.shrunk.is_empty() {
                    self.stats.isr_shrinks.fetch_add(1, Ordering::Relaxed);
                }
                if !change.expanded.is_empty() {
                    self.stats.isr_expands.fetch_add(1, Ordering::Relaxed);
                }
                info!(
                    partition = %name,
                    leader_epoch = change.leader_epoch,
                    partition_epoch = next.partition_epoch,
                    isr = ?next.isr_brokers(),
                    left = ?change.shrunk,
                    joined = ?change.expanded,
                    revision = response.revision,
                    "changed the ISR"
                );
            }
            Ok(_) => {
                self.stats
                    .isr_write_failures
                    .fetch_add(1, Ordering::Relaxed);
                info!(partition = %name, "an ISR change lost its compare (the record moved on, or this broker's registration is gone)");
            }
            Err(err) => {
                self.stats
                    .isr_write_failures
                    .fetch_add(1, Ordering::Relaxed);
                warn!(partition = %name, error = %err, "failed to write an ISR change");
            }
        }
    }
}
