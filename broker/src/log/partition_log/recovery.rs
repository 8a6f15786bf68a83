//! Opening a partition log: completing an interrupted cleaning swap, trusting segments
//! below the recovery point, recovering the rest (CRC scan, index rebuild, torn tails
//! cut), and rebuilding the idempotent producers' state.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use tracing::{info, warn};
use uuid::Uuid;

use super::{
    io_err, remove_segment, LogConfig, OpenOptions, OpenReport, PartitionLog, ProducerState,
};
use crate::error::{Error, Result};
use crate::fsio::{read_file, FileSystem};
use crate::log::cleaner;
use crate::log::epochs::LeaderEpochCache;
use crate::log::producer_state::{parse_snapshot_name, snapshot_name};
use crate::log::segment::{
    cleaned_marker_path, parse_log_file_name, scan_batches, RecoveryReport, Segment,
};

impl PartitionLog {
    /// Opens an existing replica, recovering every segment that cannot be trusted.
    pub fn open(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        topic_id: Uuid,
        config: LogConfig,
        options: OpenOptions,
    ) -> Result<(PartitionLog, OpenReport)> {
        let mut report = OpenReport {
            completed_swaps: cleaner::finish_interrupted(fs.as_ref(), dir).map_err(io_err(dir))?,
            ..OpenReport::default()
        };
        let entries = fs.list_dir(dir).map_err(|source| Error::ReadDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut bases: Vec<i64> = Vec::new();
        for entry in &entries {
            if entry.name.ends_with(".tmp") {
                // A checkpoint write that never got renamed: the old file is still good.
                let _ = fs.remove_file(&dir.join(&entry.name));
            } else if let Some(base) = parse_log_file_name(&entry.name) {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let mut epochs = LeaderEpochCache::load(fs.clone(), dir);
        let mut segments: BTreeMap<i64, Segment> = BTreeMap::new();
        let recovery_point = if options.clean_shutdown {
            i64::MAX
        } else {
            options.recovery_point.unwrap_or(0)
        };
        let mut epochs_changed = false;
        let mut cut_at: Option<usize> = None;
        // The end of the segment before and whether a gap after it is compaction's.
        let mut previous: Option<(i64, bool)> = None;
        for (i, &base) in bases.iter().enumerate() {
            if let Some((end, cleaned)) = previous {
                // A gap is compaction's when the segment before it was written by the
                // cleaner (its marker), or when it lies below this log's own checkpointed
                // recovery point (everything there was synced whole; logs compacted
                // before markers existed rely on it).
                let below_recovery_point = options.recovery_point.is_some_and(|rp| base <= rp);
                if base < end || (base > end && !cleaned && !below_recovery_point) {
                    // A directory fsync persists every entry the directory holds, so
                    // after a power cut a later segment can exist while an earlier one
                    // lost its unsynced tail. Nothing in the lost part was acknowledged
                    // (the durable offset passes a segment only after its file was
                    // synced), and keeping the later segments would leave a hole of
                    // offsets that never existed (or an overlap): drop them.
                    warn!(
                        dir = %dir.display(),
                        base_offset = base,
                        expected = end,
                        "a segment does not start where the one before it ends; dropping it and later segments"
                    );
                    cut_at = Some(i);
                    break;
                }
            }
            let next_base = bases.get(i + 1).copied();
            let below_recovery_point =
                next_base.is_some_and(|n| n <= recovery_point) || options.clean_shutdown;
            let (mut segment, opened_whole) =
                Segment::open_trusted(fs.as_ref(), dir, base).map_err(io_err(dir))?;
            if !(below_recovery_point && opened_whole) {
                epochs_changed |= epochs.truncate_from_end(base);
                let recovered = segment
                    .recover(config.index_interval_bytes, &mut |h| {
                        epochs_changed |= epochs.assign(h.partition_leader_epoch, h.base_offset);
                    })
                    .map_err(io_err(dir))?;
                segment.sync_all().map_err(|source| Error::SyncFile {
                    path: dir.to_path_buf(),
                    source,
                })?;
                report.recovered_segments += 1;
                report_recovery(dir, base, &recovered);
                report.truncated_bytes += recovered.truncated_bytes;
                if recovered.truncated_bytes > 0 {
                    // A cut inside a segment: whatever follows cannot continue it.
                    segments.insert(base, segment);
                    cut_at = Some(i + 1);
                    break;
                }
            }
            let cleaned = fs.exists(&cleaned_marker_path(dir, base));
            previous = Some((segment.next_offset(), cleaned));
            segments.insert(base, segment);
        }
        if let Some(first_deleted) = cut_at {
            for &base in &bases[first_deleted..] {
                warn!(dir = %dir.display(), base_offset = base, "deleting a segment after a truncated one");
                remove_segment(fs.as_ref(), dir, base)?;
                report.deleted_segments += 1;
            }
        }
        if segments.is_empty() {
            let base = options.log_start_offset.unwrap_or(0).max(0);
            let segment = Segment::create(fs.as_ref(), dir, base).map_err(io_err(dir))?;
            segments.insert(base, segment);
        }
        let log_end = segments
            .values()
            .next_back()
            .map_or(0, Segment::next_offset);
        epochs_changed |= epochs.truncate_from_end(log_end);
        if epochs_changed {
            epochs.persist()?;
        }
        if !options.clean_shutdown {
            // Recovery may have removed temporary files, stale snapshots or segments.
            fs.sync_dir(dir).map_err(|source| Error::SyncDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let first_base = segments.keys().next().copied().unwrap_or(0);
        let log_start_offset = options
            .log_start_offset
            .unwrap_or(first_base)
            .clamp(first_base, log_end);
        report.segments = segments.len();
        let mut log = PartitionLog {
            fs,
            dir: dir.to_path_buf(),
            topic_id,
            config,
            segments,
            log_start_offset,
            epochs,
            // Trusted segments were synced before the recovery point or clean shutdown
            // was recorded; recovered ones were synced just now.
            durable_offset: log_end,
            recovery_point: log_end,
            pending_files: Vec::new(),
            dir_sync_pending: false,
            pending_snapshots: Vec::new(),
            epochs_dirty: false,
            offline: false,
            flush_in_flight: false,
            producers: ProducerState::default(),
            first_dirty: 0,
            tombstones_due_at: None,
        };
        log.rebuild_producer_state(&entries)?;
        Ok((log, report))
    }

    /// Loads the latest usable producer-state snapshot and replays the batches after it.
    /// Snapshots past the log end (left by a truncation) are deleted.
    pub(super) fn rebuild_producer_state(
        &mut self,
        entries: &[crate::fsio::DirEntry],
    ) -> Result<()> {
        let log_end = self.log_end_offset();
        let mut snapshots: Vec<i64> = entries
            .iter()
            .filter_map(|e| parse_snapshot_name(&e.name))
            .collect();
        snapshots.sort_unstable();
        let mut from = self.log_start_offset;
        let mut loaded = ProducerState::default();
        for &offset in snapshots.iter().rev() {
            let path = self.dir.join(snapshot_name(offset));
            if offset > log_end {
                self.fs
                    .remove_file(&path)
                    .map_err(|source| Error::RemoveFile { path, source })?;
                continue;
            }
            if let Some(state) = read_file(self.fs.as_ref(), &path)
                .ok()
                .and_then(|raw| ProducerState::decode(&raw))
            {
                loaded = state;
                from = offset;
                break;
            }
            warn!(path = %path.display(), "ignoring a damaged producer-state snapshot");
        }
        for segment in self.segments.values().filter(|s| s.next_offset() > from) {
            let plan = segment.read_plan(from);
            scan_batches(
                plan.file.as_ref(),
                plan.hint_pos,
                plan.end_pos,
                false,
                &mut |_, header, _| {
                    if header.base_offset >= from && header.has_producer_id() {
                        loaded.record(header, header.base_offset, header.last_offset());
                    }
                    Ok(true)
                },
            )
            .map_err(|source| Error::ReadFile {
                path: self.dir.clone(),
                source,
            })?;
        }
        self.producers = loaded;
        Ok(())
    }
}

fn report_recovery(dir: &Path, base: i64, report: &RecoveryReport) {
    if report.truncated_bytes > 0 {
        warn!(
            dir = %dir.display(),
            base_offset = base,
            valid_batches = report.batches,
            valid_bytes = report.valid_bytes,
            truncated_bytes = report.truncated_bytes,
            reason = report.reason.unwrap_or("unknown"),
            "recovery truncated a segment"
        );
    } else {
        info!(
            dir = %dir.display(),
            base_offset = base,
            valid_batches = report.batches,
            valid_bytes = report.valid_bytes,
            "recovered a segment"
        );
    }
}
