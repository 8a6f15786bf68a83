//! A partition replica's part in replication: as leader, serving followers' fetches and
//! tracking how far each follower has written and synced (which moves the high
//! watermark and decides ISR changes); as follower, appending the leader's batches and
//! truncating where its log diverged from the leader's.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::MutexGuard;

use super::{lock, Partition, ReadLimit, ReplicaError, ReplicaState, Role};
use crate::config::FlushMode;
use crate::log::flusher::FlushTarget;
use crate::log::partition_log::PartitionLog;
use crate::log::partition_log::{FollowerAppend, FollowerAppendError, Truncation};
use crate::metadata::schema::IsrMember;

/// What the leader knows of one follower in the current leader epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    pub broker_epoch: i64,
    /// The follower's log end (its last fetch offset).
    pub log_end: i64,
    /// What the follower has fsynced.
    pub durable: i64,
    /// When the follower last had everything the leader had (Kafka's lastCaughtUpTime).
    pub caught_up_at: Instant,
    /// The leader's log end and the time at the follower's previous fetch.
    last_fetch_leader_end: i64,
    last_fetch_at: Instant,
}

/// How far a follower is behind, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerLag {
    pub broker: i32,
    pub log_end: i64,
    pub durable: i64,
    pub since_caught_up: Duration,
}

/// An ISR expansion sent to the store and not yet applied here.
#[derive(Debug, Clone)]
pub(super) struct Proposed {
    /// The partition epoch the change was computed from.
    pub partition_epoch: i32,
    pub joining: Vec<IsrMember>,
}

/// The leader's side of replication, reset at every leader epoch.
#[derive(Debug)]
pub(super) struct LeaderSide {
    pub epoch: i32,
    pub since: Instant,
    pub followers: HashMap<i32, FollowerProgress>,
    pub proposed: Option<Proposed>,
}

impl LeaderSide {
    pub(super) fn new(epoch: i32) -> LeaderSide {
        LeaderSide {
            epoch,
            since: Instant::now(),
            followers: HashMap::new(),
            proposed: None,
        }
    }
}

/// A follower's fetch, as the leader checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFetch {
    pub broker: i32,
    pub broker_epoch: i64,
    pub current_leader_epoch: i32,
    pub fetch_offset: i64,
    /// The epoch of the follower's last batch, -1 when its log is empty.
    pub last_fetched_epoch: i32,
    pub durable_offset: i64,
    pub max_bytes: usize,
}

/// The leader's answer to a follower's fetch.
#[derive(Debug, Clone)]
pub enum FollowerReply {
    Records {
        records: bytes::Bytes,
        high_watermark: i64,
        log_start: i64,
        log_end: i64,
    },
    /// The follower's log diverged: it must truncate to `end_offset` (or to its own end
    /// of `epoch`, whichever is lower) before fetching again. `epoch` -1: the leader
    /// holds no epoch that old; the follower truncates to `end_offset` (the leader's log
    /// start).
    Diverging { epoch: i32, end_offset: i64 },
    /// The fetch offset is outside the leader's log.
    OutOfRange { log_start: i64, log_end: i64 },
}

/// An ISR change the leader wants written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<IsrMember>,
    pub shrunk: Vec<i32>,
    pub expanded: Vec<i32>,
}

impl Partition {
    /// The lowest safe offset over the ISR's followers (fsynced in durable mode, written
    /// in interval mode), `i64::MAX` with no followers in the ISR, or `None` while an ISR
    /// follower has not fetched in this leader epoch (the high watermark then waits).
    pub(super) fn followers_floor(&self, state: &ReplicaState) -> Option<i64> {
        let side = lock(&self.leader_side);
        let mut floor = i64::MAX;
        // Kafka's maximal ISR: a joiner counts from the moment its expansion is proposed,
        // not only once this leader has applied it, or records acknowledged in between
        // could be missing from a member the controller may elect.
        let pending = side
            .proposed
            .as_ref()
            .filter(|p| p.partition_epoch == state.partition_epoch)
            .map(|p| p.joining.as_slice())
            .unwrap_or(&[]);
        for member in state
            .isr
            .iter()
            .chain(pending.iter())
            .filter(|m| m.broker != self.broker_id)
        {
            let progress = side.followers.get(&member.broker).filter(|p| {
                p.broker_epoch == member.broker_epoch && side.epoch == state.leader_epoch
            })?;
            let safe = match self.flush_mode() {
                FlushMode::Durable => progress.durable,
                FlushMode::Interval => progress.log_end,
            };
            floor = floor.min(safe);
        }
        Some(floor)
    }

    /// Serves a follower's fetch as leader: checks its epochs, finds where its log
    /// diverged, records its progress (moving the high watermark), then reads from its
    /// fetch offset up to the log end.
    pub fn fetch_for_follower(&self, fetch: &FollowerFetch) -> Result<FollowerReply, ReplicaError> {
        let state = self.state();
        if state.role != Role::Leader {
            return Err(ReplicaError::NotLeader);
        }
        // A follower always names the epoch it follows (-1, "any", is for clients).
        if fetch.current_leader_epoch < 0 {
            return Err(ReplicaError::FencedLeaderEpoch);
        }
        self.leader_epoch_check(&state, fetch.current_leader_epoch)?;
        if !state.replicas.contains(&fetch.broker) {
            return Err(ReplicaError::UnknownTopicOrPartition);
        }
        let log = self.online_log()?;
        let (log_start, log_end) = (log.log_start_offset(), log.log_end_offset());
        if fetch.fetch_offset < log_start {
            // Before any epoch question: what the follower has is all below the start.
            return Ok(FollowerReply::OutOfRange { log_start, log_end });
        }
        if fetch.last_fetched_epoch >= 0 {
            match log
                .epochs()
                .end_offset_for(fetch.last_fetched_epoch, log_end)
            {
                None => {
                    return Ok(FollowerReply::Diverging {
                        epoch: -1,
                        end_offset: log_start,
                    })
                }
                Some((epoch, end))
                    if epoch != fetch.last_fetched_epoch || end < fetch.fetch_offset =>
                {
                    return Ok(FollowerReply::Diverging {
                        epoch,
                        end_offset: end,
                    })
                }
                Some(_) => {}
            }
        }
        drop(log);
        if fetch.fetch_offset < log_start || fetch.fetch_offset > log_end {
            return Ok(FollowerReply::OutOfRange { log_start, log_end });
        }
        self.note_follower(&state, fetch, log_end);
        let read = self.read(
            fetch.fetch_offset,
            fetch.max_bytes,
            true,
            fetch.current_leader_epoch,
            ReadLimit::LogEnd,
        )?;
        self.replication_bytes_out
            .fetch_add(read.records.len() as u64, Ordering::Relaxed);
        Ok(FollowerReply::Records {
            records: read.records,
            high_watermark: read.high_watermark,
            log_start: read.log_start,
            log_end: self.offsets().log_end,
        })
    }

    /// Records a follower's progress and recomputes the high watermark.
    fn note_follower(&self, state: &ReplicaState, fetch: &FollowerFetch, leader_end: i64) {
        let now = Instant::now();
        {
            let mut side = lock(&self.leader_side);
            if side.epoch != state.leader_epoch {
                // Every new term resets the side as it is applied, so `state` was read before
                // a term that began since: resetting to its epoch would freeze the high
                // watermark and the ISR checks until the next fetch. The follower's next
                // fetch counts in the current term.
                return;
            }
            let since = side.since;
            let entry = side
                .followers
                .entry(fetch.broker)
                .or_insert(FollowerProgress {
                    broker_epoch: fetch.broker_epoch,
                    log_end: fetch.fetch_offset,
                    durable: 0,
                    caught_up_at: since,
                    last_fetch_leader_end: -1,
                    last_fetch_at: now,
                });
            if entry.broker_epoch != fetch.broker_epoch {
                // A new incarnation of the follower: nothing it said before counts.
                *entry = FollowerProgress {
                    broker_epoch: fetch.broker_epoch,
                    log_end: fetch.fetch_offset,
                    durable: 0,
                    caught_up_at: since,
                    last_fetch_leader_end: -1,
                    last_fetch_at: now,
                };
            }
            // In durable mode a follower is caught up by what it has synced: one whose
            // fsync hangs must leave the ISR, or acks=all waits on it for ever.
            let reached = match self.flush_mode() {
                FlushMode::Durable => fetch.fetch_offset.min(fetch.durable_offset),
                FlushMode::Interval => fetch.fetch_offset,
            };
            if reached >= leader_end {
                entry.caught_up_at = now;
            } else if reached >= entry.last_fetch_leader_end && entry.last_fetch_leader_end >= 0 {
                entry.caught_up_at = entry.caught_up_at.max(entry.last_fetch_at);
            }
            entry.last_fetch_leader_end = leader_end;
            entry.last_fetch_at = now;
            entry.log_end = fetch.fetch_offset;
            entry.durable = fetch.durable_offset.min(fetch.fetch_offset);
        }
        self.refresh_high_watermark();
    }

    /// Recomputes the high watermark from this replica's and its followers' offsets.
    pub(super) fn refresh_high_watermark(&self) {
        let state = self.state();
        let min_isr = self.config().min_insync_replicas;
        let floor = self.followers_floor(&state);
        let mode = self.flush_mode();
        self.offsets.send_if_modified(|o| {
            let before = o.high_watermark;
            super::recompute_high_watermark(o, &state, min_isr, mode, floor);
            o.high_watermark != before
        });
    }

    /// The ISR this leader wants, if it differs from the current one: followers not
    /// caught up within `lag_max` leave; replicas that caught up (to the high watermark
    /// and into this leader epoch, and synced that far in durable mode) join as the
    /// incarnation that fetched. `live` maps broker ids to their registered epochs.
    pub fn wanted_isr(
        &self,
        lag_max: Duration,
        live: &std::collections::BTreeMap<i32, i64>,
    ) -> Option<IsrChange> {
        let state = self.state();
        if state.role != Role::Leader {
            return None;
        }
        let offsets = self.offsets();
        let epoch_start = lock(&self.log)
            .epochs()
            .latest()
            .filter(|e| e.epoch == state.leader_epoch)
            .map_or(offsets.log_end, |e| e.start_offset);
        let side = lock(&self.leader_side);
        let now = Instant::now();
        let fresh = side.epoch == state.leader_epoch;
        let mut isr = Vec::with_capacity(state.replicas.len());
        let mut shrunk = Vec::new();
        let mut expanded = Vec::new();
        for member in &state.isr {
            if member.broker == self.broker_id {
                isr.push(*member);
                continue;
            }
            let caught_up_at = side
                .followers
                .get(&member.broker)
                .filter(|p| fresh && p.broker_epoch == member.broker_epoch)
                .map_or(side.since, |p| p.caught_up_at);
            let since = if fresh { caught_up_at } else { now };
            if now.duration_since(since) > lag_max {
                shrunk.push(member.broker);
            } else {
                isr.push(*member);
            }
        }
        if fresh {
            for &broker in &state.replicas {
                if isr.iter().any(|m| m.broker == broker) || shrunk.contains(&broker) {
                    continue;
                }
                let Some(progress) = side.followers.get(&broker) else {
                    continue;
                };
                let synced = match self.flush_mode() {
                    FlushMode::Durable => progress.durable,
                    FlushMode::Interval => progress.log_end,
                };
                let joins = live.get(&broker) == Some(&progress.broker_epoch)
                    && progress.log_end >= offsets.high_watermark
                    && progress.log_end >= epoch_start
                    && synced >= offsets.high_watermark;
                if joins {
                    isr.push(IsrMember {
                        broker,
                        broker_epoch: progress.broker_epoch,
                    });
                    expanded.push(broker);
                }
            }
        }
        if shrunk.is_empty() && expanded.is_empty() {
            return None;
        }
        Some(IsrChange {
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            isr,
            shrunk,
            expanded,
        })
    }

    /// Notes an ISR change about to be written: its joiners count for the high watermark
    /// until the change is applied or withdrawn.
    pub fn propose_isr(&self, change: &IsrChange) {
        let joining: Vec<IsrMember> = change
            .isr
            .iter()
            .filter(|m| change.expanded.contains(&m.broker))
            .copied()
            .collect();
        let mut side = lock(&self.leader_side);
        if side.epoch == change.leader_epoch {
            side.proposed = Some(Proposed {
                partition_epoch: change.partition_epoch,
                joining,
            });
        }
    }

    /// The proposed ISR change was not written.
    pub fn withdraw_isr(&self) {
        lock(&self.leader_side).proposed = None;
    }

    /// Appends batches fetched from the leader (as follower), then takes the leader's
    /// high watermark (capped at this log's end) and log start.
    pub fn append_from_leader(
        self: &Arc<Self>,
        records: &[u8],
        leader_high_watermark: i64,
        leader_log_start: i64,
        now_ms: i64,
    ) -> Result<FollowerAppend, ReplicaError> {
        let mut log = self.online_log()?;
        // Under the log's lock: a replica made leader writes its epoch start under it
        // after its state changed, so no old-epoch batch lands after that start.
        if self.state().role == Role::Leader {
            return Err(ReplicaError::NotLeader);
        }
        let appended = match log.append_as_follower(records, now_ms) {
            Ok(appended) => appended,
            Err(FollowerAppendError::Invalid(reason)) => {
                drop(log);
                tracing::warn!(partition = %self.describe(), %reason, "refused the leader's records");
                return Err(ReplicaError::Storage);
            }
            Err(FollowerAppendError::Storage(err)) => {
                return Err(self.log_failed(log, "follower append", &err))
            }
        };
        let log_end = log.log_end_offset();
        let mut log_start = log.log_start_offset();
        if leader_log_start > log_start {
            // DeleteRecords and retention on the leader reach this copy too; offsets it
            // has not written yet are left to the next fetch. Housekeeping's lock comes
            // before the log's, as everywhere else.
            drop(log);
            let _housekeeping = lock(&self.housekeeping);
            log = self.online_log()?;
            let upto = leader_log_start.min(log.log_end_offset());
            match log.advance_log_start(upto) {
                Ok(start) => log_start = start,
                Err(err) => return Err(self.log_failed(log, "moving the log start", &err)),
            }
        }
        let rolled = log.has_pending_roll();
        drop(log);
        self.replication_bytes_in
            .fetch_add(appended.bytes, Ordering::Relaxed);
        self.offsets.send_modify(|o| {
            o.log_end = log_end;
            o.log_start = log_start;
            o.high_watermark = o.high_watermark.max(leader_high_watermark.min(log_end));
        });
        if appended.batches > 0 || rolled {
            match self.flush_mode() {
                FlushMode::Durable => self.flusher.request(self.clone()),
                FlushMode::Interval if rolled => self.flusher.request(self.clone()),
                FlushMode::Interval => {
                    let config = self.config();
                    self.note_unflushed(appended.records, &config)
                }
            }
        }
        Ok(appended)
    }

    /// Truncates the log to `offset` (a follower diverged from its leader, or its fetch
    /// offset is past the leader's end). Durable on return; counted in `/metrics`.
    pub fn truncate_to(&self, offset: i64) -> Result<Truncation, ReplicaError> {
        self.cut_log(offset, "truncation", PartitionLog::truncate_to)
    }

    /// Empties the log and restarts it at `offset` (the leader's log start is past this
    /// copy's end).
    pub fn restart_at(&self, offset: i64) -> Result<Truncation, ReplicaError> {
        self.cut_log(
            offset,
            "restarting the log",
            PartitionLog::truncate_fully_and_start_at,
        )
    }

    /// Runs `cut` at `offset` between flushes, with housekeeping held, and publishes the
    /// offsets it leaves.
    fn cut_log(
        &self,
        offset: i64,
        what: &str,
        cut: fn(&mut PartitionLog, i64) -> crate::error::Result<Truncation>,
    ) -> Result<Truncation, ReplicaError> {
        let _housekeeping = lock(&self.housekeeping);
        let mut log = self.log_between_flushes()?;
        let truncated = match cut(&mut log, offset) {
            Ok(t) => t,
            Err(err) => {
                drop(log);
                tracing::error!(partition = %self.describe(), offset, error = %err, "{what} failed; the log is offline");
                self.went_offline();
                return Err(ReplicaError::Storage);
            }
        };
        let (log_end, log_start, durable) = (
            log.log_end_offset(),
            log.log_start_offset(),
            log.durable_offset(),
        );
        drop(log);
        self.note_truncation(&truncated, log_end, log_start, durable);
        Ok(truncated)
    }

    /// The log, once no flush of it is in flight: a flush taken before a truncation and
    /// finished after it would report the old log's offsets as durable and write its
    /// epoch checkpoint and producer snapshots over the cut. Runs on a blocking thread.
    fn log_between_flushes(&self) -> Result<MutexGuard<'_, PartitionLog>, ReplicaError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.online_log()?;
            if !log.flush_in_flight() {
                return Ok(log);
            }
            drop(log);
            if Instant::now() >= deadline {
                tracing::warn!(partition = %self.describe(), "a flush did not finish within 30 s; not truncating");
                return Err(ReplicaError::Timeout);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn note_truncation(&self, truncated: &Truncation, log_end: i64, log_start: i64, durable: i64) {
        if truncated.from != truncated.to {
            self.truncations.fetch_add(1, Ordering::Relaxed);
            self.bytes_truncated
                .fetch_add(truncated.bytes, Ordering::Relaxed);
        }
        self.offsets.send_modify(|o| {
            o.log_end = log_end;
            o.log_start = log_start;
            o.durable = durable;
            o.high_watermark = o.high_watermark.min(log_end).max(log_start.min(log_end));
        });
    }

    /// This follower's view for its next fetch: (log end, epoch of its last batch,
    /// durable offset).
    pub fn follower_position(&self) -> (i64, i32, i64) {
        let log = lock(&self.log);
        (
            log.log_end_offset(),
            log.latest_epoch().unwrap_or(-1),
            log.durable_offset(),
        )
    }

    /// OffsetForLeaderEpoch as leader: the largest epoch at or below `epoch` and where it
    /// ends (`None`: no epoch that old here), fenced by `current_leader_epoch` (-1: any).
    pub fn epoch_end(
        &self,
        epoch: i32,
        current_leader_epoch: i32,
    ) -> Result<Option<(i32, i64)>, ReplicaError> {
        self.serving_state(current_leader_epoch)?;
        let log = self.online_log()?;
        Ok(log.epochs().end_offset_for(epoch, log.log_end_offset()))
    }

    /// The end of `epoch` in this log (the largest epoch at or below it and where it
    /// ends), for truncating to where a leader's log diverged from this one.
    pub fn end_offset_for(&self, epoch: i32) -> Option<(i32, i64)> {
        let log = lock(&self.log);
        log.epochs().end_offset_for(epoch, log.log_end_offset())
    }

    /// The followers this leader tracks, for lag metrics.
    pub fn follower_lag(&self) -> Vec<FollowerLag> {
        let side = lock(&self.leader_side);
        side.followers
            .iter()
            .map(|(b, p)| FollowerLag {
                broker: *b,
                log_end: p.log_end,
                durable: p.durable,
                since_caught_up: p.caught_up_at.elapsed(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::fsio::sim::SimFs;
    use crate::log::flusher::FlushTarget;
    use crate::partition::tests::partition;
    use crate::records::batch::test_batches::uncompressed;

    fn state(role: Role, leader: i32, isr: &[(i32, i64)]) -> ReplicaState {
        ReplicaState {
            role,
            leader,
            leader_epoch: 1,
            partition_epoch: 0,
            replicas: vec![1, 2],
            isr: isr
                .iter()
                .map(|&(broker, broker_epoch)| IsrMember {
                    broker,
                    broker_epoch,
                })
                .collect(),
        }
    }

    fn fetch(offset: i64, durable: i64) -> FollowerFetch {
        FollowerFetch {
            broker: 2,
            broker_epoch: 9,
            current_leader_epoch: 1,
            fetch_offset: offset,
            last_fetched_epoch: if offset > 0 { 1 } else { -1 },
            durable_offset: durable,
            max_bytes: 1 << 20,
        }
    }

    async fn produce(p: &Arc<Partition>, values: &[&[u8]]) -> i64 {
        let mut batch = uncompressed(values, 1000);
        let appended = p.append_as_leader(&mut batch, 1, 1000).unwrap();
        let end = appended.info.last_offset + 1;
        p.wait_for_acks(end, 1, 1).await.unwrap();
        end
    }

    #[tokio::test]
    async fn a_proposed_joiner_holds_the_high_watermark_before_its_change_is_applied() {
        let sim = SimFs::new();
        let p = partition(&sim, &[], state(Role::Leader, 1, &[(1, 7)]));
        let end = produce(&p, &[b"a", b"b"]).await;
        assert_eq!(
            p.offsets().high_watermark,
            end,
            "the leader alone is the ISR"
        );
        // Follower 2 catches up, and the leader proposes it for the ISR.
        p.fetch_for_follower(&fetch(end, end)).unwrap();
        let live: BTreeMap<i32, i64> = [(1, 7), (2, 9)].into();
        let change = p.wanted_isr(Duration::from_secs(30), &live).unwrap();
        assert_eq!(change.expanded, vec![2]);
        p.propose_isr(&change);
        // Until the change is applied, records count as committed only once 2 has them.
        let later = produce(&p, &[b"c", b"d"]).await;
        assert_eq!(
            p.offsets().high_watermark,
            end,
            "2 has not fetched them yet"
        );
        p.fetch_for_follower(&fetch(later, later)).unwrap();
        assert_eq!(p.offsets().high_watermark, later);
        // Withdrawn (the write lost its compare): 2 no longer holds the HW back.
        p.withdraw_isr();
        let last = produce(&p, &[b"e"]).await;
        assert_eq!(p.offsets().high_watermark, last);
    }

    #[test]
    fn the_role_stays_readable_under_the_log_lock_while_a_promotion_waits() {
        // A follower's append holds the log's lock and then reads the role; a promotion
        // that took the state's lock first and then waited for the log deadlocked with
        // it (a follower promoted while it appends from the old leader, as when a leader
        // is cut off from etcd only and still serves its peers).
        let sim = SimFs::new();
        let p = partition(&sim, &[], state(Role::Follower, 2, &[(2, 9), (1, 7)]));
        let appending = lock(&p.log);
        let promoting = {
            let p = p.clone();
            std::thread::spawn(move || {
                let mut next = state(Role::Leader, 1, &[(1, 7), (2, 9)]);
                next.leader_epoch = 2;
                p.apply_state(next);
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let p = p.clone();
            std::thread::spawn(move || tx.send(p.state().role));
        }
        let role = rx.recv_timeout(Duration::from_secs(10));
        drop(appending);
        promoting.join().unwrap();
        assert_eq!(
            role,
            Ok(Role::Follower),
            "the role must be readable while the log is held"
        );
        assert_eq!(p.state().role, Role::Leader);
    }

    #[test]
    fn a_fetch_read_before_a_new_term_does_not_reset_the_leader_side() {
        let sim = SimFs::new();
        let p = partition(&sim, &[], state(Role::Leader, 1, &[(1, 7), (2, 9)]));
        let stale = p.state();
        let mut next = state(Role::Leader, 1, &[(1, 7), (2, 9)]);
        next.leader_epoch = 2;
        p.apply_state(next);
        p.note_follower(&stale, &fetch(0, 0), 0);
        assert_eq!(lock(&p.leader_side).epoch, 2);
        let mut current = fetch(0, 0);
        current.current_leader_epoch = 2;
        p.fetch_for_follower(&current).unwrap();
        assert!(
            lock(&p.leader_side).followers.contains_key(&2),
            "a fetch in the current term counts"
        );
    }

    #[test]
    fn a_truncation_waits_for_a_flush_in_flight() {
        let sim = SimFs::new();
        let p = partition(
            &sim,
            &[("log.flush.mode", "interval")],
            state(Role::Follower, 2, &[(2, 9), (1, 7)]),
        );
        let mut bytes = Vec::new();
        for base in [0i64, 2, 4] {
            let mut batch = uncompressed(&[b"x", b"y"], 1000);
            crate::records::batch::set_partition_leader_epoch(&mut batch, 1);
            crate::records::batch::set_base_offset(&mut batch, base);
            bytes.extend_from_slice(&batch);
        }
        p.append_from_leader(&bytes, 0, 0, 1000).unwrap();
        let ticket = p.take_flush().expect("a flush to take");
        assert_eq!(ticket.target_offset, 6);
        let truncating = {
            let p = p.clone();
            std::thread::spawn(move || p.truncate_to(2))
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!truncating.is_finished(), "the cut waits for the flush");
        p.finish_flush(&ticket, true);
        truncating.join().unwrap().unwrap();
        let offsets = p.offsets();
        assert_eq!(offsets.log_end, 2);
        assert!(
            offsets.durable <= 2,
            "the old flush must not report the cut log's offsets as durable: {offsets:?}"
        );
    }
}
