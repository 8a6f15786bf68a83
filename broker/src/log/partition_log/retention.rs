//! The start of a partition log: retention by time and size, DeleteRecords moving the
//! log start, and the producer-state snapshots and epochs below it going with it.

use tracing::info;

use super::{remove_segment, PartitionLog, RetentionReport};
use crate::error::{Error, Result};
use crate::log::producer_state::{parse_snapshot_name, snapshot_name};

impl PartitionLog {
    /// Deletes whole leading segments (never the active one) whose newest record is older
    /// than `retention_ms`, then while the log is larger than `retention_bytes` (-1
    /// disables either rule), and moves the log start offset past them. Readers holding
    /// a deleted segment's file keep reading it: the file is unlinked, not truncated.
    pub fn apply_retention(
        &mut self,
        now_ms: i64,
        retention_ms: i64,
        retention_bytes: i64,
    ) -> Result<RetentionReport> {
        if self.offline {
            return Err(Error::LogOffline {
                partition: self.dir.display().to_string(),
            });
        }
        let mut report = RetentionReport {
            log_start_offset: self.log_start_offset,
            ..RetentionReport::default()
        };
        let mut size: u64 = self.size_bytes();
        loop {
            if self.segments.len() <= 1 {
                break;
            }
            let Some(first) = self.segments.values().next() else {
                break;
            };
            let expired = retention_ms >= 0
                && !first.is_empty()
                && now_ms.saturating_sub(first.max_timestamp()) > retention_ms;
            let oversize =
                retention_bytes >= 0 && size.saturating_sub(first.size()) >= retention_bytes as u64;
            let below_start = first.next_offset() <= self.log_start_offset;
            if !(expired || oversize || below_start) {
                break;
            }
            let base = first.base_offset();
            let removed_bytes = first.size();
            self.segments.remove(&base);
            remove_segment(self.fs.as_ref(), &self.dir, base)?;
            size -= removed_bytes;
            report.segments_deleted += 1;
            report.bytes_deleted += removed_bytes;
        }
        if report.segments_deleted > 0 {
            let first_base = self.segments.keys().next().copied().unwrap_or(0);
            self.log_start_offset = self.log_start_offset.max(first_base);
            self.delete_snapshots_below(self.log_start_offset)?;
            self.epochs_dirty |= self.epochs.truncate_from_start(self.log_start_offset);
            report.log_start_offset = self.log_start_offset;
            info!(
                dir = %self.dir.display(),
                segments = report.segments_deleted,
                bytes = report.bytes_deleted,
                log_start_offset = self.log_start_offset,
                "retention deleted segments"
            );
        }
        Ok(report)
    }

    /// Moves the log start offset to `offset` (DeleteRecords), which the caller checked is
    /// at most the high watermark: offsets below it are no longer served, whole segments
    /// below it are deleted, and epochs and producers wholly below it are forgotten.
    pub fn advance_log_start(&mut self, offset: i64) -> Result<i64> {
        if self.offline {
            return Err(Error::LogOffline {
                partition: self.dir.display().to_string(),
            });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.log_start_offset = offset.min(self.log_end_offset());
        self.epochs_dirty |= self.epochs.truncate_from_start(self.log_start_offset);
        self.producers.remove_below(self.log_start_offset);
        self.apply_retention(0, -1, -1)?;
        self.delete_snapshots_below(self.log_start_offset)?;
        Ok(self.log_start_offset)
    }

    /// Deletes producer-state snapshots older than `offset` (their segments are gone).
    pub(super) fn delete_snapshots_below(&mut self, offset: i64) -> Result<()> {
        self.pending_snapshots.retain(|(o, _)| *o >= offset);
        for offset in self
            .dir_entries()?
            .iter()
            .filter_map(|e| parse_snapshot_name(&e.name))
            .filter(|o| *o < offset)
        {
            let path = self.dir.join(snapshot_name(offset));
            self.fs
                .remove_file(&path)
                .map_err(|source| Error::RemoveFile { path, source })?;
        }
        Ok(())
    }
}
