//! A partition replica on this broker: its log and its place in the replication
//! protocol (role, leader epoch, ISR, high watermark).
//!
//! The high watermark is the minimum over the ISR of each member's safe offset: in the
//! default `durable` flush mode a member's safe offset is what it has fsynced, in
//! `interval` mode its log end (Kafka's rule). While the ISR is smaller than
//! `min.insync.replicas` the high watermark does not advance (Kafka 4.0's strict min
//! ISR). Standalone, the ISR is this broker alone; cluster mode adds followers' reports
//! without changing the produce path.

pub mod manager;
pub mod replication;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use tokio::sync::watch;
use uuid::Uuid;

use crate::config::topic::TopicConfig;
use crate::config::{Config, FlushMode};
use crate::log::cleaner::{write_cleaned, CleanPolicy, CleanReport};
use crate::log::flusher::{FlushTarget, Flusher};
use crate::log::partition_log::{AppendError, AppendInfo, FlushTicket, PartitionLog, ReadError};
use crate::log::producer_state::SequenceError;
use crate::log::segment::{
    find_by_timestamp, max_timestamp_in, read_batches, ReadBatches, ReadPlan,
};
use crate::metadata::schema::{IsrMember, PartitionRecord};
use crate::records::validate::{validate_produce_batch, Invalid};

/// Why a replica refused a request; each maps to one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaError {
    /// The metadata knows no such topic or partition.
    UnknownTopicOrPartition,
    NotLeader,
    FencedLeaderEpoch,
    UnknownLeaderEpoch,
    OffsetOutOfRange,
    NotEnoughReplicas,
    /// The ISR fell below `min.insync.replicas` after the records were written.
    NotEnoughReplicasAfterAppend,
    /// The log is offline after an I/O error.
    Storage,
    Timeout,
    InvalidRecords(Invalid),
    /// An idempotent producer's sequence does not follow its last one.
    OutOfOrderSequence(String),
    /// An idempotent producer's epoch is older than its current one.
    InvalidProducerEpoch(String),
    /// A feature this broker does not offer yet (the message says which).
    Unsupported(String),
}

/// The role of this broker for the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
}

/// The partition state from the controller, as this replica applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    pub role: Role,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<IsrMember>,
}

impl ReplicaState {
    /// The state `record` gives a broker `broker` in incarnation `broker_epoch`: leader
    /// only when named leader and in the ISR as this very incarnation.
    pub fn from_record(record: &PartitionRecord, broker: i32, broker_epoch: i64) -> ReplicaState {
        let leads = record.leader == broker
            && record
                .isr
                .iter()
                .any(|m| m.broker == broker && m.broker_epoch == broker_epoch);
        ReplicaState {
            role: if leads { Role::Leader } else { Role::Follower },
            leader: record.leader,
            leader_epoch: record.leader_epoch,
            partition_epoch: record.partition_epoch,
            replicas: record.replicas.clone(),
            isr: record.isr.clone(),
        }
    }
}

/// Offsets waiters watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    pub high_watermark: i64,
    pub log_end: i64,
    pub log_start: i64,
    pub durable: i64,
    pub leader_epoch: i32,
    pub is_leader: bool,
    pub offline: bool,
    /// As leader: the ISR is smaller than `min.insync.replicas` (acks=all cannot be met).
    pub isr_below_min: bool,
}

/// What an append returned.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub info: AppendInfo,
    pub log_start_offset: i64,
}

/// Where and how far a fetch may read.
#[derive(Debug, Clone)]
pub struct FetchPlan {
    pub plan: Option<ReadPlan>,
    pub high_watermark: i64,
    pub log_start: i64,
    pub leader_epoch: i32,
}

/// How far a read may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadLimit {
    /// Consumers: committed records only.
    HighWatermark,
    /// Followers (and a coordinator loading its groups): everything written.
    LogEnd,
}

/// What a read returned, with the offsets a response reports beside it.
#[derive(Debug, Clone)]
pub struct Read {
    /// Whole batches from the one holding the requested offset.
    pub records: bytes::Bytes,
    pub next_offset: i64,
    pub high_watermark: i64,
    pub log_start: i64,
    pub leader_epoch: i32,
}

/// An offset answer for ListOffsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAnswer {
    pub offset: i64,
    pub timestamp: i64,
    pub leader_epoch: i32,
}

/// ListOffsets' special timestamps.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;

/// Everything a new partition replica is made of.
#[derive(Debug)]
pub struct NewPartition {
    pub topic: Arc<str>,
    pub index: i32,
    pub broker_id: i32,
    pub log: PartitionLog,
    pub state: ReplicaState,
    pub config: Arc<TopicConfig>,
    pub broker: Arc<Config>,
    pub flusher: Flusher,
}

#[derive(Debug)]
struct Unflushed {
    messages: i64,
    since: Option<Instant>,
}

#[derive(Debug)]
pub struct Partition {
    pub topic: Arc<str>,
    pub index: i32,
    topic_id: Uuid,
    broker_id: i32,
    log: Mutex<PartitionLog>,
    /// Held by what removes or replaces segments (cleaning installs, retention,
    /// DeleteRecords, deletion), which run on blocking threads; never by produce or
    /// fetch, so a slow directory fsync there stalls neither.
    housekeeping: Mutex<()>,
    state: RwLock<ReplicaState>,
    /// As leader: the followers' progress in the current leader epoch.
    leader_side: Mutex<replication::LeaderSide>,
    config: RwLock<Arc<TopicConfig>>,
    broker: Arc<Config>,
    offsets: watch::Sender<Offsets>,
    flusher: Flusher,
    unflushed: Mutex<Unflushed>,
    /// Bytes appended and fetched, for metrics.
    pub bytes_in: AtomicU64,
    /// Times this replica stopped leading (a new leader, offline, or this broker's
    /// incarnation no longer named), for `/metrics`.
    pub leadership_lost: AtomicU64,
    /// Truncations of this log by leader epoch and the bytes they removed.
    pub truncations: AtomicU64,
    pub bytes_truncated: AtomicU64,
    pub messages_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Bytes a follower appended from its leader, and a leader sent to its followers:
    /// apart from `bytes_in`/`bytes_out`, which count clients' traffic only (as Kafka's
    /// BytesInPerSec and ReplicationBytesInPerSec are apart).
    pub replication_bytes_in: AtomicU64,
    pub replication_bytes_out: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Partition {
    pub fn new(parts: NewPartition) -> Arc<Partition> {
        let NewPartition {
            topic,
            index,
            broker_id,
            log,
            state,
            config,
            broker,
            flusher,
        } = parts;
        // A leader from the start keeps what it fsynced as committed only with enough of
        // an ISR (standalone: itself); a sole restarted ISR member waits for followers,
        // as strict min ISR asks (the high watermark is not checkpointed).
        let leads_with_min_isr =
            state.role == Role::Leader && state.isr.len() as i32 >= config.min_insync_replicas;
        let offsets = Offsets {
            high_watermark: if leads_with_min_isr {
                log.durable_offset()
            } else {
                0
            },
            log_end: log.log_end_offset(),
            log_start: log.log_start_offset(),
            durable: log.durable_offset(),
            leader_epoch: state.leader_epoch,
            is_leader: state.role == Role::Leader,
            offline: log.is_offline(),
            isr_below_min: (state.isr.len() as i32) < config.min_insync_replicas,
        };
        let leader_side = Mutex::new(replication::LeaderSide::new(state.leader_epoch));
        Arc::new(Partition {
            topic,
            index,
            topic_id: log.topic_id(),
            broker_id,
            log: Mutex::new(log),
            housekeeping: Mutex::new(()),
            state: RwLock::new(state),
            leader_side,
            config: RwLock::new(config),
            broker,
            offsets: watch::channel(offsets).0,
            flusher,
            unflushed: Mutex::new(Unflushed {
                messages: 0,
                since: None,
            }),
            bytes_in: AtomicU64::new(0),
            leadership_lost: AtomicU64::new(0),
            truncations: AtomicU64::new(0),
            bytes_truncated: AtomicU64::new(0),
            messages_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            replication_bytes_in: AtomicU64::new(0),
            replication_bytes_out: AtomicU64::new(0),
        })
    }

    pub fn topic_id(&self) -> Uuid {
        self.topic_id
    }

    pub fn state(&self) -> ReplicaState {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn offsets(&self) -> Offsets {
        *self.offsets.borrow()
    }

    pub fn config(&self) -> Arc<TopicConfig> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Applies a changed topic configuration (topic overrides or dynamic broker defaults).
    pub fn set_config(&self, config: Arc<TopicConfig>) {
        lock(&self.log).set_config(config.log_config(&self.broker));
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    pub fn size_bytes(&self) -> u64 {
        lock(&self.log).size_bytes()
    }

    fn flush_mode(&self) -> FlushMode {
        self.broker.flush_mode
    }

    /// Applies a new controller state. Waiters on the old epoch are woken and fail. A
    /// replica that starts leading records where its epoch starts now (not at its first
    /// write), and keeps the high watermark it had as follower.
    pub fn apply_state(&self, next: ReplicaState) {
        let min_isr = self.config().min_insync_replicas;
        if *self.state.read().unwrap_or_else(|e| e.into_inner()) == next {
            // Unchanged (most partitions when this broker's incarnation changes): no need
            // to wait for the log, which a slow disk operation may hold.
            return;
        }
        // The log's lock before the state's: a follower's append checks the role under the
        // log's lock, so a promotion holding the state while it waited for the log would
        // deadlock with it (and with it the threads that read this partition's state).
        let mut log = lock(&self.log);
        {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            if *state == next {
                return;
            }
            if state.role == Role::Leader && next.role != Role::Leader {
                self.leadership_lost.fetch_add(1, Ordering::Relaxed);
            }
            let new_term = next.role == Role::Leader
                && (state.role != Role::Leader || state.leader_epoch != next.leader_epoch);
            if new_term {
                *lock(&self.leader_side) = replication::LeaderSide::new(next.leader_epoch);
                log.begin_leader_epoch(next.leader_epoch);
            } else if next.partition_epoch != state.partition_epoch {
                // A proposed ISR change is applied (or overtaken) now.
                lock(&self.leader_side).proposed = None;
            }
            *state = next;
        }
        let (durable, log_end, offline) =
            (log.durable_offset(), log.log_end_offset(), log.is_offline());
        drop(log);
        let state = self.state();
        let floor = self.followers_floor(&state);
        self.offsets.send_modify(|o| {
            o.leader_epoch = state.leader_epoch;
            o.is_leader = state.role == Role::Leader;
            o.durable = durable;
            o.log_end = log_end;
            o.offline = offline;
            o.isr_below_min = (state.isr.len() as i32) < min_isr;
            recompute_high_watermark(o, &state, min_isr, self.flush_mode(), floor);
        });
    }

    fn leader_epoch_check(
        &self,
        state: &ReplicaState,
        current_leader_epoch: i32,
    ) -> Result<(), ReplicaError> {
        if current_leader_epoch < 0 || current_leader_epoch == state.leader_epoch {
            return Ok(());
        }
        if current_leader_epoch < state.leader_epoch {
            Err(ReplicaError::FencedLeaderEpoch)
        } else {
            Err(ReplicaError::UnknownLeaderEpoch)
        }
    }

    /// Validates and appends a produced batch as leader. `records` is patched in place
    /// (offsets, epoch) and written as is.
    pub fn append_as_leader(
        self: &Arc<Self>,
        records: &mut [u8],
        required_acks: i16,
        now_ms: i64,
    ) -> Result<Appended, ReplicaError> {
        self.append_in_epoch(records, required_acks, now_ms, -1)
    }

    /// [`Partition::append_as_leader`] only while this replica leads `leader_epoch`
    /// (-1: any): a writer that loaded its state in one epoch (the group coordinator)
    /// must not write in another.
    pub fn append_in_epoch(
        self: &Arc<Self>,
        records: &mut [u8],
        required_acks: i16,
        now_ms: i64,
        leader_epoch: i32,
    ) -> Result<Appended, ReplicaError> {
        let state = self.state();
        if state.role != Role::Leader {
            return Err(ReplicaError::NotLeader);
        }
        self.leader_epoch_check(&state, leader_epoch)?;
        let config = self.config();
        if required_acks == -1 && (state.isr.len() as i32) < config.min_insync_replicas {
            return Err(ReplicaError::NotEnoughReplicas);
        }
        let valid = validate_produce_batch(records, &config.limits(&self.broker, now_ms))
            .map_err(ReplicaError::InvalidRecords)?;
        if valid.header.is_transactional() {
            return Err(ReplicaError::Unsupported(
                "transactional produce is not supported yet".into(),
            ));
        }
        let mut log = lock(&self.log);
        let appended = log.append_as_leader(
            records,
            &valid,
            state.leader_epoch,
            now_ms,
            config.log_append_time,
        );
        let info = match appended {
            Ok(info) => info,
            Err(AppendError::Sequence(SequenceError::OutOfOrder(m))) => {
                return Err(ReplicaError::OutOfOrderSequence(m))
            }
            Err(AppendError::Sequence(SequenceError::InvalidEpoch(m))) => {
                return Err(ReplicaError::InvalidProducerEpoch(m))
            }
            Err(AppendError::Storage(err)) => return Err(self.log_failed(log, "append", &err)),
        };
        if info.duplicate {
            // A retry: nothing was written; the caller waits for the original's offsets.
            return Ok(Appended {
                info,
                log_start_offset: log.log_start_offset(),
            });
        }
        let (log_end, log_start) = (log.log_end_offset(), log.log_start_offset());
        let rolled = log.has_pending_roll();
        drop(log);
        self.bytes_in
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        self.messages_in.fetch_add(
            (info.last_offset - info.base_offset + 1) as u64,
            Ordering::Relaxed,
        );
        let min_isr = config.min_insync_replicas;
        let floor = self.followers_floor(&state);
        self.offsets.send_modify(|o| {
            o.log_end = log_end;
            recompute_high_watermark(o, &state, min_isr, self.flush_mode(), floor);
        });
        match self.flush_mode() {
            FlushMode::Durable => self.flusher.request(self.clone()),
            FlushMode::Interval if rolled => self.flusher.request(self.clone()),
            FlushMode::Interval => {
                self.note_unflushed(info.last_offset - info.base_offset + 1, &config)
            }
        }
        Ok(Appended {
            info,
            log_start_offset: log_start,
        })
    }

    fn note_unflushed(self: &Arc<Self>, messages: i64, config: &TopicConfig) {
        let mut unflushed = lock(&self.unflushed);
        unflushed.messages += messages;
        let since = *unflushed.since.get_or_insert_with(Instant::now);
        let due = unflushed.messages >= config.flush_messages
            || since.elapsed().as_millis() as i64 >= config.flush_ms;
        drop(unflushed);
        if due {
            self.flusher.request(self.clone());
        }
    }

    /// In interval mode, asks for a flush when unflushed data is older than `flush.ms`.
    pub fn flush_if_due(self: &Arc<Self>) {
        let config = self.config();
        let due = lock(&self.unflushed)
            .since
            .is_some_and(|since| since.elapsed().as_millis() as i64 >= config.flush_ms);
        if due {
            self.flusher.request(self.clone());
        }
    }

    /// Waits until the append ending at `end_offset` satisfies `acks`: acks=1 needs the
    /// leader's own safe offset (fsynced in durable mode), acks=all the high watermark.
    pub async fn wait_for_acks(
        &self,
        end_offset: i64,
        acks: i16,
        leader_epoch: i32,
    ) -> Result<(), ReplicaError> {
        let durable = self.flush_mode() == FlushMode::Durable;
        let mut rx = self.offsets.subscribe();
        let outcome = rx
            .wait_for(|o| {
                o.offline
                    || o.leader_epoch != leader_epoch
                    || !o.is_leader
                    || match acks {
                        -1 => o.high_watermark >= end_offset || o.isr_below_min,
                        _ => !durable || o.durable >= end_offset,
                    }
            })
            .await
            .map(|o| *o);
        match outcome {
            Err(_) => Err(ReplicaError::NotLeader),
            Ok(o) if o.offline => Err(ReplicaError::Storage),
            Ok(o) if o.leader_epoch != leader_epoch || !o.is_leader => Err(ReplicaError::NotLeader),
            Ok(o) if acks == -1 && o.high_watermark < end_offset => {
                Err(ReplicaError::NotEnoughReplicasAfterAppend)
            }
            Ok(_) => Ok(()),
        }
    }

    /// A receiver for offset changes (fetch long polls wait on it).
    pub fn subscribe(&self) -> watch::Receiver<Offsets> {
        self.offsets.subscribe()
    }

    /// The state, if this replica may serve consumers at `current_leader_epoch`
    /// (-1: any): it leads, and the client's epoch is neither stale nor ahead.
    fn serving_state(&self, current_leader_epoch: i32) -> Result<ReplicaState, ReplicaError> {
        let state = self.state();
        if state.role != Role::Leader {
            return Err(ReplicaError::NotLeader);
        }
        self.leader_epoch_check(&state, current_leader_epoch)?;
        Ok(state)
    }

    /// A write to the log failed: it stays offline (a failed write or fsync may have
    /// lost pages), and every waiter fails with a storage error.
    fn log_failed(
        &self,
        mut log: MutexGuard<'_, PartitionLog>,
        what: &str,
        err: &crate::error::Error,
    ) -> ReplicaError {
        log.set_offline();
        drop(log);
        tracing::error!(partition = %self.describe(), error = %err, "{what} failed; the log is offline");
        self.went_offline();
        ReplicaError::Storage
    }

    /// Publishes that the log went offline: every waiter (acks, long polls, the group
    /// coordinator's writes) wakes and fails with a storage error.
    fn went_offline(&self) {
        self.offsets.send_modify(|o| o.offline = true);
    }

    /// The log, unless an I/O error took it offline.
    fn online_log(&self) -> Result<MutexGuard<'_, PartitionLog>, ReplicaError> {
        let log = lock(&self.log);
        if log.is_offline() {
            return Err(ReplicaError::Storage);
        }
        Ok(log)
    }

    /// Plans a read at `offset`: checks role and epoch, finds the segment.
    fn fetch_plan(
        &self,
        offset: i64,
        current_leader_epoch: i32,
    ) -> Result<FetchPlan, ReplicaError> {
        let state = self.serving_state(current_leader_epoch)?;
        let log = self.online_log()?;
        let plan = log
            .read_plan(offset)
            .map_err(|ReadError::OffsetOutOfRange { .. }| ReplicaError::OffsetOutOfRange)?;
        let log_start = log.log_start_offset();
        drop(log);
        Ok(FetchPlan {
            plan,
            high_watermark: self.offsets().high_watermark,
            log_start,
            leader_epoch: state.leader_epoch,
        })
    }

    /// Reads whole batches from `offset`, about `max_bytes` (at least one batch when
    /// `min_one`, as KIP-74 asks), up to `limit`, at `current_leader_epoch` (-1: any).
    /// The one way anything reads this replica's log: consumers' fetches, the group
    /// coordinator's loader, and followers.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
        current_leader_epoch: i32,
        limit: ReadLimit,
    ) -> Result<Read, ReplicaError> {
        let plan = self.fetch_plan(offset, current_leader_epoch)?;
        let upto = match limit {
            ReadLimit::HighWatermark => plan.high_watermark,
            ReadLimit::LogEnd => self.offsets().log_end,
        };
        let batches = match &plan.plan {
            None => ReadBatches {
                bytes: bytes::Bytes::new(),
                next_offset: offset,
            },
            Some(segment) => read_batches(segment, offset, max_bytes, min_one, upto).map_err(
                |err| {
                    tracing::error!(partition = %self.describe(), offset, error = %err, "failed to read the log");
                    ReplicaError::Storage
                },
            )?,
        };
        Ok(Read {
            records: batches.bytes,
            next_offset: batches.next_offset,
            high_watermark: plan.high_watermark,
            log_start: plan.log_start,
            leader_epoch: plan.leader_epoch,
        })
    }

    /// ListOffsets for a consumer: earliest, latest (the high watermark) or the first
    /// record at or after a timestamp.
    pub fn list_offset(
        &self,
        timestamp: i64,
        current_leader_epoch: i32,
    ) -> Result<OffsetAnswer, ReplicaError> {
        let state = self.serving_state(current_leader_epoch)?;
        let high_watermark = self.offsets().high_watermark;
        let log = self.online_log()?;
        match timestamp {
            LATEST => Ok(OffsetAnswer {
                offset: high_watermark,
                timestamp: -1,
                leader_epoch: state.leader_epoch,
            }),
            EARLIEST => {
                let start = log.log_start_offset();
                Ok(OffsetAnswer {
                    offset: start,
                    timestamp: -1,
                    leader_epoch: log.epoch_of(start).unwrap_or(state.leader_epoch),
                })
            }
            MAX_TIMESTAMP => {
                let none = OffsetAnswer {
                    offset: -1,
                    timestamp: -1,
                    leader_epoch: -1,
                };
                let (full, partial) = log.max_timestamp_plan(high_watermark);
                let log_start = log.log_start_offset();
                let budget = log.config().decompression_budget;
                let epochs = log.epochs().entries().to_vec();
                drop(log);
                // The segment holding the high watermark is scanned without the lock.
                let partial = match partial {
                    Some(plan) => max_timestamp_in(&plan, high_watermark)
                        .map_err(|_| ReplicaError::Storage)?
                        .filter(|(_, offset)| *offset >= log_start)
                        .map(|(ts, offset)| (ts, offset, plan)),
                    None => None,
                };
                let best = match (full, partial) {
                    (Some(f), Some(p)) => Some(if p.0 > f.0 { p } else { f }),
                    (f, p) => f.or(p),
                };
                let Some((timestamp, hint, plan)) = best else {
                    return Ok(none);
                };
                // The record itself, not its batch: walk the batch from the hint.
                let found = find_by_timestamp(&plan, hint, timestamp, high_watermark, budget)
                    .map_err(|_| ReplicaError::Storage)?;
                Ok(match found {
                    Some((offset, timestamp)) => OffsetAnswer {
                        offset,
                        timestamp,
                        leader_epoch: epochs
                            .iter()
                            .rev()
                            .find(|e| e.start_offset <= offset)
                            .map_or(-1, |e| e.epoch),
                    },
                    None => none,
                })
            }
            ts if ts >= 0 => {
                let plans = log.timestamp_plans(ts);
                let config = *log.config();
                let epochs: Vec<(i32, i64)> = log
                    .epochs()
                    .entries()
                    .iter()
                    .map(|e| (e.epoch, e.start_offset))
                    .collect();
                drop(log);
                for (from, plan) in plans {
                    let found = find_by_timestamp(
                        &plan,
                        from,
                        ts,
                        high_watermark,
                        config.decompression_budget,
                    )
                    .map_err(|_| ReplicaError::Storage)?;
                    if let Some((offset, timestamp)) = found {
                        let leader_epoch = epochs
                            .iter()
                            .rev()
                            .find(|(_, start)| *start <= offset)
                            .map_or(-1, |(e, _)| *e);
                        return Ok(OffsetAnswer {
                            offset,
                            timestamp,
                            leader_epoch,
                        });
                    }
                }
                Ok(OffsetAnswer {
                    offset: -1,
                    timestamp: -1,
                    leader_epoch: -1,
                })
            }
            _ => Err(ReplicaError::Unsupported(format!(
                "ListOffsets timestamp {timestamp} is not supported"
            ))),
        }
    }

    /// Applies `retention.ms` / `retention.bytes` when the topic's policy includes delete.
    pub fn enforce_retention(&self, now_ms: i64) -> crate::error::Result<()> {
        let config = self.config();
        if !config.delete {
            return Ok(());
        }
        let _housekeeping = lock(&self.housekeeping);
        let mut log = lock(&self.log);
        if log.is_offline() {
            return Ok(());
        }
        let report = match log.apply_retention(now_ms, config.retention_ms, config.retention_bytes)
        {
            Ok(report) => report,
            Err(err) => {
                log.set_offline();
                drop(log);
                self.went_offline();
                return Err(err);
            }
        };
        drop(log);
        if report.segments_deleted > 0 {
            self.offsets
                .send_modify(|o| o.log_start = report.log_start_offset);
        }
        Ok(())
    }

    /// The cleaning policy, when the topic's cleanup policy includes compact.
    fn clean_policy(&self) -> Option<CleanPolicy> {
        let config = self.config();
        config.compact.then(|| CleanPolicy {
            map_capacity: self.broker.cleaner_dedupe_buffer_size
                / crate::log::cleaner::MAP_ENTRY_BYTES,
            min_cleanable_ratio: config.min_cleanable_ratio,
            delete_retention_ms: config.delete_retention_ms,
            min_compaction_lag_ms: config.min_compaction_lag_ms,
            max_compaction_lag_ms: config.max_compaction_lag_ms,
        })
    }

    /// Whether a cleaning pass up to `upto` would find anything to do.
    pub fn cleaning_due(&self, upto: i64, now_ms: i64) -> bool {
        self.clean_policy()
            .is_some_and(|policy| lock(&self.log).clean_plan(upto, now_ms, &policy).is_some())
    }

    /// Compacts closed segments ending at or below `upto` (the persisted recovery point)
    /// if the topic's policy includes compact and the log is due.
    pub fn clean(&self, upto: i64, now_ms: i64) -> crate::error::Result<Option<CleanReport>> {
        let Some(policy) = self.clean_policy() else {
            return Ok(None);
        };
        let Some(plan) = lock(&self.log).clean_plan(upto, now_ms, &policy) else {
            return Ok(None);
        };
        let (outputs, report) = write_cleaned(&plan, now_ms, &policy).map_err(|source| {
            crate::error::Error::WriteFile {
                path: plan.dir.clone(),
                source,
            }
        })?;
        // The swap's directory fsyncs run without the log's lock (produce and fetch go
        // on); retention, DeleteRecords and deletion wait for it.
        let _housekeeping = lock(&self.housekeeping);
        let install = match lock(&self.log).plan_install(&outputs) {
            Ok(install) => install,
            Err(crate::error::Error::LogOffline { .. }) => return Ok(None),
            Err(err) => return Err(err),
        };
        let done = install.run();
        let mut log = lock(&self.log);
        if let Err(err) = log.finish_install(done, &report) {
            // Half-installed segments are only safe to serve after the next start
            // completes the swap.
            log.set_offline();
            drop(log);
            self.went_offline();
            return Err(err);
        }
        Ok(Some(report))
    }

    /// Moves the log start offset to `offset` (-1: the high watermark) for DeleteRecords;
    /// returns the new low watermark.
    pub fn delete_records(&self, offset: i64) -> Result<i64, ReplicaError> {
        self.serving_state(-1)?;
        let high_watermark = self.offsets().high_watermark;
        let target = if offset == -1 { high_watermark } else { offset };
        if target < 0 || target > high_watermark {
            return Err(ReplicaError::OffsetOutOfRange);
        }
        let _housekeeping = lock(&self.housekeeping);
        let mut log = self.online_log()?;
        let start = match log.advance_log_start(target) {
            Ok(start) => start,
            Err(err) => return Err(self.log_failed(log, "moving the log start", &err)),
        };
        drop(log);
        self.offsets.send_modify(|o| o.log_start = start);
        Ok(start)
    }

    /// Stops serving and deletes the replica's data (its topic was deleted). Waiters are
    /// woken and fail as not-leader.
    pub fn delete(&self) -> crate::error::Result<()> {
        let mut state = self.state();
        state.role = Role::Follower;
        state.leader = -1;
        self.apply_state(state);
        let _housekeeping = lock(&self.housekeeping);
        lock(&self.log).delete_dir()
    }

    /// (log directory, size in bytes) for DescribeLogDirs.
    pub fn log_dir_and_size(&self) -> (std::path::PathBuf, u64) {
        let log = lock(&self.log);
        (
            log.dir()
                .parent()
                .map(|p| p.to_path_buf())
                .unwrap_or_default(),
            log.size_bytes(),
        )
    }

    /// Forgets idempotent producers idle longer than `expiration_ms`.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        lock(&self.log).expire_producers(now_ms, expiration_ms)
    }

    /// Syncs the log for a clean shutdown; returns (recovery point, log start).
    pub fn close(&self) -> crate::error::Result<(i64, i64)> {
        let mut log = lock(&self.log);
        log.close()?;
        Ok((log.recovery_point(), log.log_start_offset()))
    }

    /// (partition directory, recovery point, log start) for checkpoints.
    pub fn checkpoint(&self) -> (std::path::PathBuf, i64, i64) {
        let log = lock(&self.log);
        (
            log.dir().to_path_buf(),
            log.recovery_point(),
            log.log_start_offset(),
        )
    }

    pub fn broker_id(&self) -> i32 {
        self.broker_id
    }
}

/// Moves the high watermark up to what every ISR member holds safely: this leader's own
/// offset and `followers` (the followers' floor, `None` while one is unknown).
fn recompute_high_watermark(
    o: &mut Offsets,
    state: &ReplicaState,
    min_isr: i32,
    mode: FlushMode,
    followers: Option<i64>,
) {
    if state.role != Role::Leader || (state.isr.len() as i32) < min_isr {
        return;
    }
    let Some(followers) = followers else {
        return;
    };
    let own = match mode {
        FlushMode::Durable => o.durable,
        FlushMode::Interval => o.log_end,
    };
    o.high_watermark = o.high_watermark.max(own.min(followers).min(o.log_end));
}

impl FlushTarget for Partition {
    fn take_flush(&self) -> Option<FlushTicket> {
        let ticket = lock(&self.log).take_flush();
        if ticket.is_some() {
            let mut unflushed = lock(&self.unflushed);
            unflushed.messages = 0;
            unflushed.since = None;
        }
        ticket
    }

    fn finish_flush(&self, ticket: &FlushTicket, ok: bool) {
        let mut log = lock(&self.log);
        log.finish_flush(ticket, ok);
        let (durable, offline) = (log.durable_offset(), log.is_offline());
        drop(log);
        let state = self.state();
        let min_isr = self.config().min_insync_replicas;
        let floor = self.followers_floor(&state);
        self.offsets.send_modify(|o| {
            o.durable = durable;
            o.offline = offline;
            recompute_high_watermark(o, &state, min_isr, self.flush_mode(), floor);
        });
    }

    fn describe(&self) -> String {
        format!("{}-{}", self.topic, self.index)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::layers::BrokerView;
    use crate::config::topic::TopicConfig;
    use crate::fsio::sim::{Fault, FaultEffect, FaultOp, FaultTarget, SimFs};
    use crate::fsio::FileSystem;
    use crate::records::batch::test_batches::uncompressed;

    pub(super) fn record(leader: i32, leader_epoch: i32, isr: &[(i32, i64)]) -> PartitionRecord {
        PartitionRecord {
            replicas: isr.iter().map(|(b, _)| *b).collect(),
            leader,
            leader_epoch,
            isr: isr
                .iter()
                .map(|(broker, broker_epoch)| IsrMember {
                    broker: *broker,
                    broker_epoch: *broker_epoch,
                })
                .collect(),
            partition_epoch: 0,
        }
    }

    pub(super) fn partition(
        sim: &SimFs,
        extra: &[(&str, &str)],
        state: ReplicaState,
    ) -> Arc<Partition> {
        let mut pairs = vec![("log.dirs", "/data")];
        pairs.extend_from_slice(extra);
        let broker = Arc::new(Config::from_pairs(pairs).unwrap());
        let config = Arc::new(TopicConfig::resolve(
            &Default::default(),
            &BrokerView::static_only(&broker),
        ));
        let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
        sim.create_dir_all(Path::new("/data")).unwrap();
        let log = PartitionLog::create(
            fs.clone(),
            Path::new("/data/t-0"),
            Uuid::new_v4(),
            config.log_config(&broker),
        )
        .unwrap();
        let (flusher, threads) = Flusher::start(fs, 1, &[], 0).unwrap();
        std::mem::forget(threads);
        Partition::new(NewPartition {
            topic: Arc::from("t"),
            index: 0,
            broker_id: 1,
            log,
            state,
            config,
            broker,
            flusher,
        })
    }

    fn leading(epoch: i32) -> ReplicaState {
        ReplicaState::from_record(&record(1, epoch, &[(1, 7)]), 1, 7)
    }

    #[test]
    fn a_replica_leads_only_as_the_incarnation_the_isr_names() {
        let r = record(1, 3, &[(1, 7), (2, 9)]);
        assert_eq!(ReplicaState::from_record(&r, 1, 7).role, Role::Leader);
        assert_eq!(
            ReplicaState::from_record(&r, 1, 8).role,
            Role::Follower,
            "a restarted broker does not lead on its old incarnation's ISR entry"
        );
        assert_eq!(ReplicaState::from_record(&r, 2, 9).role, Role::Follower);
        let not_in_isr = record(1, 3, &[(2, 9)]);
        assert_eq!(
            ReplicaState::from_record(&not_in_isr, 1, 7).role,
            Role::Follower
        );
    }

    #[test]
    fn the_high_watermark_never_passes_what_is_durable_or_moves_below_min_isr() {
        let mut state = leading(1);
        let mut o = Offsets {
            high_watermark: 0,
            log_end: 10,
            log_start: 0,
            durable: 6,
            leader_epoch: 1,
            is_leader: true,
            offline: false,
            isr_below_min: false,
        };
        recompute_high_watermark(&mut o, &state, 1, FlushMode::Durable, Some(i64::MAX));
        assert_eq!(o.high_watermark, 6, "durable mode: the fsynced offset");
        recompute_high_watermark(&mut o, &state, 1, FlushMode::Interval, Some(i64::MAX));
        assert_eq!(o.high_watermark, 10, "interval mode: the log end, as Kafka");
        o.log_end = 20;
        o.durable = 20;
        recompute_high_watermark(&mut o, &state, 2, FlushMode::Durable, Some(i64::MAX));
        assert_eq!(
            o.high_watermark, 10,
            "an ISR below min.insync.replicas holds it"
        );
        state.role = Role::Follower;
        recompute_high_watermark(&mut o, &state, 1, FlushMode::Durable, Some(i64::MAX));
        assert_eq!(o.high_watermark, 10, "a follower does not compute it");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn acks_wait_for_the_fsync_and_fail_when_leadership_moves() {
        let sim = SimFs::new();
        let p = partition(&sim, &[], leading(1));
        let mut batch = uncompressed(&[b"a", b"b"], 1000);
        let appended = p.append_as_leader(&mut batch, 1, 1000).unwrap();
        let end = appended.info.last_offset + 1;
        tokio::time::timeout(Duration::from_secs(5), p.wait_for_acks(end, 1, 1))
            .await
            .unwrap()
            .unwrap();
        assert!(
            p.offsets().durable >= end,
            "acks=1 means fsynced in durable mode"
        );
        assert_eq!(p.offsets().high_watermark, end);

        // Hold the next fsync, then move leadership: the waiter fails at once.
        sim.inject(Fault {
            op: FaultOp::Sync,
            target: FaultTarget::Path("/data/t-0".into()),
            effect: FaultEffect::Delay(Duration::from_secs(3)),
            times: Some(1),
        });
        let mut batch = uncompressed(&[b"c"], 1000);
        let appended = p.append_as_leader(&mut batch, -1, 1000).unwrap();
        let waiter = {
            let p = p.clone();
            let end = appended.info.last_offset + 1;
            tokio::spawn(async move { p.wait_for_acks(end, -1, 1).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        p.apply_state(ReplicaState::from_record(&record(2, 2, &[(2, 9)]), 1, 7));
        let outcome = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken by the leadership change")
            .unwrap();
        assert_eq!(outcome, Err(ReplicaError::NotLeader));
        let mut batch = uncompressed(&[b"d"], 1000);
        assert_eq!(
            p.append_as_leader(&mut batch, 1, 1000).unwrap_err(),
            ReplicaError::NotLeader
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_append_fails_every_waiter_with_a_storage_error() {
        let sim = SimFs::new();
        let p = partition(&sim, &[("log.flush.mode", "interval")], leading(1));
        let mut batch = uncompressed(&[b"a"], 1000);
        p.append_as_leader(&mut batch, 1, 1000).unwrap();
        let mut rx = p.subscribe();
        sim.inject(Fault {
            op: FaultOp::Write,
            target: FaultTarget::Path("/data/t-0".into()),
            effect: FaultEffect::Fail,
            times: Some(1),
        });
        let mut batch = uncompressed(&[b"b"], 1000);
        assert_eq!(
            p.append_as_leader(&mut batch, 1, 1000).unwrap_err(),
            ReplicaError::Storage
        );
        rx.changed().await.unwrap();
        assert!(
            rx.borrow().offline,
            "the failure is published to every waiter"
        );
        assert_eq!(
            p.read(0, 1 << 20, true, -1, ReadLimit::HighWatermark)
                .unwrap_err(),
            ReplicaError::Storage
        );
    }
}
