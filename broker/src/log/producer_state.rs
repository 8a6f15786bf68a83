//! Idempotent producer state of one partition: for every producer id, its epoch and its
//! last five batches' sequence ranges and offsets, as Kafka's ProducerStateManager keeps.
//!
//! Rules (Kafka 4's `ProducerAppendInfo`):
//! - an epoch below the producer's current one is refused (INVALID_PRODUCER_EPOCH);
//! - a new epoch must start at sequence 0 (else OUT_OF_ORDER_SEQUENCE_NUMBER);
//! - in the same epoch a batch must follow the last sequence (wrapping at i32::MAX);
//! - a producer with no state yet (new, expired or removed with its segments) is
//!   accepted at any sequence;
//! - a batch equal to one of the last five (same epoch, first and last sequence) is a
//!   retry: it is answered with the original offsets and not written again.
//!
//! The state is persisted as snapshots (`<offset>.snapshot`, the state after every batch
//! below that offset) at segment rolls and clean shutdown, and rebuilt on recovery by
//! replaying batch headers from the latest snapshot.

use std::collections::{HashMap, VecDeque};

use bytes::{Buf, BufMut};

use crate::records::batch::BatchHeader;

/// Batches remembered per producer (the client's `max.in.flight.requests.per.connection`
/// limit for idempotence).
pub const CACHED_BATCHES: usize = 5;
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
const SNAPSHOT_MAGIC: &[u8; 8] = b"RNLPSN01";

/// One remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

/// One producer's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMeta>,
    /// The max timestamp of its last batch (for `producer.id.expiration.ms`).
    pub last_timestamp: i64,
}

/// Why a producer's batch is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceError {
    OutOfOrder(String),
    InvalidEpoch(String),
}

/// What the sequence check decided for a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Append it.
    Append,
    /// A retry of a batch already in the log: answer with its offsets.
    Duplicate(BatchMeta),
}

/// The last sequence of a batch: base sequence plus the offset delta, wrapping at
/// i32::MAX to 0 as Kafka's `DefaultRecordBatch.incrementSequence`.
pub fn last_sequence(header: &BatchHeader) -> i32 {
    let sum = i64::from(header.base_sequence) + i64::from(header.last_offset_delta);
    if sum > i64::from(i32::MAX) {
        (sum - i64::from(i32::MAX) - 1) as i32
    } else {
        sum as i32
    }
}

fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// All producers of a partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerState {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Checks a client's batch against the producer's state (nothing changes).
    pub fn check(&self, header: &BatchHeader) -> Result<Check, SequenceError> {
        let pid = header.producer_id;
        let Some(entry) = self.producers.get(&pid) else {
            return Ok(Check::Append);
        };
        let epoch = header.producer_epoch;
        if epoch < entry.epoch {
            return Err(SequenceError::InvalidEpoch(format!(
                "epoch {epoch} of producer {pid} is below its current epoch {}",
                entry.epoch
            )));
        }
        let first = header.base_sequence;
        if epoch != entry.epoch {
            if first != 0 {
                return Err(SequenceError::OutOfOrder(format!(
                    "producer {pid} started epoch {epoch} at sequence {first}; a new epoch starts at 0"
                )));
            }
            return Ok(Check::Append);
        }
        let last = last_sequence(header);
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
        {
            return Ok(Check::Duplicate(*dup));
        }
        match entry.batches.back() {
            None => Ok(Check::Append),
            Some(previous) if in_sequence(previous.last_seq, first) => Ok(Check::Append),
            Some(previous) => Err(SequenceError::OutOfOrder(format!(
                "producer {pid} sent sequence {first} after {} (epoch {epoch})",
                previous.last_seq
            ))),
        }
    }

    /// Records a batch written at `first_offset..=last_offset` (by a client or replayed
    /// from the log).
    pub fn record(&mut self, header: &BatchHeader, first_offset: i64, last_offset: i64) {
        let entry = self.producers.entry(header.producer_id).or_default();
        if header.producer_epoch != entry.epoch {
            entry.batches.clear();
            entry.epoch = header.producer_epoch;
        }
        if entry.batches.len() == CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: header.base_sequence,
            last_seq: last_sequence(header),
            first_offset,
            last_offset,
            timestamp: header.max_timestamp,
        });
        entry.last_timestamp = entry.last_timestamp.max(header.max_timestamp);
    }

    /// Forgets producers whose last batch is older than `expiration_ms` at `now_ms`.
    /// Returns how many were removed.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_timestamp) <= expiration_ms);
        before - self.producers.len()
    }

    /// Forgets batches at or past `offset` (the log was cut there) and producers left
    /// with none.
    pub fn truncate_to(&mut self, offset: i64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.last_offset < offset);
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
    }

    /// Forgets producers whose last batch is below `offset` (the log start moved past
    /// everything they wrote), as Kafka does when the log start offset increases.
    pub fn remove_below(&mut self, offset: i64) {
        self.producers
            .retain(|_, e| e.batches.back().is_some_and(|b| b.last_offset >= offset));
    }

    /// Encodes the state (magic, CRC-32C of the body, entries).
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.put_u32(self.producers.len() as u32);
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        for id in ids {
            let e = &self.producers[id];
            body.put_i64(*id);
            body.put_i16(e.epoch);
            body.put_i64(e.last_timestamp);
            body.put_u8(e.batches.len() as u8);
            for b in &e.batches {
                body.put_i32(b.first_seq);
                body.put_i32(b.last_seq);
                body.put_i64(b.first_offset);
                body.put_i64(b.last_offset);
                body.put_i64(b.timestamp);
            }
        }
        let mut out = Vec::from(&SNAPSHOT_MAGIC[..]);
        out.put_u32(crc32c::crc32c(&body));
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a snapshot, or `None` if it is damaged.
    pub fn decode(raw: &[u8]) -> Option<ProducerState> {
        if raw.len() < 12 || &raw[..8] != SNAPSHOT_MAGIC {
            return None;
        }
        let mut crc = &raw[8..12];
        let body = &raw[12..];
        if crc32c::crc32c(body) != crc.get_u32() {
            return None;
        }
        let mut buf = body;
        if buf.remaining() < 4 {
            return None;
        }
        let count = buf.get_u32() as usize;
        let mut producers = HashMap::with_capacity(count.min(buf.remaining() / 19));
        for _ in 0..count {
            if buf.remaining() < 19 {
                return None;
            }
            let id = buf.get_i64();
            let epoch = buf.get_i16();
            let last_timestamp = buf.get_i64();
            let n = buf.get_u8() as usize;
            if n > CACHED_BATCHES || buf.remaining() < n * 32 {
                return None;
            }
            let batches = (0..n)
                .map(|_| BatchMeta {
                    first_seq: buf.get_i32(),
                    last_seq: buf.get_i32(),
                    first_offset: buf.get_i64(),
                    last_offset: buf.get_i64(),
                    timestamp: buf.get_i64(),
                })
                .collect();
            producers.insert(
                id,
                ProducerEntry {
                    epoch,
                    batches,
                    last_timestamp,
                },
            );
        }
        buf.is_empty().then_some(ProducerState { producers })
    }
}

/// `00000000000000001234.snapshot` for the state after every batch below offset 1234.
pub fn snapshot_name(offset: i64) -> String {
    format!("{offset:020}{SNAPSHOT_SUFFIX}")
}

/// The offset of a snapshot file name.
pub fn parse_snapshot_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 1000,
            max_timestamp: 1000,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    #[test]
    fn sequences_must_follow_and_retries_are_duplicates() {
        let mut state = ProducerState::default();
        let first = header(7, 0, 0, 3);
        assert_eq!(state.check(&first), Ok(Check::Append));
        state.record(&first, 100, 102);
        assert!(matches!(
            state.check(&header(7, 0, 4, 1)),
            Err(SequenceError::OutOfOrder(_))
        ));
        let Check::Duplicate(dup) = state.check(&first).unwrap() else {
            panic!("a retry is a duplicate")
        };
        assert_eq!((dup.first_offset, dup.last_offset), (100, 102));
        let next = header(7, 0, 3, 2);
        assert_eq!(state.check(&next), Ok(Check::Append));
        state.record(&next, 103, 104);
    }

    #[test]
    fn epochs_fence_and_reset_sequences() {
        let mut state = ProducerState::default();
        state.record(&header(7, 2, 0, 1), 0, 0);
        assert!(matches!(
            state.check(&header(7, 1, 1, 1)),
            Err(SequenceError::InvalidEpoch(_))
        ));
        assert!(matches!(
            state.check(&header(7, 3, 5, 1)),
            Err(SequenceError::OutOfOrder(_))
        ));
        assert_eq!(state.check(&header(7, 3, 0, 1)), Ok(Check::Append));
    }

    #[test]
    fn an_unknown_producer_is_accepted_at_any_sequence() {
        let state = ProducerState::default();
        assert_eq!(state.check(&header(9, 0, 42, 1)), Ok(Check::Append));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_sequences_wrap() {
        let mut state = ProducerState::default();
        for i in 0..7 {
            state.record(&header(1, 0, i, 1), i64::from(i), i64::from(i));
        }
        assert_eq!(state.get(1).unwrap().batches.len(), CACHED_BATCHES);
        assert!(matches!(
            state.check(&header(1, 0, 0, 1)),
            Err(SequenceError::OutOfOrder(_))
        ));
        let wrapping = header(2, 0, i32::MAX, 2);
        assert_eq!(last_sequence(&wrapping), 0);
        state.record(&wrapping, 10, 11);
        assert_eq!(state.check(&header(2, 0, 1, 1)), Ok(Check::Append));
    }

    #[test]
    fn snapshots_round_trip_and_damage_is_detected() {
        let mut state = ProducerState::default();
        for pid in 0..20 {
            state.record(&header(pid, 1, 0, 2), pid * 10, pid * 10 + 1);
        }
        let raw = state.encode();
        assert_eq!(ProducerState::decode(&raw), Some(state));
        let mut damaged = raw.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert_eq!(ProducerState::decode(&damaged), None);
        assert_eq!(ProducerState::decode(&raw[..raw.len() - 3]), None);
    }

    #[test]
    fn expiry_and_truncation_forget_old_state() {
        let mut state = ProducerState::default();
        state.record(&header(1, 0, 0, 1), 5, 5);
        state.record(&header(2, 0, 0, 1), 50, 50);
        assert_eq!(state.expire(1000 + 500, 1000), 0);
        assert_eq!(state.expire(1000 + 1001, 1000), 2);
        state.record(&header(1, 0, 0, 1), 5, 5);
        state.record(&header(2, 0, 0, 1), 50, 50);
        state.truncate_to(10);
        assert!(state.get(1).is_some() && state.get(2).is_none());
    }

    #[test]
    fn snapshot_names_parse_back() {
        assert_eq!(snapshot_name(1234), "00000000000000001234.snapshot");
        assert_eq!(
            parse_snapshot_name("00000000000000001234.snapshot"),
            Some(1234)
        );
        assert_eq!(parse_snapshot_name("1234.snapshot"), None);
    }
}
