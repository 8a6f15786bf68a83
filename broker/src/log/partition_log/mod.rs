//! The log of one partition replica: a directory of segments, its leader epoch cache and
//! `partition.metadata`, with the durability bookkeeping the flusher needs.
//!
//! Appends write to the page cache under the partition's lock; durability is the
//! flusher's job. [`PartitionLog::take_flush`] hands it the files to fsync, the small
//! files to write (producer-state snapshots taken at rolls, the leader epoch checkpoint)
//! and the offset they will make durable, and [`PartitionLog::finish_flush`] records the
//! result, so no fsync ever runs under the lock on the produce path. An I/O error marks
//! the log offline for good: a failed fsync may have dropped pages, and retrying it
//! could report success over lost data.
//!
//! Recovery tells a lost tail from a compaction gap without trusting any checkpoint: a
//! segment the cleaner wrote carries a `<base>.cleaned` marker, so a gap after it is
//! compaction's; a gap after any other segment means its unsynced tail was lost while a
//! later segment's directory entry survived, and the later segments are dropped.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::info;
use uuid::Uuid;

use super::epochs::LeaderEpochCache;
use super::producer_state::{snapshot_name, Check, ProducerState, SequenceError};
use super::segment::{remove_segment_files, AppendMeta, ReadPlan, Segment};
use crate::error::{Error, Result};
use crate::fsio::{create_dir_durable, read_file, sync_parent, write_atomic, FileSystem, LogFile};
use crate::records::batch;
use crate::records::validate::ValidBatch;

mod cleaning;
mod follower;
mod recovery;
mod retention;

pub use follower::{FollowerAppend, FollowerAppendError, Truncation};

pub const PARTITION_METADATA: &str = "partition.metadata";

/// Per-log settings resolved from topic and broker configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is older than this.
    pub segment_ms: i64,
    /// `index.interval.bytes`: log bytes between offset index entries.
    pub index_interval_bytes: u64,
    /// Most bytes a compressed batch may decompress to when the log walks its records.
    pub decompression_budget: usize,
}

/// How to open an existing log.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// The log directory had a clean-shutdown marker: trust every segment.
    pub clean_shutdown: bool,
    /// From the recovery-point checkpoint: segments wholly below it are trusted.
    pub recovery_point: Option<i64>,
    /// From the log-start-offset checkpoint.
    pub log_start_offset: Option<i64>,
}

/// What opening a log did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenReport {
    pub segments: usize,
    pub recovered_segments: usize,
    pub truncated_bytes: u64,
    pub deleted_segments: usize,
    /// Cleaning swaps a crash interrupted, completed at open.
    pub completed_swaps: usize,
}

/// The result of one append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The LogAppendTime stamped on the batch, or -1.
    pub log_append_time_ms: i64,
    /// The batch was a producer's retry of one already in the log; nothing was written
    /// and the offsets are the original ones.
    pub duplicate: bool,
}

/// Why an append was refused.
#[derive(Debug)]
pub enum AppendError {
    /// The producer's sequence or epoch does not fit its state.
    Sequence(SequenceError),
    /// The log could not be written (it is now offline).
    Storage(Error),
}

/// Files to fsync for one flush and what the flush proves once they are synced.
#[derive(Debug)]
pub struct FlushTicket {
    /// Small files to replace atomically first (producer-state snapshots, the leader
    /// epoch checkpoint): written by the flusher so no fsync runs on the produce path.
    pub writes: Vec<(PathBuf, Vec<u8>)>,
    pub files: Vec<Arc<dyn LogFile>>,
    /// The partition directory, when a segment file was created since the last flush.
    pub dir: Option<PathBuf>,
    /// The partition directory (always), so a flusher can sync its whole volume instead.
    pub partition_dir: PathBuf,
    /// The topic incarnation the files belong to: `writes` go only into a directory
    /// whose `partition.metadata` still names it.
    pub topic_id: Uuid,
    /// Every offset below this is durable once the files are synced.
    pub target_offset: i64,
    /// Every segment below this base offset is fully synced, indexes included.
    pub recovery_point: i64,
}

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: i64,
}

/// Why a read could not be planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    OffsetOutOfRange { log_start: i64, log_end: i64 },
}

#[derive(Debug)]
pub struct PartitionLog {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    topic_id: Uuid,
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    epochs: LeaderEpochCache,
    durable_offset: i64,
    recovery_point: i64,
    /// Files of rolled segments that the next flush must sync.
    pending_files: Vec<Arc<dyn LogFile>>,
    dir_sync_pending: bool,
    /// Producer-state snapshots taken at rolls, for the next flush to write.
    pending_snapshots: Vec<(i64, Vec<u8>)>,
    /// The epoch cache changed since its checkpoint was last written.
    epochs_dirty: bool,
    offline: bool,
    /// A flush ticket is out (taken, not finished): truncation waits for it, or the
    /// flush would report offsets and write files of the log before the cut.
    flush_in_flight: bool,
    producers: ProducerState,
    /// Offsets below this were compacted by this process (the dirty ratio counts from
    /// here; after a restart the whole log counts as dirty once).
    first_dirty: i64,
    /// When a tombstone kept by the last cleaning pass becomes removable.
    tombstones_due_at: Option<i64>,
}

/// The content of `partition.metadata` (Kafka's format).
pub fn partition_metadata(topic_id: Uuid) -> String {
    format!(
        "version: 0\ntopic_id: {}\n",
        crate::ids::kafka_uuid_string(topic_id)
    )
}

/// Reads the topic id from a partition directory's `partition.metadata`.
pub fn read_topic_id(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Uuid>> {
    let path = dir.join(PARTITION_METADATA);
    if !fs.exists(&path) {
        return Ok(None);
    }
    let text = String::from_utf8(read_file(fs, &path)?).unwrap_or_default();
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .and_then(|v| crate::ids::parse_kafka_uuid(v.trim()));
    match id {
        Some(id) => Ok(Some(id)),
        None => Err(Error::ParseFile {
            path,
            reason: "no valid topic_id line".into(),
        }),
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::WriteFile {
        path: path.to_path_buf(),
        source,
    }
}

impl PartitionLog {
    /// Creates the directory and first segment of a new partition replica, durably.
    pub fn create(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        topic_id: Uuid,
        config: LogConfig,
    ) -> Result<PartitionLog> {
        if fs.exists(dir) {
            // Creating over a directory would truncate its first segment: whatever is
            // there is opened (or set aside), never overwritten.
            return Err(Error::Startup {
                reason: format!(
                    "cannot create the partition log {}: the directory exists",
                    dir.display()
                ),
            });
        }
        create_dir_durable(fs.as_ref(), dir)?;
        write_atomic(
            fs.as_ref(),
            &dir.join(PARTITION_METADATA),
            partition_metadata(topic_id).as_bytes(),
        )?;
        let segment = Segment::create(fs.as_ref(), dir, 0).map_err(io_err(dir))?;
        fs.sync_dir(dir).map_err(|source| Error::SyncDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let epochs = LeaderEpochCache::load(fs.clone(), dir);
        let mut segments = BTreeMap::new();
        segments.insert(0, segment);
        Ok(PartitionLog {
            fs,
            dir: dir.to_path_buf(),
            topic_id,
            config,
            segments,
            log_start_offset: 0,
            epochs,
            durable_offset: 0,
            recovery_point: 0,
            pending_files: Vec::new(),
            dir_sync_pending: false,
            pending_snapshots: Vec::new(),
            epochs_dirty: false,
            offline: false,
            flush_in_flight: false,
            producers: ProducerState::default(),
            first_dirty: 0,
            tombstones_due_at: None,
        })
    }

    /// Writes the producer state as of the log end (at a clean close).
    fn snapshot_producers(&self) -> Result<()> {
        let path = self.dir.join(snapshot_name(self.log_end_offset()));
        write_atomic(self.fs.as_ref(), &path, &self.producers.encode())
    }

    fn active(&self) -> &Segment {
        // A log always holds at least one segment: create and open insert one.
        self.segments
            .values()
            .next_back()
            .unwrap_or_else(|| unreachable!("a partition log without segments"))
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .unwrap_or_else(|| unreachable!("a partition log without segments"))
    }

    /// Whether a batch of `size` bytes ending at `last_offset` starts a new segment.
    fn should_roll(&self, size: usize, last_offset: i64, now_ms: i64) -> bool {
        let active = self.active();
        if active.is_empty() {
            return false;
        }
        let too_big = active.size() + size as u64 > self.config.segment_bytes;
        let too_old = active
            .first_batch_timestamp()
            .is_some_and(|first| now_ms.saturating_sub(first) >= self.config.segment_ms);
        let offsets_overflow = last_offset - active.base_offset() > i64::from(i32::MAX);
        too_big || too_old || offsets_overflow
    }

    /// Starts a new segment at the log end.
    fn roll(&mut self) -> Result<()> {
        self.roll_at(self.log_end_offset())
    }

    /// Starts a new segment at `base` (at or past the log end). Nothing is synced here:
    /// the old segment's files, the new directory entry and the producer-state snapshot
    /// of this offset go to the next flush.
    fn roll_at(&mut self, base: i64) -> Result<()> {
        let old_files = self.active().files();
        let segment =
            Segment::create(self.fs.as_ref(), &self.dir, base).map_err(io_err(&self.dir))?;
        self.pending_files.extend(old_files);
        self.dir_sync_pending = true;
        self.pending_snapshots.push((base, self.producers.encode()));
        self.segments.insert(base, segment);
        Ok(())
    }

    /// Appends a validated batch as the leader of `leader_epoch`: checks an idempotent
    /// producer's sequence, stamps its base offset and epoch (and LogAppendTime if the
    /// topic asks for it) in place, then writes it. A producer's retry of a batch already
    /// in the log is answered with the original offsets and not written again.
    pub fn append_as_leader(
        &mut self,
        batch: &mut [u8],
        valid: &ValidBatch,
        leader_epoch: i32,
        now_ms: i64,
        log_append_time: bool,
    ) -> Result<AppendInfo, AppendError> {
        if self.offline {
            return Err(AppendError::Storage(Error::LogOffline {
                partition: self.dir.display().to_string(),
            }));
        }
        let header = valid.header;
        if header.has_producer_id() {
            match self
                .producers
                .check(&header)
                .map_err(AppendError::Sequence)?
            {
                Check::Duplicate(original) => {
                    return Ok(AppendInfo {
                        base_offset: original.first_offset,
                        last_offset: original.last_offset,
                        log_append_time_ms: -1,
                        duplicate: true,
                    })
                }
                Check::Append => {}
            }
        }
        self.write_batch(batch, valid, leader_epoch, now_ms, log_append_time)
            .inspect_err(|_| self.offline = true)
            .map_err(AppendError::Storage)
    }

    fn write_batch(
        &mut self,
        batch: &mut [u8],
        valid: &ValidBatch,
        leader_epoch: i32,
        now_ms: i64,
        log_append_time: bool,
    ) -> Result<AppendInfo> {
        let header = valid.header;
        let last_offset = self.log_end_offset() + i64::from(header.last_offset_delta);
        if self.should_roll(batch.len(), last_offset, now_ms) {
            self.roll()?;
        }
        let base_offset = self.log_end_offset();
        let count = i64::from(header.last_offset_delta) + 1;
        batch::set_base_offset(batch, base_offset);
        batch::set_partition_leader_epoch(batch, leader_epoch);
        let mut log_append_time_ms = -1;
        let (max_timestamp, offset_of_max) = if log_append_time {
            batch::set_log_append_time(batch, now_ms);
            log_append_time_ms = now_ms;
            (now_ms, base_offset)
        } else {
            // The producer's claim drives ListOffsets, retention and segment.ms: store
            // what the records say (validation walked them all).
            batch::set_max_timestamp(batch, valid.max_timestamp);
            (
                valid.max_timestamp,
                base_offset + i64::from(valid.offset_delta_of_max_timestamp),
            )
        };
        self.epochs_dirty |= self.epochs.assign(leader_epoch, base_offset);
        let meta = AppendMeta {
            base_offset,
            next_offset: base_offset + count,
            max_timestamp,
            offset_of_max_timestamp: offset_of_max,
        };
        let interval = self.config.index_interval_bytes;
        self.active_mut()
            .append(batch, &meta, interval)
            .map_err(|source| Error::WriteFile {
                path: self.dir.clone(),
                source,
            })?;
        let last_offset = base_offset + count - 1;
        if header.has_producer_id() {
            self.producers.record(&header, base_offset, last_offset);
        }
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms,
            duplicate: false,
        })
    }

    /// Forgets producers idle longer than `expiration_ms`; returns how many.
    pub fn expire_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producers.expire(now_ms, expiration_ms)
    }

    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// Where to read `offset` from: the segment holding it, found under the lock and
    /// read after it. `Ok(None)` when the offset is the log end (nothing to read yet).
    pub fn read_plan(&self, offset: i64) -> Result<Option<ReadPlan>, ReadError> {
        let log_end = self.log_end_offset();
        if offset < self.log_start_offset || offset > log_end {
            return Err(ReadError::OffsetOutOfRange {
                log_start: self.log_start_offset,
                log_end,
            });
        }
        if offset == log_end {
            return Ok(None);
        }
        let segment = self
            .segments
            .range(..=offset)
            .next_back()
            .map(|(_, s)| s)
            .filter(|s| offset < s.next_offset())
            .or_else(|| {
                self.segments
                    .range(offset..)
                    .map(|(_, s)| s)
                    .find(|s| !s.is_empty())
            });
        Ok(segment.map(|s| s.read_plan(offset)))
    }

    /// Where the largest record timestamp below `upto` (the high watermark) can be, for
    /// ListOffsets MAX_TIMESTAMP, planned under the lock and scanned after it: the best
    /// of the segments wholly below `upto` (timestamp, an offset at or before its record,
    /// the segment's plan; the earliest wins a tie), and the plan of the segment holding
    /// `upto`, whose batches below it [`max_timestamp_in`] reads.
    pub fn max_timestamp_plan(
        &self,
        upto: i64,
    ) -> (Option<(i64, i64, ReadPlan)>, Option<ReadPlan>) {
        let mut best: Option<(i64, i64, ReadPlan)> = None;
        let mut partial = None;
        for segment in self.segments.values() {
            if segment.is_empty() || segment.base_offset() >= upto {
                break;
            }
            if segment.next_offset() > upto {
                partial = Some(segment.read_plan(segment.base_offset()));
                break;
            }
            let (timestamp, offset) = (segment.max_timestamp(), segment.offset_of_max_timestamp());
            if timestamp < 0 || offset < self.log_start_offset {
                continue;
            }
            if best.as_ref().is_none_or(|b| timestamp > b.0) {
                best = Some((timestamp, offset, segment.read_plan(offset)));
            }
        }
        (best, partial)
    }

    /// Plans for finding the first record at or after `timestamp`: every segment that
    /// could hold one, in order, with the offset its time index says to scan from.
    pub fn timestamp_plans(&self, timestamp: i64) -> Vec<(i64, ReadPlan)> {
        self.segments
            .values()
            .filter(|s| !s.is_empty() && s.max_timestamp() >= timestamp)
            .map(|s| {
                let from = s.time_lookup(timestamp).max(self.log_start_offset);
                (from, s.read_plan(from))
            })
            .collect()
    }

    /// Deletes the replica's directory (its topic was deleted): renamed aside first so a
    /// crash half-way leaves no directory that looks like a live partition.
    pub fn delete_dir(&mut self) -> Result<()> {
        self.offline = true;
        let mut name = self
            .dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        name.push_str(&format!(
            ".{}-delete",
            crate::ids::kafka_uuid_string(self.topic_id)
        ));
        let aside = self.dir.with_file_name(name);
        self.fs
            .rename(&self.dir, &aside)
            .map_err(|source| Error::RenameFile {
                from: self.dir.clone(),
                to: aside.clone(),
                source,
            })?;
        sync_parent(self.fs.as_ref(), &self.dir)?;
        self.fs
            .remove_dir_all(&aside)
            .map_err(|source| Error::RemoveFile {
                path: aside.clone(),
                source,
            })?;
        info!(dir = %self.dir.display(), "deleted partition directory");
        Ok(())
    }

    /// Takes the work for one flush, or `None` when everything is durable.
    pub fn take_flush(&mut self) -> Option<FlushTicket> {
        if self.offline {
            return None;
        }
        let target = self.log_end_offset();
        if target == self.durable_offset
            && self.pending_files.is_empty()
            && !self.dir_sync_pending
            && self.pending_snapshots.is_empty()
            && !self.epochs_dirty
        {
            return None;
        }
        let mut writes: Vec<(PathBuf, Vec<u8>)> = std::mem::take(&mut self.pending_snapshots)
            .into_iter()
            .map(|(offset, bytes)| (self.dir.join(snapshot_name(offset)), bytes))
            .collect();
        if std::mem::take(&mut self.epochs_dirty) {
            writes.push((self.epochs.path().to_path_buf(), self.epochs.encode()));
        }
        let mut files = std::mem::take(&mut self.pending_files);
        files.push(self.active().log_file().clone());
        let dir = std::mem::take(&mut self.dir_sync_pending).then(|| self.dir.clone());
        self.flush_in_flight = true;
        Some(FlushTicket {
            writes,
            files,
            dir,
            partition_dir: self.dir.clone(),
            topic_id: self.topic_id,
            target_offset: target,
            recovery_point: self.active().base_offset(),
        })
    }

    /// Records a flush's outcome. A failed flush takes the log offline.
    pub fn finish_flush(&mut self, ticket: &FlushTicket, ok: bool) {
        self.flush_in_flight = false;
        if !ok {
            self.offline = true;
            return;
        }
        self.durable_offset = self.durable_offset.max(ticket.target_offset);
        self.recovery_point = self.recovery_point.max(ticket.recovery_point);
    }

    /// Syncs everything (segments, indexes, directory) for a clean shutdown, with a
    /// producer-state snapshot at the log end so the next start replays nothing.
    pub fn close(&mut self) -> Result<()> {
        self.snapshot_producers()?;
        if std::mem::take(&mut self.epochs_dirty) {
            self.epochs.persist()?;
        }
        self.pending_snapshots.clear();
        for segment in self.segments.values() {
            segment.sync_all().map_err(|source| Error::SyncFile {
                path: self.dir.clone(),
                source,
            })?;
        }
        sync_parent(self.fs.as_ref(), &self.dir.join(PARTITION_METADATA))?;
        self.durable_offset = self.log_end_offset();
        self.recovery_point = self.log_end_offset();
        self.pending_files.clear();
        self.dir_sync_pending = false;
        Ok(())
    }

    /// A segment rolled since the last flush: its files (and the producer snapshot) wait
    /// for the flusher. Interval mode flushes then, as Kafka flushes a segment at roll,
    /// so the recovery point (and compaction, which stays below it) moves on.
    pub fn has_pending_roll(&self) -> bool {
        !self.pending_files.is_empty()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn durable_offset(&self) -> i64 {
        self.durable_offset
    }

    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// The entries of this log's directory.
    fn dir_entries(&self) -> Result<Vec<crate::fsio::DirEntry>> {
        self.fs
            .list_dir(&self.dir)
            .map_err(|source| Error::ReadDir {
                path: self.dir.clone(),
                source,
            })
    }

    /// Whether a flush ticket is out (see [`PartitionLog::truncate_to`]).
    pub fn flush_in_flight(&self) -> bool {
        self.flush_in_flight
    }

    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// Marks the log offline after an I/O failure outside the log's own calls.
    pub fn set_offline(&mut self) {
        self.offline = true;
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest().map(|e| e.epoch)
    }

    pub fn epochs(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    /// The leader epoch of the batch holding `offset`, from the epoch cache.
    pub fn epoch_of(&self, offset: i64) -> Option<i32> {
        let entries = self.epochs.entries();
        let idx = entries.partition_point(|e| e.start_offset <= offset);
        (idx > 0).then(|| entries[idx - 1].epoch)
    }

    pub fn topic_id(&self) -> Uuid {
        self.topic_id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// This replica leads `epoch` from now: the epoch starts at the current log end (a
    /// follower that diverged truncates to it even before the leader writes).
    pub fn begin_leader_epoch(&mut self, epoch: i32) {
        let log_end = self.log_end_offset();
        self.epochs_dirty |= self.epochs.assign(epoch, log_end);
    }

    /// Takes a changed topic configuration; the next append rolls and indexes by it.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }
}

/// Removes a segment's files (and its cleaned marker).
fn remove_segment(fs: &dyn FileSystem, dir: &Path, base: i64) -> Result<()> {
    remove_segment_files(fs, dir, base).map_err(|source| Error::RemoveFile {
        path: dir.join(super::segment::file_name(base, super::segment::LOG_SUFFIX)),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsio::sim::{CutMode, SimFs};
    use crate::fsio::RealFs;
    use crate::log::producer_state::parse_snapshot_name;
    use crate::log::segment::read_batches;
    use crate::records::batch::test_batches::uncompressed;
    use crate::records::batch::BatchHeader;
    use crate::records::validate::{validate_produce_batch, Limits};

    pub(super) fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 1024,
            segment_ms: i64::MAX,
            index_interval_bytes: 256,
            decompression_budget: 1 << 20,
        }
    }

    pub(super) fn limits() -> Limits {
        Limits {
            max_batch_bytes: 1 << 20,
            max_decompressed_bytes: 1 << 20,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            create_time: true,
            require_keys: false,
            now_ms: 0,
        }
    }

    fn append(log: &mut PartitionLog, value: &[u8]) -> AppendInfo {
        let mut batch = uncompressed(&[value, value], 1000);
        let valid = validate_produce_batch(&batch, &limits()).unwrap();
        log.append_as_leader(&mut batch, &valid, 3, 1000, false)
            .unwrap()
    }

    pub(super) fn flush(log: &mut PartitionLog, fs: &dyn FileSystem) {
        if let Some(ticket) = log.take_flush() {
            for (file, contents) in &ticket.writes {
                write_atomic(fs, file, contents).unwrap();
            }
            for f in &ticket.files {
                f.sync_data().unwrap();
            }
            if let Some(dir) = &ticket.dir {
                fs.sync_dir(dir).unwrap();
            }
            log.finish_flush(&ticket, true);
        }
    }

    #[test]
    fn appends_get_consecutive_offsets_across_segment_rolls() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(RealFs);
        let path = dir.path().join("t-0");
        let mut log = PartitionLog::create(fs.clone(), &path, Uuid::new_v4(), config()).unwrap();
        for i in 0..50 {
            let info = append(&mut log, format!("value-{i}").as_bytes());
            assert_eq!(info.base_offset, i * 2);
        }
        assert!(log.segment_count() > 1, "small segments must roll");
        assert_eq!(log.log_end_offset(), 100);
        assert_eq!(log.epochs().entries().len(), 1);

        for offset in [0, 1, 37, 99] {
            let plan = log.read_plan(offset).unwrap().unwrap();
            let read = read_batches(&plan, offset, 1 << 20, true, 100).unwrap();
            let first = BatchHeader::parse(&read.bytes).unwrap();
            assert!(first.base_offset <= offset && offset <= first.last_offset());
        }
        assert_eq!(
            log.read_plan(101).unwrap_err(),
            ReadError::OffsetOutOfRange {
                log_start: 0,
                log_end: 100
            }
        );
    }

    #[test]
    fn a_reopened_log_recovers_past_its_recovery_point_and_keeps_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(RealFs);
        let path = dir.path().join("t-0");
        let id = Uuid::new_v4();
        let mut log = PartitionLog::create(fs.clone(), &path, id, config()).unwrap();
        for i in 0..30 {
            append(&mut log, format!("v{i}-{}", "x".repeat(150)).as_bytes());
        }
        let bases: Vec<i64> = log.segments.keys().copied().collect();
        assert!(bases.len() >= 4, "small segments roll");
        flush(&mut log, fs.as_ref());
        drop(log);
        // Segments wholly below the recovery point are trusted, the rest recovered.
        let recovery_point = bases[2];
        let (log, report) = PartitionLog::open(
            fs,
            &path,
            id,
            config(),
            OpenOptions {
                clean_shutdown: false,
                recovery_point: Some(recovery_point),
                log_start_offset: None,
            },
        )
        .unwrap();
        assert_eq!(report.segments, bases.len());
        assert_eq!(
            report.recovered_segments,
            bases.len() - 2,
            "only the segments from the recovery point on are scanned"
        );
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(log.log_end_offset(), 60);
        assert_eq!(log.latest_epoch(), Some(3));
        for offset in [0, recovery_point, 59] {
            let plan = log.read_plan(offset).unwrap().unwrap();
            let read = read_batches(&plan, offset, 1 << 20, true, 60).unwrap();
            let first = BatchHeader::parse(&read.bytes).unwrap();
            assert!(first.base_offset <= offset && offset <= first.last_offset());
        }
    }

    #[test]
    fn a_segment_roll_syncs_nothing_and_the_next_flush_writes_its_snapshot() {
        let sim = SimFs::new();
        let root = PathBuf::from("/data");
        sim.create_dir_all(&root).unwrap();
        sim.sync_dir(Path::new("/")).unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
        let path = root.join("t-0");
        let mut log = PartitionLog::create(fs.clone(), &path, Uuid::new_v4(), config()).unwrap();
        let before = sim.stats();
        for i in 0..12 {
            append(
                &mut log,
                format!("value-{i:03}-{}", "x".repeat(100)).as_bytes(),
            );
        }
        assert!(log.segment_count() > 1, "rolled");
        let during = sim.stats();
        assert_eq!(
            (during.file_syncs, during.dir_syncs),
            (before.file_syncs, before.dir_syncs),
            "appends and rolls never fsync: that is the flusher's work"
        );
        let snapshots = |fs: &dyn FileSystem| {
            fs.list_dir(&path)
                .unwrap()
                .iter()
                .filter(|e| parse_snapshot_name(&e.name).is_some())
                .count()
        };
        assert_eq!(snapshots(fs.as_ref()), 0);
        let ticket = log.take_flush().unwrap();
        assert!(
            !ticket.writes.is_empty(),
            "the roll's snapshot and epochs ride the flush"
        );
        for (file, contents) in &ticket.writes {
            write_atomic(fs.as_ref(), file, contents).unwrap();
        }
        for f in &ticket.files {
            f.sync_data().unwrap();
        }
        if let Some(dir) = &ticket.dir {
            fs.sync_dir(dir).unwrap();
        }
        log.finish_flush(&ticket, true);
        assert_eq!(snapshots(fs.as_ref()), log.segment_count() - 1);
        assert!(fs.exists(&path.join(super::super::epochs::FILE_NAME)));
    }

    #[test]
    fn power_loss_keeps_exactly_what_was_flushed() {
        let sim = SimFs::new();
        let root = PathBuf::from("/data");
        sim.create_dir_all(&root).unwrap();
        sim.sync_dir(Path::new("/")).unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
        let path = root.join("t-0");
        let id = Uuid::new_v4();
        let mut log = PartitionLog::create(fs.clone(), &path, id, config()).unwrap();
        for i in 0..20 {
            append(&mut log, format!("v{i}").as_bytes());
        }
        flush(&mut log, fs.as_ref());
        let durable = log.durable_offset();
        assert_eq!(durable, 40);
        for i in 0..5 {
            append(&mut log, format!("lost{i}").as_bytes());
        }

        let after: Arc<dyn FileSystem> = Arc::new(sim.power_cut(CutMode::LoseUnsynced));
        let (log, _) =
            PartitionLog::open(after, &path, id, config(), OpenOptions::default()).unwrap();
        assert_eq!(log.log_end_offset(), durable);
    }

    #[test]
    fn torn_tails_are_cut_at_the_last_whole_batch() {
        for seed in 0..20 {
            let sim = SimFs::new();
            let root = PathBuf::from("/data");
            sim.create_dir_all(&root).unwrap();
            sim.sync_dir(Path::new("/")).unwrap();
            let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
            let path = root.join("t-0");
            let id = Uuid::new_v4();
            let mut log = PartitionLog::create(fs.clone(), &path, id, config()).unwrap();
            for i in 0..6 {
                append(&mut log, format!("v{i}").as_bytes());
            }
            flush(&mut log, fs.as_ref());
            let durable = log.durable_offset();
            for i in 0..6 {
                append(&mut log, format!("maybe{i}").as_bytes());
            }
            let after: Arc<dyn FileSystem> = Arc::new(sim.power_cut(CutMode::TornTail { seed }));
            let (log, _) =
                PartitionLog::open(after, &path, id, config(), OpenOptions::default()).unwrap();
            let end = log.log_end_offset();
            assert!(
                end >= durable,
                "seed {seed}: lost flushed data ({end} < {durable})"
            );
            assert_eq!(end % 2, 0, "seed {seed}: only whole batches survive");
            let plan = log.read_plan(0).unwrap().unwrap();
            let read = read_batches(&plan, 0, 1 << 20, true, end).unwrap();
            for step in crate::records::batch::BatchWalker::new(&read.bytes, true) {
                assert!(
                    matches!(step, crate::records::batch::Step::Batch { .. }),
                    "seed {seed}"
                );
            }
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(40))]

            /// Whatever the batch sizes, segment size and index interval, a reopened log
            /// (recovered from scratch) has the same end and serves every offset.
            #[test]
            fn a_reopened_log_serves_every_offset_it_was_given(
                sizes in proptest::collection::vec(1usize..6, 1..60),
                value_len in 1usize..300,
                segment_bytes in 300u64..5000,
                index_interval in 0u64..2000,
            ) {
                let dir = tempfile::tempdir().unwrap();
                let fs: Arc<dyn FileSystem> = Arc::new(RealFs);
                let config = LogConfig { segment_bytes, index_interval_bytes: index_interval, ..super::config() };
                let path = dir.path().join("p-0");
                let id = Uuid::new_v4();
                let mut log = PartitionLog::create(fs.clone(), &path, id, config).unwrap();
                let value = vec![b'v'; value_len];
                let mut expected = 0i64;
                for count in &sizes {
                    let values: Vec<&[u8]> = (0..*count).map(|_| value.as_slice()).collect();
                    let mut batch = uncompressed(&values, 1000);
                    let valid = validate_produce_batch(&batch, &limits()).unwrap();
                    let info = log.append_as_leader(&mut batch, &valid, 1, 1000, false).unwrap();
                    prop_assert_eq!(info.base_offset, expected);
                    expected += *count as i64;
                }
                drop(log);
                let (log, _) = PartitionLog::open(fs, &path, id, config, OpenOptions::default()).unwrap();
                prop_assert_eq!(log.log_end_offset(), expected);
                for offset in 0..expected {
                    let plan = log.read_plan(offset).unwrap().unwrap();
                    let read = read_batches(&plan, offset, 1, true, expected).unwrap();
                    let first = BatchHeader::parse(&read.bytes).unwrap();
                    prop_assert!(first.base_offset <= offset && offset <= first.last_offset());
                }
            }
        }
    }

    #[test]
    fn retention_deletes_old_and_excess_segments_but_never_the_active_one() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(RealFs);
        let path = dir.path().join("r-0");
        let mut log = PartitionLog::create(fs, &path, Uuid::new_v4(), config()).unwrap();
        for i in 0..40 {
            append(&mut log, format!("value-{i:04}").as_bytes());
        }
        let segments = log.segment_count();
        assert!(segments > 3);
        let by_size = log.apply_retention(1000, -1, 2000).unwrap();
        assert!(by_size.segments_deleted > 0);
        assert!(log.size_bytes() < 2000 + 1024);
        assert_eq!(log.log_start_offset(), by_size.log_start_offset);
        assert!(
            log.read_plan(0).is_err(),
            "offsets below the log start are out of range"
        );
        assert!(log.read_plan(log.log_start_offset()).unwrap().is_some());
        assert_eq!(
            log.epochs().entries()[0].start_offset,
            log.log_start_offset()
        );

        // Every record is stamped 1000 ms: at 10 s with 1 s retention all but the active go.
        let by_time = log.apply_retention(10_000, 1000, -1).unwrap();
        assert!(by_time.segments_deleted > 0);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.log_end_offset(), 80, "the end never moves");
    }

    #[test]
    fn a_segment_rolls_once_its_first_batch_is_older_than_segment_ms() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(RealFs);
        let config = LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 1000,
            ..config()
        };
        let mut log =
            PartitionLog::create(fs, &dir.path().join("t-0"), Uuid::new_v4(), config).unwrap();
        let mut batch = uncompressed(&[b"a"], 1000);
        let valid = validate_produce_batch(&batch, &limits()).unwrap();
        log.append_as_leader(&mut batch, &valid, 0, 1000, false)
            .unwrap();
        let mut batch = uncompressed(&[b"b"], 1500);
        let valid = validate_produce_batch(&batch, &limits()).unwrap();
        log.append_as_leader(&mut batch, &valid, 0, 1500, false)
            .unwrap();
        assert_eq!(log.segment_count(), 1, "younger than segment.ms");
        let mut batch = uncompressed(&[b"c"], 2100);
        let valid = validate_produce_batch(&batch, &limits()).unwrap();
        log.append_as_leader(&mut batch, &valid, 0, 2100, false)
            .unwrap();
        assert_eq!(log.segment_count(), 2, "rolled at segment.ms");
    }

    #[test]
    fn a_later_segment_surviving_a_short_earlier_one_is_dropped() {
        // The running system rolled twice; a directory fsync made both new segments'
        // entries durable, but the middle segment's data was never synced.
        let sim = SimFs::new();
        let root = PathBuf::from("/data");
        sim.create_dir_all(&root).unwrap();
        sim.sync_dir(Path::new("/")).unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
        let path = root.join("t-0");
        let id = Uuid::new_v4();
        let mut log = PartitionLog::create(fs.clone(), &path, id, config()).unwrap();
        for i in 0..12 {
            append(
                &mut log,
                format!("value-{i:03}-{}", "x".repeat(100)).as_bytes(),
            );
        }
        let ticket = log.take_flush().unwrap();
        for f in &ticket.files {
            f.sync_data().unwrap();
        }
        log.finish_flush(&ticket, true);
        let durable = log.durable_offset();
        let segments_before = log.segment_count();
        for i in 0..12 {
            append(
                &mut log,
                format!("later-{i:03}-{}", "y".repeat(100)).as_bytes(),
            );
        }
        assert!(
            log.segment_count() > segments_before + 1,
            "rolled at least twice"
        );
        // Only the directory is synced, as a concurrent flush's sync_dir would.
        sim.sync_dir(&path).unwrap();
        let after: Arc<dyn FileSystem> = Arc::new(sim.power_cut(CutMode::LoseUnsynced));
        let (log, report) =
            PartitionLog::open(after, &path, id, config(), OpenOptions::default()).unwrap();
        assert!(report.deleted_segments > 0);
        assert_eq!(
            log.log_end_offset(),
            durable,
            "no hole: the log ends where the data ends"
        );
        let plan = log.read_plan(0).unwrap().unwrap();
        let read = read_batches(&plan, 0, 1 << 20, true, durable).unwrap();
        assert!(!read.bytes.is_empty());
    }

    #[test]
    fn a_wrong_max_timestamp_claim_is_rewritten_from_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(RealFs);
        let mut log =
            PartitionLog::create(fs, &dir.path().join("t-0"), Uuid::new_v4(), config()).unwrap();
        let mut batch = uncompressed(&[b"a", b"b"], 5_000);
        // The header claims 0; the records say 5 000.
        batch[35..43].copy_from_slice(&0i64.to_be_bytes());
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        let valid = validate_produce_batch(&batch, &limits()).unwrap();
        log.append_as_leader(&mut batch, &valid, 0, 6_000, false)
            .unwrap();
        let plan = log.read_plan(0).unwrap().unwrap();
        let read = read_batches(&plan, 0, 1 << 20, true, 2).unwrap();
        let stored = BatchHeader::parse(&read.bytes).unwrap();
        assert_eq!(stored.max_timestamp, 5_000);
        assert!(crate::records::batch::BatchWalker::new(&read.bytes, true)
            .all(|s| matches!(s, crate::records::batch::Step::Batch { .. })));
        assert_eq!(log.timestamp_plans(4_000).len(), 1, "found by timestamp");
    }
}
