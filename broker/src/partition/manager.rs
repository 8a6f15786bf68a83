//! The replica manager: the partitions this broker holds, kept in step with the metadata
//! image. Each published image is applied before it becomes visible, so a partition the
//! controller assigned here is open (recovered if needed) by the time clients can see it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use tracing::{error, info};

use super::{Partition, ReplicaError, ReplicaState};
use crate::config::topic::TopicConfig;
use crate::config::Config;
use crate::error::Result;
use crate::log::flusher::Flusher;
use crate::log::manager::{CheckpointEntry, LocalLog, LogManager};
use crate::log::partition_log::read_topic_id;
use crate::metadata::cache::{ImageListener, MetadataImage};
use crate::metadata::schema::{PartitionRecord, TopicRecord};

/// Counters that show recovery really ran (asserted by crash tests).
#[derive(Debug, Default)]
pub struct RecoveryStats {
    pub logs_opened: AtomicU64,
    /// Logs that failed to open (left offline, tried again at the next metadata change).
    pub open_failures: AtomicU64,
    pub segments_recovered: AtomicU64,
    pub bytes_truncated: AtomicU64,
    pub segments_dropped: AtomicU64,
    /// Cleaning swaps a crash interrupted, completed at open.
    pub swaps_completed: AtomicU64,
}

/// Counters of the log cleaner.
#[derive(Debug, Default)]
pub struct CleanerStats {
    pub passes: AtomicU64,
    pub segments_in: AtomicU64,
    pub segments_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub records_removed: AtomicU64,
    pub tombstones_removed: AtomicU64,
    pub failures: AtomicU64,
}

#[derive(Debug)]
pub struct ReplicaManager {
    broker: Arc<Config>,
    broker_epoch: AtomicI64,
    logs: LogManager,
    flusher: Flusher,
    partitions: RwLock<HashMap<String, BTreeMap<i32, Arc<Partition>>>>,
    /// Partition directories found at start and not yet opened.
    local: Mutex<HashMap<(String, i32), LocalLog>>,
    /// Set once the first image was applied (stray directories are dealt with then).
    first_image_applied: std::sync::atomic::AtomicBool,
    /// The newest image being applied, held while a partition's role is derived and set:
    /// a change of this broker's incarnation derives roles from it (never from an older
    /// image, which would put a partition back in a state no later image changes), and
    /// no role is derived from a broker epoch it has just replaced. Held briefly, never
    /// across an image's disk work, so a step-down does not wait for a log's recovery.
    roles: Mutex<Arc<MetadataImage>>,
    /// Partitions whose log could not be opened or created.
    failed: RwLock<HashSet<(String, i32)>>,
    /// Directories found at start that failed to open: their checkpoint entries are
    /// carried over until they open.
    failed_local: Mutex<HashMap<(String, i32), LocalLog>>,
    /// Held while checkpoints are collected and written: writers share the files'
    /// temporary names, and a later writer must never put older offsets back.
    checkpointing: Mutex<()>,
    pub recovery: RecoveryStats,
    pub cleaner: CleanerStats,
}

impl ReplicaManager {
    pub fn new(broker: Arc<Config>, logs: LogManager, flusher: Flusher) -> Result<ReplicaManager> {
        let local = logs
            .discover()?
            .into_iter()
            .map(|l| ((l.topic.clone(), l.partition), l))
            .collect();
        Ok(ReplicaManager {
            broker,
            broker_epoch: AtomicI64::new(-1),
            logs,
            flusher,
            partitions: RwLock::new(HashMap::new()),
            local: Mutex::new(local),
            first_image_applied: std::sync::atomic::AtomicBool::new(false),
            roles: Mutex::new(Arc::new(MetadataImage::default())),
            failed: RwLock::new(HashSet::new()),
            failed_local: Mutex::new(HashMap::new()),
            checkpointing: Mutex::new(()),
            recovery: RecoveryStats::default(),
            cleaner: CleanerStats::default(),
        })
    }

    /// Sets this broker's epoch (its registration's create revision).
    pub fn set_broker_epoch(&self, epoch: i64) {
        self.broker_epoch.store(epoch, Ordering::SeqCst);
    }

    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::SeqCst)
    }

    /// This broker's registration changed: the lease was lost (`None`) or it registered
    /// again with a new epoch. Every partition's role is derived again at once: a leader
    /// named in the ISR only as its old incarnation steps down, without waiting for the
    /// controller to rewrite the record (whatever the newest image being applied shows is
    /// applied as is).
    pub fn change_incarnation(&self, broker_epoch: Option<i64>) {
        let roles = self.roles.lock().unwrap_or_else(|e| e.into_inner());
        let image = roles.clone();
        self.set_broker_epoch(broker_epoch.unwrap_or(-1));
        let epoch = self.broker_epoch();
        for partition in self.all() {
            // A partition of a deleted topic whose name the image already gives to a new
            // one takes no role from it (the image's application removes it).
            let same_topic = image
                .topic(&partition.topic)
                .is_some_and(|t| t.id == partition.topic_id());
            if let Some(record) = image
                .partition(&partition.topic, partition.index)
                .filter(|_| same_topic)
            {
                let state = self.derive_state(record);
                if state.role != super::Role::Leader
                    && partition.state().role == super::Role::Leader
                {
                    info!(partition = %format!("{}-{}", partition.topic, partition.index), broker_epoch = epoch, "stepping down: this incarnation does not lead");
                }
                partition.apply_state(state);
            }
        }
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
            .and_then(|ps| ps.get(&partition))
            .cloned()
    }

    /// The replica to serve `topic`-`partition` from, or why there is none: the
    /// metadata does not know it, its log failed here, or it is not on this broker.
    pub fn replica(
        &self,
        image: &MetadataImage,
        topic: &str,
        partition: i32,
    ) -> std::result::Result<Arc<Partition>, ReplicaError> {
        if let Some(replica) = self.get(topic, partition) {
            return Ok(replica);
        }
        if image.topic(topic).is_none() || image.partition(topic, partition).is_none() {
            Err(ReplicaError::UnknownTopicOrPartition)
        } else if self.is_failed(topic, partition) {
            Err(ReplicaError::Storage)
        } else {
            Err(ReplicaError::NotLeader)
        }
    }

    /// How many assigned partitions failed to open here.
    pub fn failed_count(&self) -> usize {
        self.failed.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether the partition's log failed to open here.
    pub fn is_failed(&self, topic: &str, partition: i32) -> bool {
        self.failed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(topic.to_string(), partition))
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .flat_map(|ps| ps.values().cloned())
            .collect()
    }

    /// The log directories this broker uses.
    pub fn log_dirs(&self) -> Vec<std::path::PathBuf> {
        self.logs
            .dirs()
            .into_iter()
            .map(|d| d.to_path_buf())
            .collect()
    }

    pub fn flusher(&self) -> &Flusher {
        &self.flusher
    }

    fn ensure(
        &self,
        image: &MetadataImage,
        topic: &TopicRecord,
        name: &str,
        index: i32,
        record: &PartitionRecord,
    ) {
        let config = Arc::new(TopicConfig::resolve(
            &topic.configs,
            &image.broker_view(&self.broker),
        ));
        if let Some(existing) = self.get(name, index) {
            if existing.topic_id() == topic.id {
                existing.set_config(config);
                let _roles = self.roles.lock().unwrap_or_else(|e| e.into_inner());
                existing.apply_state(self.derive_state(record));
                return;
            }
        }
        match self.open_or_create(topic, name, index, &config) {
            Ok(log) => {
                // Derived and inserted under the roles lock: a change of incarnation either
                // sees this partition or happened before its role was derived.
                let _roles = self.roles.lock().unwrap_or_else(|e| e.into_inner());
                let state = self.derive_state(record);
                let partition = Partition::new(super::NewPartition {
                    topic: Arc::from(name),
                    index,
                    broker_id: self.broker.broker_id,
                    log,
                    state,
                    config,
                    broker: self.broker.clone(),
                    flusher: self.flusher.clone(),
                });
                self.partitions
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(name.to_string())
                    .or_default()
                    .insert(index, partition);
                self.failed
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&(name.to_string(), index));
            }
            Err(err) => {
                error!(topic = %name, partition = index, error = %err, "failed to open the partition's log; it is offline on this broker");
                self.recovery.open_failures.fetch_add(1, Ordering::Relaxed);
                self.failed
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((name.to_string(), index));
            }
        }
    }

    fn derive_state(&self, record: &PartitionRecord) -> ReplicaState {
        ReplicaState::from_record(record, self.broker.broker_id, self.broker_epoch())
    }

    fn open_or_create(
        &self,
        topic: &TopicRecord,
        name: &str,
        index: i32,
        config: &TopicConfig,
    ) -> Result<crate::log::partition_log::PartitionLog> {
        let log_config = config.log_config(&self.broker);
        let key = (name.to_string(), index);
        // A directory that failed to open before is opened again, never created over.
        let local = self
            .local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key)
            .or_else(|| {
                self.failed_local
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key)
            });
        if let Some(local) = local {
            let found = read_topic_id(self.logs.fs().as_ref(), &local.path)
                .ok()
                .flatten();
            if found == Some(topic.id) {
                let (log, report) = match self.logs.open_log(&local, topic.id, log_config) {
                    Ok(opened) => opened,
                    Err(err) => {
                        self.failed_local
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert((name.to_string(), index), local);
                        return Err(err);
                    }
                };
                self.failed_local
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&(name.to_string(), index));
                self.recovery.logs_opened.fetch_add(1, Ordering::Relaxed);
                self.recovery
                    .segments_recovered
                    .fetch_add(report.recovered_segments as u64, Ordering::Relaxed);
                self.recovery
                    .bytes_truncated
                    .fetch_add(report.truncated_bytes, Ordering::Relaxed);
                self.recovery
                    .segments_dropped
                    .fetch_add(report.deleted_segments as u64, Ordering::Relaxed);
                self.recovery
                    .swaps_completed
                    .fetch_add(report.completed_swaps as u64, Ordering::Relaxed);
                info!(
                    topic = %name,
                    partition = index,
                    log_end = log.log_end_offset(),
                    segments = report.segments,
                    recovered_segments = report.recovered_segments,
                    truncated_bytes = report.truncated_bytes,
                    "opened partition log"
                );
                return Ok(log);
            }
            self.logs.set_aside(&local, found)?;
        }
        self.logs.create_log(name, index, topic.id, log_config)
    }

    /// Writes recovery-point and log-start checkpoints.
    pub fn write_checkpoints(&self) -> Result<()> {
        let _writing = self.checkpointing.lock().unwrap_or_else(|e| e.into_inner());
        let entries: Vec<CheckpointEntry> = self
            .all()
            .iter()
            .map(|p| {
                let (dir, recovery_point, log_start_offset) = p.checkpoint();
                CheckpointEntry {
                    dir,
                    topic: p.topic.to_string(),
                    partition: p.index,
                    topic_id: p.topic_id(),
                    recovery_point,
                    log_start_offset,
                }
            })
            .collect();
        let mut unopened: Vec<LocalLog> = self
            .local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        unopened.extend(
            self.failed_local
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned(),
        );
        self.logs.write_checkpoints(&entries, &unopened)
    }

    /// Syncs every log, writes checkpoints and the clean-shutdown marker. The marker is
    /// written only if every log closed cleanly.
    pub fn shutdown(&self) -> Result<()> {
        self.flusher.stop();
        let mut clean = true;
        for partition in self.all() {
            if let Err(err) = partition.close() {
                error!(partition = %format!("{}-{}", partition.topic, partition.index), error = %err, "failed to close a log");
                clean = false;
            }
        }
        self.write_checkpoints()?;
        if clean {
            self.logs.mark_clean_shutdown()?;
        }
        Ok(())
    }

    /// Deletes segments past their topic's retention.
    pub fn enforce_retention(&self, now_ms: i64) {
        for partition in self.all() {
            if let Err(err) = partition.enforce_retention(now_ms) {
                error!(partition = %format!("{}-{}", partition.topic, partition.index), error = %err, "retention failed");
            }
        }
    }

    /// One log-cleaner pass: compacts every due log whose policy includes compact, up to
    /// the recovery point persisted by the checkpoint written first and never past the
    /// high watermark (a follower must not compact records it may yet truncate, and a
    /// leader must not compact what its followers have not fetched).
    pub fn clean_logs(&self, now_ms: i64) {
        let due: Vec<(Arc<Partition>, i64)> = self
            .all()
            .into_iter()
            .filter_map(|p| {
                let upto = p.checkpoint().1.min(p.offsets().high_watermark);
                p.cleaning_due(upto, now_ms).then_some((p, upto))
            })
            .collect();
        // Checkpoints are written only when a log is due, not on every cleaner tick.
        if due.is_empty() {
            return;
        }
        // Recovery points only grow: what was read above is at most what this persists.
        if let Err(err) = self.write_checkpoints() {
            error!(error = %err, "failed to write checkpoints; not cleaning");
            return;
        }
        let stats = &self.cleaner;
        for (partition, upto) in due {
            match partition.clean(upto, now_ms) {
                Ok(Some(r)) => {
                    stats.passes.fetch_add(1, Ordering::Relaxed);
                    stats
                        .segments_in
                        .fetch_add(r.segments_in, Ordering::Relaxed);
                    stats
                        .segments_out
                        .fetch_add(r.segments_out, Ordering::Relaxed);
                    stats.bytes_in.fetch_add(r.bytes_in, Ordering::Relaxed);
                    stats.bytes_out.fetch_add(r.bytes_out, Ordering::Relaxed);
                    stats
                        .records_removed
                        .fetch_add(r.records_removed, Ordering::Relaxed);
                    stats
                        .tombstones_removed
                        .fetch_add(r.tombstones_removed, Ordering::Relaxed);
                    info!(
                        partition = %format!("{}-{}", partition.topic, partition.index),
                        segments_in = r.segments_in,
                        segments_out = r.segments_out,
                        bytes_in = r.bytes_in,
                        bytes_out = r.bytes_out,
                        records_removed = r.records_removed,
                        tombstones_removed = r.tombstones_removed,
                        "compacted log"
                    );
                }
                Ok(None) => {}
                Err(err) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    error!(partition = %format!("{}-{}", partition.topic, partition.index), error = %err, "log cleaning failed");
                }
            }
        }
    }

    /// Forgets idempotent producers idle longer than `producer.id.expiration.ms`.
    pub fn expire_producers(&self, now_ms: i64) {
        let expiration = self.broker.producer_expiration_ms;
        let expired: usize = self
            .all()
            .iter()
            .map(|p| p.expire_producers(now_ms, expiration))
            .sum();
        if expired > 0 {
            info!(producers = expired, "forgot idle producers");
        }
    }

    /// In interval mode, flushes partitions whose unflushed data is older than flush.ms.
    pub fn flush_due(&self) {
        for partition in self.all() {
            partition.flush_if_due();
        }
    }
}

impl ReplicaManager {
    /// After the first image: partition directories found on disk that the metadata does
    /// not assign here (their topic was deleted while the broker was down) are renamed
    /// aside as `-stray`, never deleted blindly.
    fn set_aside_strays(&self) {
        let strays: Vec<LocalLog> = self
            .local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, l)| l)
            .collect();
        for local in strays {
            let found = read_topic_id(self.logs.fs().as_ref(), &local.path)
                .ok()
                .flatten();
            if let Err(err) = self.logs.set_aside(&local, found) {
                error!(dir = %local.path.display(), error = %err, "failed to set a stray partition directory aside");
            }
        }
    }

    /// Removes and deletes local replicas whose topic is gone (or was re-created with a
    /// new id) or whose partition no longer lists this broker.
    fn remove_stale(&self, new: &MetadataImage) {
        let me = self.broker.broker_id;
        let stale: Vec<Arc<Partition>> = self
            .all()
            .into_iter()
            .filter(|p| {
                let topic_gone = new.topic(&p.topic).is_none_or(|t| t.id != p.topic_id());
                let unassigned = new
                    .partition(&p.topic, p.index)
                    .is_none_or(|r| !r.replicas.contains(&me));
                topic_gone || unassigned
            })
            .collect();
        let mut removed = false;
        for partition in stale {
            {
                let mut partitions = self.partitions.write().unwrap_or_else(|e| e.into_inner());
                if let Some(ps) = partitions.get_mut(&*partition.topic) {
                    ps.remove(&partition.index);
                    if ps.is_empty() {
                        partitions.remove(&*partition.topic);
                    }
                }
            }
            if let Err(err) = partition.delete() {
                error!(partition = %format!("{}-{}", partition.topic, partition.index), error = %err, "failed to delete a removed partition's data");
            }
            removed = true;
        }
        // Checkpoints follow deletion (as Kafka's do): no entry of a deleted log stays
        // behind for a later log of the same name (entries also carry the topic id).
        if removed {
            if let Err(err) = self.write_checkpoints() {
                error!(error = %err, "failed to write checkpoints after deleting partitions");
            }
        }
    }
}

#[async_trait]
impl ImageListener for ReplicaManager {
    async fn on_image(&self, old: &MetadataImage, new: &Arc<MetadataImage>) {
        // Opening, recovering and deleting logs is disk work: keep it off the workers.
        crate::blocking::run(|| self.apply_image(old, new));
    }
}

impl ReplicaManager {
    fn apply_image(&self, old: &MetadataImage, new: &Arc<MetadataImage>) {
        *self.roles.lock().unwrap_or_else(|e| e.into_inner()) = new.clone();
        self.remove_stale(new);
        let me = self.broker.broker_id;
        let configs_unchanged = old.broker_configs == new.broker_configs;
        for (name, topic) in &new.topics {
            let old_topic = old.topics.get(name);
            for (index, record) in new.topic_partitions(name) {
                if !record.replicas.contains(&me) {
                    continue;
                }
                let unchanged = configs_unchanged
                    && old_topic.is_some_and(|t| t.value == topic.value)
                    && old.partition(name, index) == Some(record)
                    && self.get(name, index).is_some();
                if !unchanged {
                    self.ensure(new, &topic.value, name, index, record);
                }
            }
        }
        if !self.first_image_applied.swap(true, Ordering::SeqCst) {
            self.set_aside_strays();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use super::*;
    use crate::fsio::sim::SimFs;
    use crate::fsio::FileSystem;
    use crate::metadata::cache::Versioned;
    use crate::metadata::schema::IsrMember;
    use crate::partition::Role;

    /// Broker 0's replica manager over `/data` on `sim`.
    pub(crate) fn manager(sim: &SimFs) -> ReplicaManager {
        sim.create_dir_all(Path::new("/data")).unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
        let broker = Arc::new(Config::from_pairs([("log.dirs", "/data")]).unwrap());
        let logs = LogManager::open(fs.clone(), &broker.log_dirs, broker.broker_id).unwrap();
        let (flusher, threads) = Flusher::start(fs, 1, &broker.log_dirs, 0).unwrap();
        // The flusher threads run for the rest of the test process, as in the partition
        // tests.
        std::mem::forget(threads);
        ReplicaManager::new(broker, logs, flusher).unwrap()
    }

    /// Topic `t`, one partition on brokers 0 and 1 led by `leader` in `leader_epoch`.
    fn image(
        topic: &TopicRecord,
        leader: i32,
        leader_epoch: i32,
        revision: i64,
    ) -> Arc<MetadataImage> {
        let mut image = MetadataImage {
            revision,
            ..MetadataImage::default()
        };
        image.topics.insert(
            "t".into(),
            Versioned {
                value: topic.clone(),
                mod_revision: 1,
            },
        );
        let record = PartitionRecord {
            replicas: vec![0, 1],
            leader,
            leader_epoch,
            isr: vec![
                IsrMember {
                    broker: 0,
                    broker_epoch: 5,
                },
                IsrMember {
                    broker: 1,
                    broker_epoch: 6,
                },
            ],
            partition_epoch: leader_epoch,
        };
        image.partitions.entry("t".into()).or_default().insert(
            0,
            Versioned {
                value: record,
                mod_revision: revision,
            },
        );
        Arc::new(image)
    }

    #[test]
    fn a_new_incarnation_takes_its_roles_from_the_newest_applied_image() {
        let replicas = manager(&SimFs::new());
        replicas.set_broker_epoch(5);
        let topic = TopicRecord {
            id: crate::ids::new_id(),
            partitions: 1,
            replication_factor: 2,
            configs: BTreeMap::new(),
        };
        let led = image(&topic, 0, 1, 2);
        replicas.apply_image(&MetadataImage::default(), &led);
        assert_eq!(replicas.get("t", 0).unwrap().state().role, Role::Leader);
        let moved = image(&topic, 1, 2, 3);
        replicas.apply_image(&led, &moved);
        // The published image may still be `led` here (the loader publishes after it
        // applies): the new incarnation must not go back to it.
        replicas.change_incarnation(Some(5));
        let state = replicas.get("t", 0).unwrap().state();
        assert_eq!(
            (state.role, state.leader, state.leader_epoch),
            (Role::Follower, 1, 2)
        );
        // Registered again with a new epoch while leading: it steps down at once (the
        // ISR names only its old incarnation), on the newest record.
        let led_again = image(&topic, 0, 3, 4);
        replicas.apply_image(&moved, &led_again);
        assert_eq!(replicas.get("t", 0).unwrap().state().role, Role::Leader);
        replicas.change_incarnation(Some(8));
        let state = replicas.get("t", 0).unwrap().state();
        assert_eq!((state.role, state.leader_epoch), (Role::Follower, 3));
        assert_eq!(replicas.broker_epoch(), 8);
    }
}
