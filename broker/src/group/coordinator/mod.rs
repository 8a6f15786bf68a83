//! The group coordinator: the groups of every `__consumer_offsets` partition this broker
//! leads, loaded from that partition and kept there, and the request API the handlers
//! call (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
//! OffsetFetch, DeleteGroups, OffsetDelete).
//!
//! Each led partition is a shard. A shard loads by replaying its partition up to the
//! high watermark (requests meanwhile get COORDINATOR_LOAD_IN_PROGRESS) and is dropped
//! when leadership moves (waiting requests then get NOT_COORDINATOR). Records are
//! appended while the shard's lock is held, so the log's order is the order in which the
//! state changed; acknowledgement is awaited after the lock is released, and only then is
//! a commit applied or a SyncGroup answered.
//!
//! - [`shard`]: the shards: following leadership, loading, appending, the timers and the
//!   offsets-retention sweep.
//! - [`admin`]: read-only views for admin requests and metrics (ListGroups,
//!   DescribeGroups, lag, group counts).

mod admin;
mod shard;
#[cfg(test)]
mod test_fixture;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use proto_kafka::error::ResponseError;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::codec::{group_key, group_value, offset_key, offset_value, OffsetValue};
use super::hash::partition_for;
use super::state::{
    Committed, Group, GroupLimits, GroupState, JoinOutcome, JoinRequest, Joined, SyncOutcome,
    Synced,
};
use crate::clock::now_ms;
use crate::controller::service::ControllerService;
use crate::controller::{AdminError, TopicSpec};
use crate::metadata::cache::MetadataCache;
use crate::partition::manager::ReplicaManager;
use crate::partition::ReplicaError;
use crate::protocol::error_code::code;
use shard::{append, spawn_wait, write_error, Shard};

pub use admin::{GroupSummary, MemberSummary};

/// The internal topic holding groups and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How often timers (sessions, join and sync deadlines) are checked.
const TICK: Duration = Duration::from_millis(100);

/// The coordinator's settings.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub limits: GroupLimits,
    pub offsets_partitions: i32,
    pub offsets_replication_factor: i16,
    pub offsets_segment_bytes: i64,
    pub offsets_max_message_bytes: usize,
    pub offsets_retention_ms: i64,
    pub offsets_retention_check: Duration,
    pub offset_metadata_max_bytes: usize,
}

/// One offset to commit.
#[derive(Debug, Clone)]
pub struct OffsetToCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// One committed offset as OffsetFetch returns it (-1 when none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// Counters that show the coordinator really did its work (asserted by tests).
#[derive(Debug, Default)]
pub struct CoordinatorStats {
    pub shards_loaded: std::sync::atomic::AtomicU64,
    pub records_loaded: std::sync::atomic::AtomicU64,
    pub offsets_committed: std::sync::atomic::AtomicU64,
    pub offsets_expired: std::sync::atomic::AtomicU64,
    pub rebalances: std::sync::atomic::AtomicU64,
}

/// segment.bytes' lower bound (Kafka 4's).
const MIN_SEGMENT_BYTES: i64 = 1_048_576;

#[derive(Debug)]
pub struct GroupCoordinator {
    config: CoordinatorConfig,
    replicas: Arc<ReplicaManager>,
    cache: Arc<MetadataCache>,
    admin: Arc<dyn ControllerService>,
    shards: RwLock<HashMap<i32, Arc<Shard>>>,
    pub stats: CoordinatorStats,
}

impl GroupCoordinator {
    pub fn new(
        config: CoordinatorConfig,
        replicas: Arc<ReplicaManager>,
        cache: Arc<MetadataCache>,
        admin: Arc<dyn ControllerService>,
    ) -> GroupCoordinator {
        GroupCoordinator {
            config,
            replicas,
            cache,
            admin,
            shards: RwLock::new(HashMap::new()),
            stats: CoordinatorStats::default(),
        }
    }

    fn offsets_partition_count(&self) -> Option<i32> {
        self.cache
            .image()
            .topic(OFFSETS_TOPIC)
            .map(|t| t.partitions)
    }

    /// The shard holding `group`, if this broker coordinates it and has loaded it.
    fn shard(&self, group: &str) -> Result<Arc<Shard>, ResponseError> {
        let Some(n) = self.offsets_partition_count() else {
            return Err(ResponseError::CoordinatorNotAvailable);
        };
        let p = partition_for(group, n);
        let shard = self
            .shards
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&p)
            .cloned()
            .ok_or(ResponseError::NotCoordinator)?;
        if !shard.lock().loaded {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        Ok(shard)
    }

    fn all_shards(&self) -> Vec<Arc<Shard>> {
        self.shards
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The broker coordinating `group` (FindCoordinator), creating the offsets topic on
    /// first use.
    pub async fn find(&self, group: &str) -> Result<i32, ResponseError> {
        if self.offsets_partition_count().is_none() {
            self.create_offsets_topic().await?;
        }
        let image = self.cache.image();
        let n = image
            .topic(OFFSETS_TOPIC)
            .map(|t| t.partitions)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        let p = partition_for(group, n);
        match image.partition(OFFSETS_TOPIC, p) {
            Some(record) if record.leader >= 0 => Ok(record.leader),
            _ => Err(ResponseError::CoordinatorNotAvailable),
        }
    }

    async fn create_offsets_topic(&self) -> Result<(), ResponseError> {
        let live = self.cache.image().brokers.len().max(1);
        let replication = (self.config.offsets_replication_factor as usize).min(live) as i16;
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        // offsets.topic.segment.bytes may be below segment.bytes' 1 MiB floor (Kafka
        // allows it): such a value goes through the internal key, which has none.
        let segment_key = if self.config.offsets_segment_bytes < MIN_SEGMENT_BYTES {
            "internal.segment.bytes"
        } else {
            "segment.bytes"
        };
        configs.insert(
            segment_key.to_string(),
            self.config.offsets_segment_bytes.to_string(),
        );
        configs.insert(
            "max.message.bytes".to_string(),
            self.config.offsets_max_message_bytes.to_string(),
        );
        let spec = TopicSpec {
            name: OFFSETS_TOPIC.to_string(),
            partitions: self.config.offsets_partitions,
            replication_factor: replication,
            assignments: BTreeMap::new(),
            configs,
        };
        let (outcomes, caught_up) = self
            .admin
            .create_topics(vec![spec], false, Duration::from_secs(10))
            .await;
        match outcomes.into_iter().next().map(|(_, o)| o) {
            Some(Ok(_)) => {
                info!(
                    partitions = self.config.offsets_partitions,
                    replication_factor = replication,
                    "created the offsets topic"
                );
            }
            Some(Err(AdminError::TopicAlreadyExists(_))) => {}
            Some(Err(err)) => {
                warn!(error = ?err, "failed to create the offsets topic");
                return Err(ResponseError::CoordinatorNotAvailable);
            }
            None => return Err(ResponseError::CoordinatorNotAvailable),
        }
        if !caught_up {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        Ok(())
    }

    /// Keeps shards in step with leadership and runs the groups' timers.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut changes = self.cache.subscribe();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_expiry = Instant::now();
        loop {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = tick.tick() => {}
                _ = shutdown.changed() => {
                    // Members waiting in JoinGroup or SyncGroup learn at once to look for
                    // another coordinator instead of holding the drain open.
                    for shard in self.shards.write().unwrap_or_else(|e| e.into_inner()).drain() {
                        for g in shard.1.lock().groups.values_mut() {
                            g.kill();
                        }
                    }
                    return;
                }
            }
            self.reconcile();
            self.tick_groups();
            if last_expiry.elapsed() >= self.config.offsets_retention_check {
                last_expiry = Instant::now();
                self.expire_offsets();
            }
        }
    }

    /// JoinGroup.
    pub async fn join(&self, group: &str, request: JoinRequest) -> JoinOutcome {
        let member_id = request.member_id.clone();
        if group.is_empty() {
            return JoinOutcome::error(ResponseError::InvalidGroupId, &member_id);
        }
        let shard = match self.shard(group) {
            Ok(s) => s,
            Err(e) => return JoinOutcome::error(e, &member_id),
        };
        let wait = Duration::from_millis(
            request
                .rebalance_timeout_ms
                .max(request.session_timeout_ms)
                .max(0) as u64,
        ) + Duration::from_secs(10);
        let joined = {
            let mut state = shard.lock();
            if !request.member_id.is_empty() && !state.groups.contains_key(group) {
                return JoinOutcome::error(ResponseError::UnknownMemberId, &member_id);
            }
            let g = state
                .groups
                .entry(group.to_string())
                .or_insert_with(|| Group::new(group, now_ms()));
            let before = g.rebalances;
            debug!(group, member = %request.member_id, state = g.state.name(), generation = g.generation, "join group");
            let joined = g.join(request, &self.config.limits, Instant::now(), now_ms());
            self.count_rebalances(g, before);
            state.groups.retain(|_, g| !g.is_vacant());
            joined
        };
        let outcome = match joined {
            Joined::Now(outcome) => outcome,
            Joined::Later(rx) => match tokio::time::timeout(wait, rx).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(_)) => JoinOutcome::error(ResponseError::NotCoordinator, &member_id),
                Err(_) => JoinOutcome::error(ResponseError::RebalanceInProgress, &member_id),
            },
        };
        debug!(group, member = %outcome.member_id, error = outcome.error, generation = outcome.generation, leader = %outcome.leader, "join group answered");
        outcome
    }

    fn count_rebalances(&self, g: &Group, before: u64) {
        if g.rebalances > before {
            self.stats
                .rebalances
                .fetch_add(g.rebalances - before, std::sync::atomic::Ordering::Relaxed);
            info!(group = %g.id, generation = g.generation, members = g.members.len(), "group is rebalancing");
        }
    }

    /// SyncGroup.
    #[allow(clippy::too_many_arguments)]
    pub async fn sync(
        &self,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncOutcome {
        if group.is_empty() {
            return SyncOutcome::error(ResponseError::InvalidGroupId);
        }
        let shard = match self.shard(group) {
            Ok(s) => s,
            Err(e) => return SyncOutcome::error(e),
        };
        let (synced, write) = {
            let mut state = shard.lock();
            let Some(g) = state.groups.get_mut(group) else {
                return SyncOutcome::error(ResponseError::UnknownMemberId);
            };
            debug!(
                group,
                member = member_id,
                generation,
                state = g.state.name(),
                group_generation = g.generation,
                assignments = assignments.len(),
                "sync group"
            );
            let synced = g.sync(
                member_id,
                instance_id,
                generation,
                protocol_type,
                protocol_name,
                assignments,
                Instant::now(),
            );
            let write = match &synced {
                Synced::Store(value, _) => Some(append(
                    &shard,
                    &[(group_key(group), Some(group_value(value)))],
                )),
                _ => None,
            };
            if let Some(Err(err)) = &write {
                g.assignment_stored(generation, Some(write_error(err)), Instant::now(), now_ms());
            }
            (synced, write)
        };
        let rx = match synced {
            Synced::Now(outcome) => {
                debug!(
                    group,
                    member = member_id,
                    error = outcome.error,
                    "sync group answered"
                );
                return outcome;
            }
            Synced::Later(rx) => rx,
            Synced::Store(_, rx) => {
                if let Some(Ok(write)) = write {
                    let result = write.wait().await;
                    if let Err(err) = &result {
                        warn!(group, error = ?err, "failed to store a group's assignment");
                    }
                    let mut state = shard.lock();
                    if let Some(g) = state.groups.get_mut(group) {
                        g.assignment_stored(
                            generation,
                            result.err().map(|e| write_error(&e)),
                            Instant::now(),
                            now_ms(),
                        );
                        if g.state == GroupState::Stable {
                            info!(
                                group,
                                generation,
                                members = g.members.len(),
                                "group is stable"
                            );
                        }
                    }
                }
                rx
            }
        };
        let outcome = rx
            .await
            .unwrap_or_else(|_| SyncOutcome::error(ResponseError::NotCoordinator));
        debug!(
            group,
            member = member_id,
            error = outcome.error,
            assignment_bytes = outcome.assignment.len(),
            "sync group answered"
        );
        outcome
    }

    /// Heartbeat: the error code to answer.
    pub fn heartbeat(
        &self,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        let shard = match self.shard(group) {
            Ok(s) => s,
            Err(e) => return code(e),
        };
        let mut state = shard.lock();
        match state.groups.get_mut(group) {
            Some(g) => {
                let error = g.heartbeat(member_id, instance_id, generation, Instant::now());
                debug!(
                    group,
                    member = member_id,
                    generation,
                    state = g.state.name(),
                    group_generation = g.generation,
                    error,
                    "heartbeat"
                );
                error
            }
            None => code(ResponseError::UnknownMemberId),
        }
    }

    /// LeaveGroup: a top-level error, or one code per member.
    pub fn leave(
        &self,
        group: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<i16>, i16> {
        let shard = self.shard(group).map_err(code)?;
        let mut state = shard.lock();
        let Some(g) = state.groups.get_mut(group) else {
            return Err(code(ResponseError::UnknownMemberId));
        };
        let now = Instant::now();
        let before = g.rebalances;
        let results = members
            .iter()
            .map(|(member, instance)| {
                let error = g.leave(member, instance.as_deref(), now, now_ms());
                debug!(group, member = %member, error, "leave group");
                error
            })
            .collect();
        self.count_rebalances(g, before);
        if g.take_store_due() {
            let value = group_value(&g.value());
            let write = append(&shard, &[(group_key(group), Some(value))]);
            drop(state);
            spawn_wait(write, "store an emptied group");
        }
        Ok(results)
    }

    /// OffsetCommit: a top-level error, or one code per offset, answered once stored.
    pub async fn commit(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<OffsetToCommit>,
    ) -> Result<Vec<i16>, i16> {
        if group.is_empty() {
            return Err(code(ResponseError::InvalidGroupId));
        }
        let shard = self.shard(group).map_err(code)?;
        let image = self.cache.image();
        let now_ms = now_ms();
        let mut results = vec![0i16; offsets.len()];
        let mut records = Vec::new();
        let mut applied = Vec::new();
        for (i, o) in offsets.iter().enumerate() {
            let metadata = o.metadata.clone().unwrap_or_default();
            if metadata.len() > self.config.offset_metadata_max_bytes {
                results[i] = code(ResponseError::OffsetMetadataTooLarge);
                continue;
            }
            let known = image
                .topic(&o.topic)
                .is_some_and(|t| o.partition >= 0 && o.partition < t.partitions);
            if !known {
                results[i] = code(ResponseError::UnknownTopicOrPartition);
                continue;
            }
            let value = OffsetValue {
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata,
                commit_timestamp: now_ms,
            };
            records.push((
                offset_key(group, &o.topic, o.partition),
                Some(offset_value(&value)),
            ));
            applied.push((i, o.topic.clone(), o.partition, value));
        }
        let write = {
            let mut state = shard.lock();
            if !state.groups.contains_key(group) && (generation >= 0 || !member_id.is_empty()) {
                return Err(code(ResponseError::IllegalGeneration));
            }
            let g = state
                .groups
                .entry(group.to_string())
                .or_insert_with(|| Group::new(group, now_ms));
            g.check_commit(member_id, instance_id, generation, Instant::now())
                .map_err(code)?;
            if records.is_empty() {
                return Ok(results);
            }
            g.pending_commits += 1;
            append(&shard, &records)
        };
        // Released on every way out, a dropped request included.
        let pending = PendingCommit {
            shard: shard.clone(),
            group,
        };
        let write = match write {
            Ok(w) => w,
            Err(err) => {
                let e = match err {
                    ReplicaError::InvalidRecords(_) => code(ResponseError::InvalidCommitOffsetSize),
                    other => write_error(&other),
                };
                for (i, ..) in &applied {
                    results[*i] = e;
                }
                return Ok(results);
            }
        };
        if let Err(err) = write.wait().await {
            let e = write_error(&err);
            for (i, ..) in &applied {
                results[*i] = e;
            }
            return Ok(results);
        }
        let mut state = shard.lock();
        if let Some(g) = state.groups.get_mut(group) {
            for (n, (_, topic, partition, value)) in applied.iter().enumerate() {
                g.apply_offset(
                    topic,
                    *partition,
                    Committed {
                        value: value.clone(),
                        log_offset: write.base_offset + n as i64,
                    },
                );
            }
        }
        self.stats
            .offsets_committed
            .fetch_add(applied.len() as u64, std::sync::atomic::Ordering::Relaxed);
        drop(state);
        drop(pending);
        Ok(results)
    }

    /// OffsetFetch: the committed offsets of the listed partitions (all when `None`).
    pub fn fetch_offsets(
        &self,
        group: &str,
        partitions: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Vec<FetchedOffset>, i16> {
        let shard = self.shard(group).map_err(code)?;
        let state = shard.lock();
        let committed = state.groups.get(group).map(|g| &g.offsets);
        let found = |topic: &str, partition: i32| {
            let c = committed.and_then(|o| o.get(&(topic.to_string(), partition)));
            FetchedOffset {
                topic: topic.to_string(),
                partition,
                offset: c.map_or(-1, |c| c.value.offset),
                leader_epoch: c.map_or(-1, |c| c.value.leader_epoch),
                metadata: c.map(|c| c.value.metadata.clone()).unwrap_or_default(),
            }
        };
        Ok(match partitions {
            Some(list) => list
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(|p| found(t, *p)))
                .collect(),
            None => committed
                .map(|o| o.keys().map(|(t, p)| found(t, *p)).collect())
                .unwrap_or_default(),
        })
    }

    /// ListGroups: (group id, protocol type, state) of every group here.
    /// DeleteGroups for one group: only an empty group, its offsets with it.
    pub async fn delete_group(&self, group: &str) -> i16 {
        let shard = match self.shard(group) {
            Ok(s) => s,
            Err(e) => return code(e),
        };
        let write = {
            let mut state = shard.lock();
            let Some(g) = state.groups.get(group) else {
                return code(ResponseError::GroupIdNotFound);
            };
            if g.state == GroupState::Dead {
                return code(ResponseError::GroupIdNotFound);
            }
            if !g.members.is_empty() {
                return code(ResponseError::NonEmptyGroup);
            }
            let mut tombstones: Vec<(Bytes, Option<Bytes>)> = g
                .offsets
                .keys()
                .map(|(t, p)| (offset_key(group, t, *p), None))
                .collect();
            tombstones.push((group_key(group), None));
            let write = append(&shard, &tombstones);
            if write.is_ok() {
                if let Some(mut g) = state.groups.remove(group) {
                    g.kill();
                }
            }
            write
        };
        match write {
            Ok(w) => match w.wait().await {
                Ok(()) => {
                    info!(group, "deleted group");
                    0
                }
                Err(err) => write_error(&err),
            },
            Err(err) => write_error(&err),
        }
    }

    /// OffsetDelete: a top-level error, or a code per partition.
    pub async fn delete_offsets(
        &self,
        group: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<i16>, i16> {
        let shard = self.shard(group).map_err(code)?;
        let (results, write) = {
            let mut state = shard.lock();
            let Some(g) = state.groups.get_mut(group) else {
                return Err(code(ResponseError::GroupIdNotFound));
            };
            if g.state == GroupState::Dead {
                return Err(code(ResponseError::GroupIdNotFound));
            }
            let subscribed = g.subscribed_topics();
            let mut results = Vec::with_capacity(partitions.len());
            let mut tombstones = Vec::new();
            for (topic, partition) in &partitions {
                let busy = subscribed.as_ref().is_none_or(|s| s.contains(topic));
                if busy {
                    results.push(code(ResponseError::GroupSubscribedToTopic));
                    continue;
                }
                if g.offsets.remove(&(topic.clone(), *partition)).is_some() {
                    tombstones.push((offset_key(group, topic, *partition), None));
                }
                results.push(0);
            }
            let write = if tombstones.is_empty() {
                None
            } else {
                Some(append(&shard, &tombstones))
            };
            (results, write)
        };
        match write {
            None => Ok(results),
            Some(Ok(w)) => match w.wait().await {
                Ok(()) => Ok(results),
                Err(err) => Err(write_error(&err)),
            },
            Some(Err(err)) => Err(write_error(&err)),
        }
    }
}

/// An offset commit between its write and its application: keeps the group from being
/// dropped as vacant (`Group::pending_commits`) until it ends, however it ends.
struct PendingCommit<'a> {
    shard: Arc<Shard>,
    group: &'a str,
}

impl Drop for PendingCommit<'_> {
    fn drop(&mut self) {
        let mut state = self.shard.lock();
        if let Some(g) = state.groups.get_mut(self.group) {
            g.pending_commits = g.pending_commits.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use proto_kafka::error::ResponseError;

    use super::test_fixture::Fixture;
    use super::OffsetToCommit;
    use crate::clock::now_ms;
    use crate::group::codec::{group_key, group_value, GroupValue, MemberValue};
    use crate::protocol::error_code::code;

    fn offset(topic: &str, offset: i64) -> OffsetToCommit {
        OffsetToCommit {
            topic: topic.to_string(),
            partition: 0,
            offset,
            leader_epoch: -1,
            metadata: None,
        }
    }

    /// A stored generation of group `g` with one member, `m1`.
    fn stored_group(generation: i32) -> (Bytes, Option<Bytes>) {
        let value = GroupValue {
            protocol_type: "consumer".to_string(),
            generation,
            protocol: Some("range".to_string()),
            leader: Some("m1".to_string()),
            state_timestamp: now_ms(),
            members: vec![MemberValue {
                member_id: "m1".to_string(),
                instance_id: None,
                client_id: "c".to_string(),
                client_host: "/127.0.0.1".to_string(),
                rebalance_timeout_ms: 30_000,
                session_timeout_ms: 30_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"assigned"),
            }],
        };
        (group_key("g"), Some(group_value(&value)))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_the_offsets_topic_no_coordinator_is_available() {
        let f = Fixture::start(false).await;
        let c = &f.coordinator;
        assert_eq!(
            c.heartbeat("g", "m1", None, 1),
            code(ResponseError::CoordinatorNotAvailable)
        );
        assert_eq!(
            c.fetch_offsets("g", None),
            Err(code(ResponseError::CoordinatorNotAvailable))
        );
        f.stop();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_get_not_coordinator_then_load_in_progress_until_the_shard_is_loaded() {
        let f = Fixture::start(true).await;
        let c = &f.coordinator;
        let not_coordinator = code(ResponseError::NotCoordinator);
        assert_eq!(c.heartbeat("g", "m1", None, 1), not_coordinator);
        assert_eq!(c.fetch_offsets("g", None), Err(not_coordinator));
        assert_eq!(
            c.commit("g", -1, "", None, vec![offset("t", 1)]).await,
            Err(not_coordinator)
        );
        assert_eq!(c.list(&[]), Ok(Vec::new()), "no shard, nothing to list");

        let shard = f.unloaded_shard();
        let loading = code(ResponseError::CoordinatorLoadInProgress);
        assert_eq!(c.heartbeat("g", "m1", None, 1), loading);
        assert_eq!(c.fetch_offsets("g", None), Err(loading));
        assert_eq!(
            c.commit("g", -1, "", None, vec![offset("t", 1)]).await,
            Err(loading)
        );
        assert_eq!(c.list(&[]), Err(loading));
        assert_eq!(c.describe("g").map(|s| s.state), Err(loading));

        f.load(&shard).await;
        assert_eq!(
            c.heartbeat("g", "m1", None, 1),
            code(ResponseError::UnknownMemberId),
            "loaded: the group is answered for, and it does not exist"
        );
        assert_eq!(c.list(&[]), Ok(Vec::new()));
        f.stop();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reconcile_takes_up_the_led_offsets_partition_and_loads_it() {
        let f = Fixture::start(true).await;
        let c = &f.coordinator;
        c.reconcile();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let error = c.heartbeat("g", "m1", None, 1);
            if error != code(ResponseError::CoordinatorLoadInProgress) {
                assert_eq!(error, code(ResponseError::UnknownMemberId));
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "never loaded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            c.stats
                .shards_loaded
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        f.stop();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_from_outside_the_groups_generation_is_refused() {
        let f = Fixture::start(true).await;
        let c = &f.coordinator;
        let shard = f.unloaded_shard();
        f.write(&shard, &[stored_group(3)]).await;
        f.load(&shard).await;

        let illegal = code(ResponseError::IllegalGeneration);
        assert_eq!(
            c.commit("g", 2, "m1", None, vec![offset("t", 10)]).await,
            Err(illegal),
            "a stale generation"
        );
        assert_eq!(
            c.commit("g", 4, "m1", None, vec![offset("t", 10)]).await,
            Err(illegal),
            "a generation the group never reached"
        );
        assert_eq!(
            c.commit("g", 3, "m2", None, vec![offset("t", 10)]).await,
            Err(code(ResponseError::UnknownMemberId)),
            "not a member"
        );
        assert_eq!(
            c.commit("g", -1, "", None, vec![offset("t", 10)]).await,
            Err(code(ResponseError::UnknownMemberId)),
            "an admin commit while the group has members"
        );
        assert_eq!(
            c.commit("absent", 1, "m1", None, vec![offset("t", 10)])
                .await,
            Err(illegal),
            "a generation of a group that does not exist"
        );
        assert_eq!(
            c.describe("absent").map(|s| s.state),
            Ok("Dead"),
            "a refused commit creates no group"
        );
        let fetched = c.fetch_offsets("g", None).unwrap();
        assert!(
            fetched.is_empty(),
            "nothing refused was applied: {fetched:?}"
        );

        assert_eq!(
            c.commit("g", 3, "m1", None, vec![offset("t", 10), offset("nope", 1)])
                .await,
            Ok(vec![0, code(ResponseError::UnknownTopicOrPartition)])
        );
        let fetched = c
            .fetch_offsets("g", Some(vec![("t".to_string(), vec![0])]))
            .unwrap();
        assert_eq!(fetched.len(), 1);
        assert_eq!(fetched[0].offset, 10);
        f.stop();
    }
}
