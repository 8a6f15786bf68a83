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
use crate::partition::{Partition, ReplicaError, Role};
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
        ReplicaError::NotEnoughReplicas | ReplicaError::Timeout | ReplicaError::Storage => {
            ResponseError::CoordinatorNotAvailable
        }
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
    let appended = shard.partition.append_as_leader(&mut batch, -1, now)?;
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

    /// Replays a shard's partition up to the high watermark.
    fn load(&self, index: i32, shard: &Shard) {
        let started = Instant::now();
        let partition = &shard.partition;
        let offsets = partition.offsets();
        let high_watermark = offsets.high_watermark;
        let mut offset = offsets.log_start;
        let mut groups: HashMap<String, Group> = HashMap::new();
        let mut records = 0u64;
        let now = Instant::now();
        while offset < high_watermark {
            let read = match partition.read_committed(offset, 1 << 20) {
                Ok(read) => read,
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
