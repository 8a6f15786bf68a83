//! The leader epoch cache of a partition and its `leader-epoch-checkpoint`.
//!
//! Each entry says "leader epoch E wrote its first batch at offset O". A leader adds an
//! entry when it appends the first batch of a new epoch; recovery re-derives entries from
//! the batches it scans, and truncation drops entries past the new end. Followers will use
//! `end_offset_for` to truncate by epoch (KIP-101/279) rather than to their high watermark.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::warn;

use super::checkpoint::{encode_lines, read_lines};
use crate::error::Result;
use crate::fsio::{write_atomic, FileSystem};

pub const FILE_NAME: &str = "leader-epoch-checkpoint";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

#[derive(Debug)]
pub struct LeaderEpochCache {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint in `dir`. A damaged file is logged and treated as empty: the
    /// recovery scan rebuilds the entries from the batches' epochs.
    pub fn load(fs: Arc<dyn FileSystem>, dir: &Path) -> LeaderEpochCache {
        let path = dir.join(FILE_NAME);
        let entries = match read_lines(fs.as_ref(), &path) {
            Ok(Some(lines)) => parse(&lines).unwrap_or_else(|| {
                warn!(path = %path.display(), "leader epoch checkpoint is damaged; rebuilding it from the log");
                Vec::new()
            }),
            Ok(None) => Vec::new(),
            Err(err) => {
                warn!(path = %path.display(), error = %err, "failed to read the leader epoch checkpoint; rebuilding it from the log");
                Vec::new()
            }
        };
        LeaderEpochCache { fs, path, entries }
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Notes that `epoch` starts at `start_offset`. Returns whether the cache changed
    /// (and so needs [`LeaderEpochCache::persist`]). Older or equal epochs are ignored.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || self.latest().is_some_and(|l| epoch <= l.epoch) {
            return false;
        }
        // An entry may not start before a later-numbered one ends: drop any whose start
        // is not below the new start (left by a truncated log).
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Drops entries starting at or after `end_offset` (the log was cut there).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        before != self.entries.len()
    }

    /// Forgets epochs wholly before `start_offset` (the log start moved there): the
    /// entry covering it now starts at it. Returns whether the cache changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let covering = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        if covering == 0 {
            return false;
        }
        let before = self.entries.clone();
        self.entries.drain(..covering - 1);
        self.entries[0].start_offset = start_offset;
        before != self.entries
    }

    /// Drops all entries (before a rebuild from the log).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The largest epoch at or below `epoch` and the offset where the next epoch starts
    /// (or `log_end` if it is the latest): what a follower must truncate to.
    pub fn end_offset_for(&self, epoch: i32, log_end: i64) -> Option<(i32, i64)> {
        let idx = self.entries.partition_point(|e| e.epoch <= epoch);
        if idx == 0 {
            return None;
        }
        let found = self.entries[idx - 1];
        let end = self
            .entries
            .get(idx)
            .map_or(log_end, |next| next.start_offset);
        Some((found.epoch, end))
    }

    pub fn persist(&self) -> Result<()> {
        write_atomic(self.fs.as_ref(), &self.path, &self.encode())
    }

    /// The checkpoint's contents, for a writer that runs outside the log's lock.
    pub fn encode(&self) -> Vec<u8> {
        let lines: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{} {}", e.epoch, e.start_offset))
            .collect();
        encode_lines(&lines)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn parse(lines: &[String]) -> Option<Vec<EpochEntry>> {
    let mut entries: Vec<EpochEntry> = Vec::new();
    for line in lines {
        let (epoch, offset) = line.split_once(' ')?;
        let entry = EpochEntry {
            epoch: epoch.trim().parse().ok()?,
            start_offset: offset.trim().parse().ok()?,
        };
        if entries
            .last()
            .is_some_and(|l| entry.epoch <= l.epoch || entry.start_offset < l.start_offset)
        {
            return None;
        }
        entries.push(entry);
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsio::RealFs;

    #[test]
    fn entries_persist_and_answer_end_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(RealFs);
        let mut cache = LeaderEpochCache::load(fs.clone(), dir.path());
        assert!(cache.assign(0, 0));
        assert!(!cache.assign(0, 5));
        assert!(cache.assign(2, 10));
        cache.persist().unwrap();

        let cache = LeaderEpochCache::load(fs, dir.path());
        assert_eq!(cache.entries().len(), 2);
        assert_eq!(cache.end_offset_for(0, 20), Some((0, 10)));
        assert_eq!(cache.end_offset_for(1, 20), Some((0, 10)));
        assert_eq!(cache.end_offset_for(2, 20), Some((2, 20)));
        assert_eq!(cache.end_offset_for(-1, 20), None);
    }

    #[test]
    fn a_damaged_checkpoint_loads_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "0\n1\nnonsense\n").unwrap();
        let cache = LeaderEpochCache::load(Arc::new(RealFs), dir.path());
        assert!(cache.entries().is_empty());
    }

    #[test]
    fn truncation_drops_later_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::load(Arc::new(RealFs), dir.path());
        cache.assign(1, 0);
        cache.assign(2, 50);
        assert!(cache.truncate_from_end(50));
        assert_eq!(
            cache.latest(),
            Some(EpochEntry {
                epoch: 1,
                start_offset: 0
            })
        );
    }
}
