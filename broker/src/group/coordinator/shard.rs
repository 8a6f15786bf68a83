//! The shards: one per `__consumer_offsets` partition this broker leads. A shard follows
//! the partition's leadership, loads its groups by replaying the partition, appends the
//! records that change them, and runs their timers and the offsets-retention sweep.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use proto_kafka::error::ResponseError;
use proto_kafka::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tracing::{info, warn};

use super::{GroupCoordinator, OFFSETS_TOPIC};
use crate::clock::now_ms;
use crate::group::codec::{
    decode_group_value, decode_key, decode_offset_value, group_key, group_value, offset_key,
    RecordKey,
};
use crate::group::state::{Committed, Group, GroupState};
use crate::log::segment::ReadBatches;
use crate::partition::{Partition, ReadLimit, ReplicaError, Role};
use crate::protocol::error_code::code;

/// What a shard holds; `loaded` turns true once the partition has been replayed.
#[derive(Debug, Default)]
pub(super) struct ShardState {
    pub(super) loaded: bool,
    pub(super) groups: HashMap<String, Group>,
}

/// One led `__consumer_offsets` partition and its groups.
#[derive(Debug)]
pub(super) struct Shard {
    pub(super) partition: Arc<Partition>,
    /// The epoch it is led in: a new epoch means a new shard, loaded again.
    pub(super) leader_epoch: i32,
    pub(super) state: Mutex<ShardState>,
}

impl Shard {
    pub(super) fn lock(&self) -> MutexGuard<'_, ShardState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An append to `__consumer_offsets` waiting for its acknowledgement.
pub(super) struct PendingWrite {
    partition: Arc<Partition>,
    pub(super) base_offset: i64,
    end_offset: i64,
    leader_epoch: i32,
}

/// The longest a coordinator write waits for its acknowledgement (Kafka's
/// `offsets.commit.timeout.ms` default): every wait on the log has an end.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl PendingWrite {
    pub(super) async fn wait(&self) -> Result<(), ReplicaError> {
        let acked = self
            .partition
            .wait_for_acks(self.end_offset, -1, self.leader_epoch);
        tokio::time::timeout(WRITE_TIMEOUT, acked)
            .await
            .unwrap_or(Err(ReplicaError::Timeout))
    }
}

/// The code a failed write to `__consumer_offsets` is answered with (Kafka's mapping).
pub(super) fn write_error(error: &ReplicaError) -> i16 {
    code(match error {
        ReplicaError::NotLeader
        | ReplicaError::FencedLeaderEpoch
        | ReplicaError::UnknownLeaderEpoch => ResponseError::NotCoordinator,
        ReplicaError::NotEnoughReplicas
        | ReplicaError::NotEnoughReplicasAfterAppend
        | ReplicaError::Timeout
        | ReplicaError::Storage => ResponseError::CoordinatorNotAvailable,
        _ => ResponseError::UnknownServerError,
    })
}

fn encode_batch(records: &[(Bytes, Option<Bytes>)], now_ms: i64) -> Result<BytesMut, ReplicaError> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon_ms: None,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now_ms,
            key: Some(key.clone()),
            value: value.clone(),
            headers: Vec::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| ReplicaError::Unsupported(format!("failed to encode a group record: {e}")))?;
    Ok(buf)
}

/// Appends records to the shard's partition; the caller holds the shard's lock.
pub(super) fn append(
    shard: &Shard,
    records: &[(Bytes, Option<Bytes>)],
) -> Result<PendingWrite, ReplicaError> {
    let now = now_ms();
    let mut batch = encode_batch(records, now)?;
    let appended = shard
        .partition
        .append_in_epoch(&mut batch, -1, now, shard.leader_epoch)?;
    Ok(PendingWrite {
        partition: shard.partition.clone(),
        base_offset: appended.info.base_offset,
        end_offset: appended.info.last_offset + 1,
        leader_epoch: shard.leader_epoch,
    })
}

impl GroupCoordinator {
    pub(super) fn reconcile(self: &Arc<Self>) {
        let n = self.offsets_partition_count().unwrap_or(0);
        let mut wanted: HashMap<i32, (Arc<Partition>, i32)> = HashMap::new();
        for p in 0..n {
            if let Some(partition) = self.replicas.get(OFFSETS_TOPIC, p) {
                let state = partition.state();
                if state.role == Role::Leader {
                    wanted.insert(p, (partition, state.leader_epoch));
                }
            }
        }
        let mut shards = self.shards.write().unwrap_or_else(|e| e.into_inner());
        shards.retain(|p, s| {
            let keep = wanted
                .get(p)
                .is_some_and(|(_, epoch)| *epoch == s.leader_epoch);
            if !keep {
                info!(
                    partition = p,
                    "no longer coordinating this offsets partition"
                );
                for g in s.lock().groups.values_mut() {
                    g.kill();
                }
            }
            keep
        });
        for (p, (partition, epoch)) in wanted {
            if shards.contains_key(&p) {
                continue;
            }
            let shard = Arc::new(Shard {
                partition,
                leader_epoch: epoch,
                state: Mutex::new(ShardState::default()),
            });
            shards.insert(p, shard.clone());
            let me = self.clone();
            tokio::task::spawn_blocking(move || me.load(p, &shard));
        }
    }

    /// Replays a shard's partition up to its log end, as Kafka's coordinator does: a new
    /// leader's high watermark lags until its followers fetch, and replaying only to it
    /// would roll committed offsets back. Reads are fenced by the shard's leader epoch.
    pub(super) fn load(&self, index: i32, shard: &Shard) {
        let started = Instant::now();
        let partition = &shard.partition;
        let offsets = partition.offsets();
        let log_end = offsets.log_end;
        let mut offset = offsets.log_start;
        let mut groups: HashMap<String, Group> = HashMap::new();
        let mut records = 0u64;
        let now = Instant::now();
        while offset < log_end {
            let read = match partition.read(
                offset,
                1 << 20,
                true,
                shard.leader_epoch,
                ReadLimit::LogEnd,
            ) {
                Ok(read) => ReadBatches {
                    bytes: read.records,
                    next_offset: read.next_offset,
                },
                Err(err) => {
                    warn!(partition = index, error = ?err, "failed to load an offsets partition; not coordinating it");
                    return;
                }
            };
            if read.bytes.is_empty() {
                break;
            }
            let mut buf = read.bytes;
            while buf.has_remaining() {
                let set = match RecordBatchDecoder::decode(&mut buf) {
                    Ok(set) => set,
                    Err(err) => {
                        warn!(partition = index, offset, error = %err, "skipping an unreadable batch in the offsets topic");
                        break;
                    }
                };
                for r in set.records.iter().filter(|r| !r.control) {
                    records += 1;
                    replay(&mut groups, r, now);
                }
            }
            offset = read.next_offset.max(offset + 1);
        }
        groups.retain(|_, g| !g.is_vacant());
        let count = groups.len();
        {
            let mut state = shard.lock();
            state.groups = groups;
            state.loaded = true;
        }
        use std::sync::atomic::Ordering;
        self.stats.shards_loaded.fetch_add(1, Ordering::Relaxed);
        self.stats
            .records_loaded
            .fetch_add(records, Ordering::Relaxed);
        info!(
            partition = index,
            groups = count,
            records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded offsets partition"
        );
    }

    pub(super) fn tick_groups(&self) {
        let now = Instant::now();
        let now_ms = now_ms();
        for shard in self.all_shards() {
            let mut state = shard.lock();
            if !state.loaded {
                continue;
            }
            let mut writes = Vec::new();
            for g in state.groups.values_mut() {
                let before = g.rebalances;
                let emptied = g.tick(now, now_ms);
                self.count_rebalances(g, before);
                if emptied {
                    writes.push((group_key(&g.id), Some(group_value(&g.value()))));
                }
            }
            state.groups.retain(|_, g| !g.is_vacant());
            if !writes.is_empty() {
                let write = append(&shard, &writes);
                drop(state);
                spawn_wait(write, "store emptied groups");
            }
        }
    }

    /// Removes offsets past `offsets.retention.minutes` (KIP-211) and groups left with
    /// nothing, writing their tombstones.
    pub(super) fn expire_offsets(&self) {
        let now_ms = now_ms();
        for shard in self.all_shards() {
            let mut state = shard.lock();
            if !state.loaded {
                continue;
            }
            let mut tombstones = Vec::new();
            let mut expired_groups = Vec::new();
            for g in state.groups.values_mut() {
                let expired = g.expired_offsets(now_ms, self.config.offsets_retention_ms);
                for (topic, partition) in &expired {
                    g.offsets.remove(&(topic.clone(), *partition));
                    tombstones.push((offset_key(&g.id, topic, *partition), None));
                }
                self.stats
                    .offsets_expired
                    .fetch_add(expired.len() as u64, std::sync::atomic::Ordering::Relaxed);
                if g.state == GroupState::Empty && g.offsets.is_empty() && !expired.is_empty() {
                    tombstones.push((group_key(&g.id), None));
                    expired_groups.push(g.id.clone());
                }
            }
            for id in &expired_groups {
                if let Some(mut g) = state.groups.remove(id) {
                    g.kill();
                }
            }
            if !tombstones.is_empty() {
                info!(
                    records = tombstones.len(),
                    groups = expired_groups.len(),
                    "expired committed offsets"
                );
                let write = append(&shard, &tombstones);
                drop(state);
                spawn_wait(write, "expire offsets");
            }
        }
    }
}

/// Waits for a write whose outcome only needs logging.
pub(super) fn spawn_wait(write: Result<PendingWrite, ReplicaError>, what: &'static str) {
    match write {
        Ok(w) => {
            tokio::spawn(async move {
                if let Err(err) = w.wait().await {
                    warn!(error = ?err, what, "a group write failed");
                }
            });
        }
        Err(err) => warn!(error = ?err, what, "a group write failed"),
    }
}

/// Applies one record of `__consumer_offsets` while loading.
fn replay(groups: &mut HashMap<String, Group>, r: &Record, now: Instant) {
    let Some(key) = &r.key else {
        return;
    };
    let key = match decode_key(key) {
        Ok(k) => k,
        Err(err) => {
            warn!(offset = r.offset, error = ?err, "skipping an unreadable key in the offsets topic");
            return;
        }
    };
    match key {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => {
            let g = groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(&group, r.timestamp));
            match &r.value {
                None => {
                    g.offsets.remove(&(topic, partition));
                }
                Some(v) => match decode_offset_value(v) {
                    Ok(value) => g.apply_offset(
                        &topic,
                        partition,
                        Committed {
                            value,
                            log_offset: r.offset,
                        },
                    ),
                    Err(err) => {
                        warn!(offset = r.offset, error = ?err, "skipping an unreadable offset");
                    }
                },
            }
        }
        RecordKey::Group { group } => match &r.value {
            None => {
                if let Some(g) = groups.get_mut(&group) {
                    let offsets = std::mem::take(&mut g.offsets);
                    *g = Group::new(&group, r.timestamp);
                    g.offsets = offsets;
                }
            }
            Some(v) => match decode_group_value(v) {
                Ok(value) => groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group, r.timestamp))
                    .restore(value, now),
                Err(err) => {
                    warn!(offset = r.offset, error = ?err, "skipping an unreadable group");
                }
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use proto_kafka::records::{Record, TimestampType};

    use super::super::test_fixture::{Fixture, RETENTION_MS};
    use super::replay;
    use crate::clock::now_ms;
    use crate::group::codec::{
        group_key, group_value, offset_key, offset_value, GroupValue, MemberValue, OffsetValue,
    };
    use crate::group::state::{Group, GroupState};
    use crate::group::OFFSETS_TOPIC;

    fn record(offset: i64, key: Bytes, value: Option<Bytes>) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon_ms: None,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp: 1_000,
            key: Some(key),
            value,
            headers: Vec::new(),
        }
    }

    fn committed(group: &str, partition: i32, offset: i64, at_ms: i64) -> (Bytes, Option<Bytes>) {
        let value = OffsetValue {
            offset,
            leader_epoch: 2,
            metadata: format!("m{offset}"),
            commit_timestamp: at_ms,
        };
        (
            offset_key(group, "t", partition),
            Some(offset_value(&value)),
        )
    }

    /// A stored generation: `members` of them, consumers, since `since_ms`.
    fn stored_group(
        group: &str,
        generation: i32,
        members: &[&str],
        since_ms: i64,
    ) -> (Bytes, Option<Bytes>) {
        let value = GroupValue {
            protocol_type: "consumer".to_string(),
            generation,
            protocol: Some("range".to_string()),
            leader: members.first().map(|m| m.to_string()),
            state_timestamp: since_ms,
            members: members
                .iter()
                .map(|m| MemberValue {
                    member_id: m.to_string(),
                    instance_id: None,
                    client_id: "c".to_string(),
                    client_host: "/127.0.0.1".to_string(),
                    rebalance_timeout_ms: 30_000,
                    session_timeout_ms: 30_000,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"assigned"),
                })
                .collect(),
        };
        (group_key(group), Some(group_value(&value)))
    }

    fn replay_all(records: &[(Bytes, Option<Bytes>)]) -> HashMap<String, Group> {
        let mut groups = HashMap::new();
        let now = Instant::now();
        for (i, (key, value)) in records.iter().enumerate() {
            replay(
                &mut groups,
                &record(i as i64, key.clone(), value.clone()),
                now,
            );
        }
        groups
    }

    fn offsets_of(group: &Group) -> Vec<(i32, i64, i64)> {
        group
            .offsets
            .iter()
            .map(|((_, p), c)| (*p, c.value.offset, c.log_offset))
            .collect()
    }

    #[test]
    fn replay_keeps_the_last_commit_and_drops_tombstoned_offsets() {
        let groups = replay_all(&[
            committed("g", 0, 5, 1),
            committed("g", 1, 7, 1),
            committed("g", 0, 9, 1),
            (offset_key("g", "t", 1), None),
        ]);
        let g = &groups["g"];
        assert_eq!(offsets_of(g), vec![(0, 9, 2)]);
        assert_eq!(g.offsets[&("t".to_string(), 0)].value.metadata, "m9");
        assert_eq!(g.state, GroupState::Empty);
        assert_eq!(g.protocol_type, None, "a standalone committer");
    }

    #[test]
    fn replay_restores_a_stored_generation_and_a_group_tombstone_resets_it() {
        let mut records = vec![
            committed("g", 0, 5, 1),
            stored_group("g", 4, &["m1", "m2"], 1_234),
        ];
        let groups = replay_all(&records);
        let g = &groups["g"];
        assert_eq!(g.generation, 4);
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(g.protocol.as_deref(), Some("range"));
        assert_eq!(g.leader.as_deref(), Some("m1"));
        assert_eq!(
            g.members.keys().cloned().collect::<Vec<_>>(),
            vec!["m1".to_string(), "m2".to_string()]
        );
        assert_eq!(g.members["m1"].assignment.as_ref(), b"assigned");
        assert_eq!(g.state_since_ms, 1_234);
        assert_eq!(offsets_of(g), vec![(0, 5, 0)]);

        records.push((group_key("g"), None));
        let groups = replay_all(&records);
        let g = &groups["g"];
        assert_eq!(
            g.generation, 0,
            "the group tombstone forgets the generation"
        );
        assert!(g.members.is_empty());
        assert_eq!(g.state, GroupState::Empty);
        assert_eq!(offsets_of(g), vec![(0, 5, 0)], "but not the offsets");
    }

    #[test]
    fn replay_skips_records_it_cannot_read() {
        let groups = replay_all(&[
            (
                Bytes::from_static(b"\x00\x09junk"),
                Some(Bytes::from_static(b"x")),
            ),
            (offset_key("g", "t", 0), Some(Bytes::from_static(b"\x00"))),
            (group_key("h"), Some(Bytes::from_static(b"\x00\x03"))),
            committed("g", 1, 3, 1),
        ]);
        assert_eq!(offsets_of(&groups["g"]), vec![(1, 3, 3)]);
        assert!(
            groups.get("h").is_none_or(|h| h.generation == 0),
            "an unreadable group value restores nothing"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn load_rebuilds_the_groups_from_the_partition_and_forgets_vacant_ones() {
        let f = Fixture::start(true).await;
        let shard = f.unloaded_shard();
        f.write(
            &shard,
            &[
                committed("g", 0, 5, 1),
                stored_group("g", 2, &["m1"], 1),
                committed("gone", 0, 1, 1),
            ],
        )
        .await;
        f.write(
            &shard,
            &[committed("g", 0, 6, 1), (offset_key("gone", "t", 0), None)],
        )
        .await;
        f.load(&shard).await;

        let state = shard.lock();
        assert!(state.loaded);
        let g = &state.groups["g"];
        assert_eq!(g.generation, 2);
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(offsets_of(g), vec![(0, 6, 3)]);
        assert!(
            !state.groups.contains_key("gone"),
            "a group with nothing left is not kept"
        );
        let stats = &f.coordinator.stats;
        assert_eq!(stats.records_loaded.load(Ordering::Relaxed), 5);
        assert_eq!(stats.shards_loaded.load(Ordering::Relaxed), 1);
        drop(state);
        f.stop();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_retention_sweep_expires_old_offsets_and_keeps_a_live_groups() {
        let f = Fixture::start(true).await;
        let shard = f.unloaded_shard();
        let now = now_ms();
        let old = now - 2 * RETENTION_MS;
        f.write(
            &shard,
            &[
                // A standalone committer's offsets age by their own commit time.
                committed("standalone", 0, 1, old),
                committed("fresh", 0, 2, now),
                // A consumer group's from when it emptied, whatever the commit time.
                stored_group("emptied", 3, &[], old),
                committed("emptied", 0, 3, now),
                // A group with members keeps every offset.
                stored_group("live", 5, &["m1"], old),
                committed("live", 0, 4, old),
            ],
        )
        .await;
        f.load(&shard).await;

        f.coordinator.expire_offsets();
        {
            let state = shard.lock();
            let mut left: Vec<&str> = state.groups.keys().map(String::as_str).collect();
            left.sort();
            assert_eq!(left, vec!["fresh", "live"]);
            assert_eq!(offsets_of(&state.groups["live"]).len(), 1);
            assert_eq!(offsets_of(&state.groups["fresh"]).len(), 1);
        }
        assert_eq!(
            f.coordinator.stats.offsets_expired.load(Ordering::Relaxed),
            2
        );

        // The sweep's tombstones reach the log: a reload agrees.
        let partition = f.replicas.get(OFFSETS_TOPIC, 0).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while partition.offsets().high_watermark < partition.offsets().log_end {
            assert!(
                tokio::time::Instant::now() < deadline,
                "tombstones never acked"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            partition.offsets().log_end,
            6 + 4,
            "two offset tombstones and two group tombstones"
        );
        let reloaded = f.unloaded_shard();
        f.load(&reloaded).await;
        let state = reloaded.lock();
        let mut left: Vec<&str> = state.groups.keys().map(String::as_str).collect();
        left.sort();
        assert_eq!(left, vec!["fresh", "live"]);
        drop(state);
        f.stop();
    }
}
