//! The follower's side of a partition log: appending batches exactly as the leader
//! stored them (its offsets, epochs and timestamps; never re-stamped), and cutting the
//! log back by leader epoch when it diverged from the leader's.
//!
//! Truncation is made durable before it returns: a cut that a power loss undid would
//! bring back records of a deposed leader under offsets the new leader has since reused.

use tracing::warn;

use super::{io_err, remove_segment, PartitionLog};
use crate::error::{Error, Result};
use crate::log::segment::{AppendMeta, Segment};
use crate::records::batch::{inspect, Step};

/// What a follower append wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FollowerAppend {
    pub batches: usize,
    pub bytes: u64,
    pub records: i64,
}

/// What a truncation removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Truncation {
    pub from: i64,
    pub to: i64,
    pub bytes: u64,
}

/// Why the leader's bytes could not be appended.
#[derive(Debug)]
pub enum FollowerAppendError {
    /// The bytes are not whole, CRC-valid batches continuing this log (the leader or the
    /// wire is at fault; nothing was written past the last good batch).
    Invalid(String),
    /// The log could not be written (it is now offline).
    Storage(Error),
}

impl PartitionLog {
    /// Appends whole batches fetched from the leader. Each must be CRC-valid and start at
    /// or after the log end (the leader's log may have compaction gaps); a trailing
    /// partial batch (a fetch cut at `max_bytes`) is ignored. Batches before a bad one
    /// are kept: they are the leader's, whole and in order.
    pub fn append_as_follower(
        &mut self,
        bytes: &[u8],
        now_ms: i64,
    ) -> Result<FollowerAppend, FollowerAppendError> {
        if self.offline {
            return Err(FollowerAppendError::Storage(Error::LogOffline {
                partition: self.dir.display().to_string(),
            }));
        }
        let mut done = FollowerAppend::default();
        let mut pos = 0;
        while pos < bytes.len() {
            let header = match inspect(&bytes[pos..], true, pos) {
                Step::Batch { header, .. } => header,
                Step::Incomplete { .. } => break,
                Step::Corrupt { reason, .. } => {
                    return Err(FollowerAppendError::Invalid(format!(
                        "batch at byte {pos} of the leader's response: {reason}"
                    )))
                }
            };
            let log_end = self.log_end_offset();
            if header.base_offset < log_end
                && header.last_offset() >= log_end
                && self.size_bytes() == 0
            {
                // An empty log that starts inside this batch (the leader's log start is
                // mid-batch, KAFKA-6975): the log begins at the batch, its start stays.
                let start = self.log_start_offset;
                self.restart_at(header.base_offset)
                    .map_err(FollowerAppendError::Storage)?;
                self.log_start_offset = start;
            } else if header.base_offset < log_end {
                return Err(FollowerAppendError::Invalid(format!(
                    "batch at offset {} is below the log end {log_end}",
                    header.base_offset
                )));
            }
            let size = header.total_size();
            let batch = &bytes[pos..pos + size];
            self.write_follower_batch(batch, &header, now_ms)
                .inspect_err(|_| self.offline = true)
                .map_err(FollowerAppendError::Storage)?;
            done.batches += 1;
            done.bytes += size as u64;
            done.records += i64::from(header.last_offset_delta) + 1;
            pos += size;
        }
        Ok(done)
    }

    fn write_follower_batch(
        &mut self,
        batch: &[u8],
        header: &crate::records::batch::BatchHeader,
        now_ms: i64,
    ) -> Result<()> {
        // A segment indexes offsets relative to its base in 32 bits. Behind a compaction
        // gap wider than that (the leader's cleaner removed over 2^31 offsets), a segment
        // starting at the log end could not index the batch: start it at the batch's own
        // base, as Kafka's followers do, and an empty one is replaced.
        let overflows = header.last_offset() - self.active().base_offset() > i64::from(i32::MAX);
        if overflows && self.active().is_empty() {
            self.replace_empty_active(header.base_offset)?;
        } else if self.should_roll(batch.len(), header.last_offset(), now_ms) {
            self.roll_at(header.base_offset)?;
        }
        self.epochs_dirty |= self
            .epochs
            .assign(header.partition_leader_epoch, header.base_offset);
        // As recovery indexes it: the batch's own maximum at its base offset, an offset
        // at or before the record that carries it.
        let meta = AppendMeta {
            base_offset: header.base_offset,
            next_offset: header.next_offset(),
            max_timestamp: header.max_timestamp,
            offset_of_max_timestamp: header.base_offset,
        };
        let interval = self.config.index_interval_bytes;
        self.active_mut()
            .append(batch, &meta, interval)
            .map_err(|source| Error::WriteFile {
                path: self.dir.clone(),
                source,
            })?;
        if header.has_producer_id() {
            self.producers
                .record(header, header.base_offset, header.last_offset());
        }
        Ok(())
    }

    /// Cuts the log so that `offset` is its end: later segments are deleted, the one
    /// holding `offset` is cut, epochs and producer state follow. Durable on return.
    /// An offset at or past the log end changes nothing.
    pub fn truncate_to(&mut self, offset: i64) -> Result<Truncation> {
        let from = self.log_end_offset();
        if offset >= from {
            // Nothing to cut, but an epoch this replica began as leader without writing
            // in it may start here: left in place, the next fetch would name it again
            // and be told to truncate again, for ever (Kafka drops it too).
            if self.epochs.truncate_from_end(from) {
                self.epochs.persist()?;
            }
            return Ok(Truncation {
                from,
                to: from,
                bytes: 0,
            });
        }
        if self.offline {
            return Err(Error::LogOffline {
                partition: self.dir.display().to_string(),
            });
        }
        if offset < self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        let bytes = self
            .cut_segments(offset)
            .inspect_err(|_| self.offline = true)?;
        warn!(dir = %self.dir.display(), from, to = offset, bytes, "truncated the log");
        Ok(Truncation {
            from,
            to: offset,
            bytes,
        })
    }

    fn cut_segments(&mut self, offset: i64) -> Result<u64> {
        let mut bytes = 0;
        let later: Vec<i64> = self
            .segments
            .range(offset..)
            .map(|(base, _)| *base)
            .filter(|base| *base > self.first_base())
            .collect();
        for base in later {
            if let Some(segment) = self.segments.remove(&base) {
                bytes += segment.size();
            }
            remove_segment(self.fs.as_ref(), &self.dir, base)?;
        }
        // Rolled segments that survive the cut may still wait for their fsync: sync them
        // now, since the flush that would have is forgotten below.
        for file in std::mem::take(&mut self.pending_files) {
            file.sync_data().map_err(|source| Error::SyncFile {
                path: self.dir.clone(),
                source,
            })?;
        }
        let dir = self.dir.clone();
        let active = self.active_mut();
        bytes += active.truncate_to(offset).map_err(io_err(&dir))?;
        active.sync_all().map_err(|source| Error::SyncFile {
            path: dir.clone(),
            source,
        })?;
        self.fs.sync_dir(&dir).map_err(|source| Error::SyncDir {
            path: dir.clone(),
            source,
        })?;
        self.after_cut(offset)?;
        Ok(bytes)
    }

    /// Throws the whole log away and starts it empty at `offset` (the leader's log start
    /// is past everything here, or this log must restart below its own start).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<Truncation> {
        let from = self.log_end_offset();
        let bytes = self
            .restart_at(offset)
            .inspect_err(|_| self.offline = true)?;
        warn!(dir = %self.dir.display(), from, start = offset, bytes, "emptied the log to restart it at the leader's log start");
        Ok(Truncation {
            from,
            to: offset,
            bytes,
        })
    }

    fn restart_at(&mut self, offset: i64) -> Result<u64> {
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        let mut bytes = 0;
        // The new segment first: a log is never without one, even after a failure here.
        let fresh = if bases.contains(&offset) {
            None
        } else {
            Some(Segment::create(self.fs.as_ref(), &self.dir, offset).map_err(io_err(&self.dir))?)
        };
        for base in bases {
            if let Some(segment) = self.segments.remove(&base) {
                bytes += segment.size();
            }
            remove_segment(self.fs.as_ref(), &self.dir, base)?;
        }
        let segment = match fresh {
            Some(segment) => segment,
            None => {
                Segment::create(self.fs.as_ref(), &self.dir, offset).map_err(io_err(&self.dir))?
            }
        };
        self.segments.insert(offset, segment);
        self.fs
            .sync_dir(&self.dir)
            .map_err(|source| Error::SyncDir {
                path: self.dir.clone(),
                source,
            })?;
        self.log_start_offset = offset;
        self.delete_snapshots_below(i64::MAX)?;
        // Nothing below `offset` exists any more, and nothing at or past it yet.
        self.durable_offset = offset;
        self.recovery_point = offset;
        self.epochs.clear();
        self.epochs_dirty = true;
        self.after_cut(offset)?;
        Ok(bytes)
    }

    /// Brings everything derived from the log back to a log that now ends at `offset`.
    fn after_cut(&mut self, offset: i64) -> Result<()> {
        self.epochs_dirty |= self.epochs.truncate_from_end(offset);
        if self.epochs_dirty {
            self.epochs.persist()?;
            self.epochs_dirty = false;
        }
        self.pending_files.clear();
        self.pending_snapshots.retain(|(o, _)| *o <= offset);
        self.durable_offset = self.durable_offset.min(offset);
        self.recovery_point = self.recovery_point.min(self.active().base_offset());
        self.first_dirty = self.first_dirty.min(offset);
        self.tombstones_due_at = None;
        let entries = self.dir_entries()?;
        self.rebuild_producer_state(&entries)
    }

    /// Moves the empty active segment to `base`; the directory change goes to the next
    /// flush, as a roll's does.
    fn replace_empty_active(&mut self, base: i64) -> Result<()> {
        let old = self.active().base_offset();
        let segment =
            Segment::create(self.fs.as_ref(), &self.dir, base).map_err(io_err(&self.dir))?;
        self.segments.remove(&old);
        remove_segment(self.fs.as_ref(), &self.dir, old)?;
        self.segments.insert(base, segment);
        self.dir_sync_pending = true;
        if self.log_start_offset == old {
            self.log_start_offset = base;
        }
        Ok(())
    }

    fn first_base(&self) -> i64 {
        self.segments.keys().next().copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use uuid::Uuid;

    use super::*;
    use crate::fsio::sim::{CutMode, SimFs};
    use crate::fsio::FileSystem;
    use crate::log::partition_log::tests::{config, flush, limits};
    use crate::log::partition_log::OpenOptions;
    use crate::log::producer_state::Check;
    use crate::log::segment::read_batches;
    use crate::records::batch::test_batches::idempotent;
    use crate::records::batch::BatchHeader;
    use crate::records::validate::validate_produce_batch;

    fn new_log(fs: &SimFs, name: &str) -> PartitionLog {
        let fs: Arc<dyn FileSystem> = Arc::new(fs.clone());
        crate::fsio::create_dir_durable(fs.as_ref(), Path::new("/data")).unwrap();
        PartitionLog::create(fs, &Path::new("/data").join(name), Uuid::nil(), config()).unwrap()
    }

    /// Appends `count` batches of an idempotent producer as leader of `epoch`.
    fn lead(log: &mut PartitionLog, epoch: i32, producer_id: i64, first_seq: i32, count: i32) {
        for i in 0..count {
            let value = format!("e{epoch}-{i}-{}", "x".repeat(100));
            let mut batch = idempotent(
                &[value.as_bytes(), b"b"],
                1000 + i64::from(i),
                producer_id,
                0,
                first_seq + 2 * i,
            );
            let valid = validate_produce_batch(&batch, &limits()).unwrap();
            log.append_as_leader(&mut batch, &valid, epoch, 1000, false)
                .unwrap();
        }
    }

    /// Everything a log holds from `from`, as stored.
    fn bytes_from(log: &PartitionLog, from: i64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut offset = from;
        while offset < log.log_end_offset() {
            let plan = log.read_plan(offset).unwrap().unwrap();
            let read = read_batches(&plan, offset, 1 << 20, true, log.log_end_offset()).unwrap();
            if read.bytes.is_empty() {
                break;
            }
            out.extend_from_slice(&read.bytes);
            offset = read.next_offset;
        }
        out
    }

    #[test]
    fn a_follower_stores_the_leaders_batches_byte_for_byte_with_epochs_and_producers() {
        let fs = SimFs::new();
        let mut leader = new_log(&fs, "leader-0");
        lead(&mut leader, 1, 7, 0, 10);
        lead(&mut leader, 3, 7, 20, 10);
        let mut follower = new_log(&fs, "follower-0");
        // In two fetches, the first cut inside a batch (a partial batch is left for later).
        let all = bytes_from(&leader, 0);
        let cut = all.len() / 2;
        let first = follower.append_as_follower(&all[..cut], 0).unwrap();
        assert!(first.batches > 0);
        let rest = bytes_from(&leader, follower.log_end_offset());
        follower.append_as_follower(&rest, 0).unwrap();
        assert!(
            follower.segment_count() > 1,
            "the follower rolls its own segments"
        );
        assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        assert_eq!(
            bytes_from(&follower, 0),
            all,
            "stored exactly as the leader stored them"
        );
        assert_eq!(follower.epochs().entries(), leader.epochs().entries());
        // A producer's retry of its last batch is a duplicate on the follower too.
        let retry = idempotent(&[b"e3-9", b"b"], 1009, 7, 0, 20 + 18);
        let header = BatchHeader::parse(&retry).unwrap();
        assert!(matches!(
            follower.producers.check(&header),
            Ok(Check::Duplicate(_))
        ));
        // Batches below the log end are refused, and nothing is written.
        let end = follower.log_end_offset();
        assert!(matches!(
            follower.append_as_follower(&all, 0),
            Err(FollowerAppendError::Invalid(_))
        ));
        assert_eq!(follower.log_end_offset(), end);
    }

    #[test]
    fn a_corrupt_batch_from_the_leader_is_refused_after_the_good_ones() {
        let fs = SimFs::new();
        let mut leader = new_log(&fs, "leader-0");
        lead(&mut leader, 1, 7, 0, 3);
        let mut bytes = bytes_from(&leader, 0);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let mut follower = new_log(&fs, "follower-0");
        assert!(matches!(
            follower.append_as_follower(&bytes, 0),
            Err(FollowerAppendError::Invalid(_))
        ));
        assert_eq!(
            follower.log_end_offset(),
            4,
            "the two whole batches before it are kept"
        );
    }

    #[test]
    fn truncation_is_durable_and_takes_epochs_and_producer_state_with_it() {
        let fs = SimFs::new();
        let mut log = new_log(&fs, "t-0");
        lead(&mut log, 1, 7, 0, 10);
        lead(&mut log, 2, 7, 20, 10);
        flush(&mut log, &fs);
        lead(&mut log, 2, 7, 40, 5); // not synced
        let segments = log.segment_count();
        assert!(segments > 2);
        let cut = log.truncate_to(24).unwrap();
        assert_eq!((cut.from, cut.to), (50, 24));
        assert!(cut.bytes > 0);
        assert_eq!(log.log_end_offset(), 24);
        assert!(log.segment_count() < segments);
        assert_eq!(log.latest_epoch(), Some(2));
        assert_eq!(log.epochs().end_offset_for(1, 24), Some((1, 20)));
        // The producer's batches past the cut are forgotten: its next sequence is 24 again.
        let next = idempotent(&[b"n", b"b"], 1, 7, 0, 24);
        assert!(matches!(
            log.producers.check(&BatchHeader::parse(&next).unwrap()),
            Ok(Check::Append)
        ));
        // Power cut right after: the cut holds, nothing past it comes back.
        let expected = bytes_from(&log, 0);
        let after = fs.power_cut(CutMode::LoseUnsynced);
        let (reopened, _) = PartitionLog::open(
            Arc::new(after),
            Path::new("/data/t-0"),
            Uuid::nil(),
            config(),
            OpenOptions::default(),
        )
        .unwrap();
        assert_eq!(reopened.log_end_offset(), 24);
        assert_eq!(bytes_from(&reopened, 0), expected);
        assert_eq!(reopened.epochs().entries(), log.epochs().entries());
    }

    #[test]
    fn restarting_at_the_leaders_log_start_empties_the_log_durably() {
        let fs = SimFs::new();
        let mut log = new_log(&fs, "t-0");
        lead(&mut log, 1, 7, 0, 10);
        flush(&mut log, &fs);
        log.truncate_fully_and_start_at(500).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
        assert_eq!(log.segment_count(), 1);
        assert!(log.epochs().entries().is_empty());
        assert_eq!(log.producer_count(), 0);
        // The leader's next batches land at its offsets.
        let mut leader = new_log(&fs, "leader-0");
        lead(&mut leader, 4, 8, 0, 1);
        let mut batch = bytes_from(&leader, 0);
        crate::records::batch::set_base_offset(&mut batch, 500);
        log.append_as_follower(&batch, 0).unwrap();
        assert_eq!(log.log_end_offset(), 502);
        let after = fs.power_cut(CutMode::LoseUnsynced);
        let (reopened, _) = PartitionLog::open(
            Arc::new(after),
            Path::new("/data/t-0"),
            Uuid::nil(),
            config(),
            OpenOptions {
                log_start_offset: Some(500),
                ..OpenOptions::default()
            },
        )
        .unwrap();
        assert_eq!(
            reopened.log_start_offset(),
            500,
            "the old segments never come back"
        );
        assert!(reopened.log_end_offset() >= 500);
    }

    #[test]
    fn an_epoch_begun_without_a_write_goes_when_the_leader_never_saw_it() {
        let fs = SimFs::new();
        let mut log = new_log(&fs, "t-0");
        lead(&mut log, 1, 7, 0, 2);
        log.begin_leader_epoch(5);
        assert_eq!(log.latest_epoch(), Some(5));
        // The new leader's answer is this log's end: nothing to cut, but epoch 5 (which
        // the next fetch would name again) goes.
        let cut = log.truncate_to(log.log_end_offset()).unwrap();
        assert_eq!(cut.bytes, 0);
        assert_eq!(log.latest_epoch(), Some(1));
    }

    #[test]
    fn a_cut_in_the_active_segment_keeps_rolled_segments_that_were_not_synced_yet() {
        let fs = SimFs::new();
        let mut log = new_log(&fs, "t-0");
        lead(&mut log, 1, 7, 0, 30);
        assert!(log.segment_count() > 2, "rolled, and nothing flushed");
        let end = log.log_end_offset();
        log.truncate_to(end - 2).unwrap();
        let expected = bytes_from(&log, 0);
        let after = fs.power_cut(CutMode::LoseUnsynced);
        let (reopened, _) = PartitionLog::open(
            Arc::new(after),
            Path::new("/data/t-0"),
            Uuid::nil(),
            config(),
            OpenOptions::default(),
        )
        .unwrap();
        assert_eq!(
            reopened.log_end_offset(),
            end - 2,
            "the rolled segments were synced"
        );
        assert_eq!(bytes_from(&reopened, 0), expected);
    }

    #[test]
    fn an_empty_log_started_inside_a_batch_takes_that_batch() {
        let fs = SimFs::new();
        let mut leader = new_log(&fs, "leader-0");
        lead(&mut leader, 1, 7, 0, 3); // offsets 0..6, batches of two
        let mut follower = new_log(&fs, "follower-0");
        // The leader's log start moved to 3 (DeleteRecords), inside batch 2..3.
        follower.truncate_fully_and_start_at(3).unwrap();
        let from_batch = bytes_from(&leader, 3);
        assert_eq!(BatchHeader::parse(&from_batch).unwrap().base_offset, 2);
        follower.append_as_follower(&from_batch, 0).unwrap();
        assert_eq!(
            follower.log_start_offset(),
            3,
            "the start stays where the leader put it"
        );
        assert_eq!(follower.log_end_offset(), 6);
        assert_eq!(bytes_from(&follower, 3), from_batch);
    }

    #[test]
    fn a_compaction_gap_wider_than_a_segment_can_index_starts_a_segment_at_the_batch() {
        use crate::records::batch::set_base_offset;
        use crate::records::batch::test_batches::uncompressed;

        let at = |base: i64| {
            let mut batch = uncompressed(&[b"a", b"b"], 1000);
            set_base_offset(&mut batch, base);
            batch
        };
        let wide = i64::from(i32::MAX) + 10;
        let fs = SimFs::new();
        let mut follower = new_log(&fs, "gap-0");
        // An empty log whose leader's first remaining batch lies past 2^31: the empty
        // segment at 0 could not index it.
        let first = at(wide);
        let second = at(wide + 2);
        let third = at(2 * wide + 100);
        follower.append_as_follower(&first, 0).unwrap();
        follower.append_as_follower(&second, 0).unwrap();
        assert_eq!(
            follower.segment_count(),
            1,
            "the empty segment was replaced"
        );
        // Then a gap past 2^31 inside the log: a new segment at the batch, not at the log end.
        follower.append_as_follower(&third, 0).unwrap();
        assert_eq!(follower.segment_count(), 2);
        assert_eq!(follower.log_end_offset(), 2 * wide + 102);
        let all: Vec<u8> = [first, second, third.clone()].concat();
        assert_eq!(bytes_from(&follower, wide), all);
        assert_eq!(bytes_from(&follower, 2 * wide + 100), third);
    }
}
