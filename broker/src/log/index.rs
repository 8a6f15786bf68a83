//! The sparse offset index (`.index`) and time index (`.timeindex`) of a segment.
//!
//! Formats, as Kafka's:
//! - `.index`: 8-byte entries, `relative_offset: u32` (to the segment's base offset) and
//!   `position: u32` (byte position of a batch in the `.log`), one every
//!   `index.interval.bytes` of log; the offset is the batch's base offset.
//! - `.timeindex`: 12-byte entries, `timestamp: i64` and `relative_offset: u32`, appended
//!   when the segment's max timestamp grows at an index point, so timestamps increase.
//!
//! Neither is checksummed nor fsynced with the log: after an unclean stop, every segment
//! past the recovery point has its indexes rebuilt from the log, and an index that fails
//! its sanity checks on load is rebuilt too. Entries live in memory for lookups; the file
//! is only appended to and read back at open.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fsio::{read_exact_at, FileSystem, LogFile, OpenMode};

/// A fixed-size index entry.
trait Entry: Copy + std::fmt::Debug {
    const SIZE: usize;
    fn decode(raw: &[u8]) -> Self;
    fn encode(&self) -> Vec<u8>;
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// (relative offset, position).
impl Entry for (u32, u32) {
    const SIZE: usize = 8;
    fn decode(raw: &[u8]) -> Self {
        (u32_at(raw, 0), u32_at(raw, 4))
    }
    fn encode(&self) -> Vec<u8> {
        [self.0.to_be_bytes(), self.1.to_be_bytes()].concat()
    }
}

/// (timestamp, relative offset).
impl Entry for (i64, u32) {
    const SIZE: usize = 12;
    fn decode(raw: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&raw[..8]);
        (i64::from_be_bytes(ts), u32_at(raw, 8))
    }
    fn encode(&self) -> Vec<u8> {
        [&self.0.to_be_bytes()[..], &self.1.to_be_bytes()[..]].concat()
    }
}

/// An index file of fixed-size entries, mirrored in memory.
#[derive(Debug)]
struct IndexFile<E> {
    path: PathBuf,
    file: Arc<dyn LogFile>,
    entries: Vec<E>,
}

impl<E: Entry> IndexFile<E> {
    /// Opens (or creates) the file; the entries on disk, or `None` if the file is not a
    /// whole number of entries. The in-memory mirror starts empty: the caller checks the
    /// entries and keeps them only if they make sense.
    fn open(fs: &dyn FileSystem, path: &Path) -> io::Result<(IndexFile<E>, Option<Vec<E>>)> {
        let file = fs.open(path, OpenMode::Create)?;
        let len = usize::try_from(file.len()?).map_err(io::Error::other)?;
        let on_disk = if len % E::SIZE == 0 {
            let mut raw = vec![0; len];
            read_exact_at(file.as_ref(), &mut raw, 0)?;
            Some(raw.chunks_exact(E::SIZE).map(E::decode).collect())
        } else {
            None
        };
        let index = IndexFile {
            path: path.to_path_buf(),
            file,
            entries: Vec::new(),
        };
        Ok((index, on_disk))
    }

    fn push(&mut self, entry: E) -> io::Result<()> {
        self.file
            .write_all_at(&entry.encode(), (self.entries.len() * E::SIZE) as u64)?;
        self.entries.push(entry);
        Ok(())
    }

    fn truncate(&mut self, keep: usize) -> io::Result<()> {
        if keep < self.entries.len() {
            self.entries.truncate(keep);
            self.file.set_len((keep * E::SIZE) as u64)?;
        }
        Ok(())
    }
}

/// Offset → position, sparse.
#[derive(Debug)]
pub struct OffsetIndex {
    index: IndexFile<(u32, u32)>,
    base_offset: i64,
}

impl OffsetIndex {
    /// Opens (or creates) the index. `valid` is false when the file failed its sanity
    /// checks against a log of `log_size` bytes and must be rebuilt.
    pub fn open(
        fs: &dyn FileSystem,
        path: &Path,
        base_offset: i64,
        log_size: u64,
    ) -> io::Result<(OffsetIndex, bool)> {
        let (mut index, on_disk) = IndexFile::<(u32, u32)>::open(fs, path)?;
        let whole = on_disk.is_some();
        let entries = on_disk.unwrap_or_default();
        let increasing = entries
            .windows(2)
            .all(|w| w[1].0 > w[0].0 && w[1].1 > w[0].1);
        let inside = entries.iter().all(|e| u64::from(e.1) < log_size);
        let valid = whole && increasing && inside;
        if valid {
            index.entries = entries;
        }
        Ok((OffsetIndex { index, base_offset }, valid))
    }

    pub fn path(&self) -> &Path {
        &self.index.path
    }

    pub fn file(&self) -> &Arc<dyn LogFile> {
        &self.index.file
    }

    pub fn len(&self) -> usize {
        self.index.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.entries.is_empty()
    }

    /// Adds an entry for the batch starting at `offset` and `position`.
    pub fn append(&mut self, offset: i64, position: u64) -> io::Result<()> {
        let rel = u32::try_from(offset - self.base_offset).map_err(io::Error::other)?;
        let pos = u32::try_from(position).map_err(io::Error::other)?;
        if self
            .index
            .entries
            .last()
            .is_some_and(|last| rel <= last.0 || pos <= last.1)
        {
            return Ok(());
        }
        self.index.push((rel, pos))
    }

    /// The greatest indexed (offset, position) at or below `offset`; (base, 0) if none.
    pub fn lookup(&self, offset: i64) -> (i64, u64) {
        let rel = offset - self.base_offset;
        let entries = &self.index.entries;
        match entries.partition_point(|e| i64::from(e.0) <= rel) {
            0 => (self.base_offset, 0),
            i => (
                self.base_offset + i64::from(entries[i - 1].0),
                u64::from(entries[i - 1].1),
            ),
        }
    }

    /// Drops entries for positions at or past `position` (the log was cut there).
    pub fn truncate_to_position(&mut self, position: u64) -> io::Result<()> {
        let keep = self
            .index
            .entries
            .partition_point(|e| u64::from(e.1) < position);
        self.index.truncate(keep)
    }

    /// Empties the index before a rebuild.
    pub fn reset(&mut self) -> io::Result<()> {
        self.index.entries.clear();
        self.index.file.set_len(0)
    }
}

/// Timestamp → offset, sparse, timestamps increasing.
#[derive(Debug)]
pub struct TimeIndex {
    index: IndexFile<(i64, u32)>,
    base_offset: i64,
}

impl TimeIndex {
    /// Opens (or creates) the time index; `valid` as for [`OffsetIndex::open`], with
    /// `next_offset` bounding the offsets it may name.
    pub fn open(
        fs: &dyn FileSystem,
        path: &Path,
        base_offset: i64,
        next_offset: Option<i64>,
    ) -> io::Result<(TimeIndex, bool)> {
        let (mut index, on_disk) = IndexFile::<(i64, u32)>::open(fs, path)?;
        let whole = on_disk.is_some();
        let entries = on_disk.unwrap_or_default();
        let increasing = entries
            .windows(2)
            .all(|w| w[1].0 > w[0].0 && w[1].1 >= w[0].1);
        let inside = entries
            .iter()
            .all(|e| next_offset.is_none_or(|next| base_offset + i64::from(e.1) < next));
        let valid = whole && increasing && inside;
        if valid {
            index.entries = entries;
        }
        Ok((TimeIndex { index, base_offset }, valid))
    }

    pub fn path(&self) -> &Path {
        &self.index.path
    }

    pub fn file(&self) -> &Arc<dyn LogFile> {
        &self.index.file
    }

    /// The last entry: the segment's max timestamp as of its last index point.
    pub fn last(&self) -> Option<(i64, i64)> {
        self.index
            .entries
            .last()
            .map(|&(ts, rel)| (ts, self.base_offset + i64::from(rel)))
    }

    /// Records that `timestamp` is the max so far, first reached at `offset`.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) -> io::Result<()> {
        if self
            .index
            .entries
            .last()
            .is_some_and(|last| timestamp <= last.0)
        {
            return Ok(());
        }
        let rel = u32::try_from(offset - self.base_offset).map_err(io::Error::other)?;
        self.index.push((timestamp, rel))
    }

    /// An offset from which a scan finds the first record with a timestamp at or above
    /// `timestamp`: the offset of the greatest entry whose timestamp is below it.
    pub fn lookup(&self, timestamp: i64) -> i64 {
        let entries = &self.index.entries;
        match entries.partition_point(|e| e.0 < timestamp) {
            0 => self.base_offset,
            i => self.base_offset + i64::from(entries[i - 1].1),
        }
    }

    /// Drops entries naming offsets at or past `offset`.
    pub fn truncate_to_offset(&mut self, offset: i64) -> io::Result<()> {
        let base = self.base_offset;
        let keep = self
            .index
            .entries
            .partition_point(|e| base + i64::from(e.1) < offset);
        self.index.truncate(keep)
    }

    pub fn reset(&mut self) -> io::Result<()> {
        self.index.entries.clear();
        self.index.file.set_len(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsio::RealFs;

    #[test]
    fn lookup_returns_the_greatest_entry_at_or_below_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let (mut index, valid) = OffsetIndex::open(&RealFs, &path, 100, 0).unwrap();
        assert!(valid);
        index.append(110, 4096).unwrap();
        index.append(120, 8192).unwrap();
        assert_eq!(index.lookup(100), (100, 0));
        assert_eq!(index.lookup(115), (110, 4096));
        assert_eq!(index.lookup(500), (120, 8192));

        let (reopened, valid) = OffsetIndex::open(&RealFs, &path, 100, 10_000).unwrap();
        assert!(valid);
        assert_eq!(reopened.lookup(500), (120, 8192));
    }

    #[test]
    fn an_index_pointing_past_the_log_is_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let (mut index, _) = OffsetIndex::open(&RealFs, &path, 0, 0).unwrap();
        index.append(10, 4096).unwrap();
        let (_, valid) = OffsetIndex::open(&RealFs, &path, 0, 4000).unwrap();
        assert!(!valid);
    }

    #[test]
    fn a_partial_entry_makes_the_index_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        std::fs::write(&path, [0u8; 5]).unwrap();
        let (_, valid) = OffsetIndex::open(&RealFs, &path, 0, 10).unwrap();
        assert!(!valid);
    }

    #[test]
    fn time_lookup_starts_before_the_first_entry_reaching_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let (mut index, _) = TimeIndex::open(&RealFs, &path, 0, None).unwrap();
        index.maybe_append(1000, 5).unwrap();
        index.maybe_append(900, 6).unwrap(); // not a new max: ignored
        index.maybe_append(2000, 10).unwrap();
        assert_eq!(index.lookup(500), 0);
        assert_eq!(index.lookup(1000), 0);
        assert_eq!(index.lookup(1500), 5);
        assert_eq!(index.lookup(9999), 10);
        assert_eq!(index.last(), Some((2000, 10)));
        index.truncate_to_offset(10).unwrap();
        assert_eq!(index.last(), Some((1000, 5)));
    }
}
