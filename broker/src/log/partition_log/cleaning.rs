//! Compaction as the log sees it: which closed segments a pass may rewrite, and
//! installing its output (the pass itself runs in `log/cleaner.rs`, outside the lock).

use std::path::PathBuf;
use std::sync::Arc;

use super::PartitionLog;
use crate::error::{Error, Result};
use crate::fsio::FileSystem;
use crate::log::cleaner::{self, CleanPlan, CleanPolicy, Input, Output};
use crate::log::segment::{remove_segment_files, Segment};

impl PartitionLog {
    /// What a cleaning pass should rewrite, if the log is due: closed segments that end
    /// at or below `upto` (the persisted recovery point) and are older than
    /// `min.compaction.lag.ms`, when the bytes written since the last pass reach
    /// `min.cleanable.dirty.ratio` of them or a dirty one is older than
    /// `max.compaction.lag.ms`. Groups hold consecutive segments up to `segment.bytes`.
    pub fn clean_plan(&self, upto: i64, now_ms: i64, policy: &CleanPolicy) -> Option<CleanPlan> {
        if self.offline {
            return None;
        }
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        let mut inputs: Vec<(&Segment, i64)> = Vec::new();
        for pair in bases.windows(2) {
            let (base, next) = (pair[0], pair[1]);
            let Some(segment) = self.segments.get(&base) else {
                break;
            };
            if next > upto
                || segment.max_timestamp() > now_ms.saturating_sub(policy.min_compaction_lag_ms)
            {
                break;
            }
            inputs.push((segment, next));
        }
        let total: u64 = inputs.iter().map(|(s, _)| s.size()).sum();
        let dirty: Vec<&(&Segment, i64)> = inputs
            .iter()
            .filter(|(s, _)| s.base_offset() >= self.first_dirty && !s.is_empty())
            .collect();
        let dirty_bytes: u64 = dirty.iter().map(|(s, _)| s.size()).sum();
        let tombstones_due = self.tombstones_due_at.is_some_and(|t| t <= now_ms);
        if dirty_bytes == 0 && !tombstones_due {
            return None;
        }
        let overdue = dirty.iter().any(|(s, _)| {
            s.first_batch_timestamp()
                .is_some_and(|t| now_ms.saturating_sub(t) >= policy.max_compaction_lag_ms)
        });
        if (dirty_bytes as f64) < policy.min_cleanable_ratio * total as f64
            && !overdue
            && !tombstones_due
        {
            return None;
        }
        let mut groups: Vec<Vec<Input>> = Vec::new();
        let mut group_size = 0u64;
        for (segment, next) in &inputs {
            let input = Input {
                base: segment.base_offset(),
                file: segment.log_file().clone(),
                size: segment.size(),
            };
            let fits = groups.last().is_some_and(|g| {
                group_size + segment.size() <= self.config.segment_bytes
                    && next - g[0].base <= i64::from(i32::MAX)
            });
            if fits {
                group_size += segment.size();
                if let Some(g) = groups.last_mut() {
                    g.push(input);
                }
            } else {
                group_size = segment.size();
                groups.push(vec![input]);
            }
        }
        Some(CleanPlan {
            fs: self.fs.clone(),
            dir: self.dir.clone(),
            groups,
            end: inputs.last().map_or(0, |(_, next)| *next),
            first_dirty: self.first_dirty,
            map_capacity: policy.map_capacity,
            index_interval: self.config.index_interval_bytes,
        })
    }

    /// Installs a pass's cleaned segments in one call (the lock held throughout): for
    /// tests and callers that hold the log exclusively. The broker splits it into
    /// [`PartitionLog::plan_install`], [`Install::run`] without the lock, and
    /// [`PartitionLog::finish_install`].
    pub fn install_cleaned(
        &mut self,
        outputs: &[Output],
        report: &cleaner::CleanReport,
    ) -> Result<()> {
        let install = self.plan_install(outputs)?;
        let done = install.run();
        self.finish_install(done, report)
    }

    /// What can be installed: the outputs, in order, up to the first whose inputs are no
    /// longer all there (retention or DeleteRecords removed one while the pass ran).
    /// Nothing after such an output is installed: an empty output after it would delete
    /// its inputs behind a segment without a cleaned marker, a gap recovery would take
    /// for a lost tail.
    pub fn plan_install(&self, outputs: &[Output]) -> Result<Install> {
        if self.offline {
            // The replica was deleted (or failed) while the pass ran: its directory may
            // now belong to a new incarnation of the topic, which must not get these.
            return Err(Error::LogOffline {
                partition: self.dir.display().to_string(),
            });
        }
        let active = self.active().base_offset();
        let total = outputs.len();
        let outputs: Vec<Output> = outputs
            .iter()
            .take_while(|o| {
                o.replaces
                    .iter()
                    .all(|b| *b != active && self.segments.contains_key(b))
            })
            .cloned()
            .collect();
        Ok(Install {
            fs: self.fs.clone(),
            dir: self.dir.clone(),
            index_interval: self.config.index_interval_bytes,
            complete: outputs.len() == total,
            outputs,
        })
    }

    /// Puts installed segments in place of the ones they replace.
    pub fn finish_install(
        &mut self,
        done: Result<Installed>,
        report: &cleaner::CleanReport,
    ) -> Result<()> {
        let installed = done?;
        for (output, segment) in installed.segments {
            for base in &output.replaces {
                self.segments.remove(base);
            }
            if let Some(segment) = segment {
                self.segments.insert(output.base, segment);
            }
        }
        if installed.complete {
            self.first_dirty = self.first_dirty.max(report.end);
            self.tombstones_due_at = report.next_tombstone_horizon;
            // Producer-state snapshots of rolls inside the cleaned range are never read
            // again: the snapshot of the active segment's roll is later.
            self.delete_snapshots_below(report.end)?;
        }
        Ok(())
    }
}

/// The file work of an install, done without the log's lock (the caller keeps other
/// housekeeping out: retention, DeleteRecords and deletion must not remove segments
/// meanwhile). Readers keep the old segments' files open until the map changes.
#[derive(Debug)]
pub struct Install {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    index_interval: u64,
    outputs: Vec<Output>,
    /// No output was left out.
    complete: bool,
}

/// Outputs installed on disk with their opened segments (`None`: an empty output whose
/// inputs were deleted); `complete` when every output of the pass was installed.
#[derive(Debug)]
pub struct Installed {
    segments: Vec<(Output, Option<Segment>)>,
    complete: bool,
}

impl Install {
    /// Commits each output (swap, delete the replaced segments, finish) and opens it. An
    /// error leaves half-installed outputs that only the next start completes.
    pub fn run(self) -> Result<Installed> {
        let Install {
            fs,
            dir,
            index_interval,
            outputs,
            complete,
        } = self;
        let io = |source| Error::WriteFile {
            path: dir.clone(),
            source,
        };
        let mut segments = Vec::with_capacity(outputs.len());
        for output in outputs {
            if !output.empty {
                cleaner::commit_swap(fs.as_ref(), &dir, output.base, output.end).map_err(io)?;
            }
            for base in &output.replaces {
                remove_segment_files(fs.as_ref(), &dir, *base).map_err(io)?;
            }
            if output.empty {
                fs.sync_dir(&dir).map_err(io)?;
                segments.push((output, None));
                continue;
            }
            cleaner::finish_swap(fs.as_ref(), &dir, output.base, Some(output.end)).map_err(io)?;
            let (mut segment, trusted) =
                Segment::open_trusted(fs.as_ref(), &dir, output.base).map_err(io)?;
            if !trusted {
                segment.recover(index_interval, &mut |_| {}).map_err(io)?;
            }
            segments.push((output, Some(segment)));
        }
        let staging = dir.join(cleaner::STAGING_DIR);
        if fs.exists(&staging) {
            fs.remove_dir_all(&staging).map_err(io)?;
        }
        Ok(Installed { segments, complete })
    }
}
