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

use super::io::{read_exact_at, FileSystem, LogFile, OpenMode};

const OFFSET_ENTRY: usize = 8;
const TIME_ENTRY: usize = 12;

/// Reads a whole index file, or `None` if its length is not a whole number of entries.
fn read_entries(file: &dyn LogFile, entry: usize) -> io::Result<Option<Vec<u8>>> {
    let len = usize::try_from(file.len()?).map_err(io::Error::other)?;
    if len % entry != 0 {
        return Ok(None);
    }
    let mut buf = vec![0; len];
    read_exact_at(file, &mut buf, 0)?;
    Ok(Some(buf))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(x)
}

/// Offset → position, sparse.
#[derive(Debug)]
pub struct OffsetIndex {
    path: PathBuf,
    file: Arc<dyn LogFile>,
    base_offset: i64,
    /// (relative offset, position), both strictly increasing.
    entries: Vec<(u32, u32)>,
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
        let file = fs.open(path, OpenMode::Create)?;
        let mut index = OffsetIndex {
            path: path.to_path_buf(),
            file,
            base_offset,
            entries: Vec::new(),
        };
        let Some(raw) = read_entries(index.file.as_ref(), OFFSET_ENTRY)? else {
            return Ok((index, false));
        };
        for chunk in raw.chunks_exact(OFFSET_ENTRY) {
            let entry = (u32_at(chunk, 0), u32_at(chunk, 4));
            let increasing = index
                .entries
                .last()
                .is_none_or(|last| entry.0 > last.0 && entry.1 > last.1);
            if !increasing || u64::from(entry.1) >= log_size {
                index.entries.clear();
                return Ok((index, false));
            }
            index.entries.push(entry);
        }
        Ok((index, true))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> &Arc<dyn LogFile> {
        &self.file
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds an entry for the batch starting at `offset` and `position`.
    pub fn append(&mut self, offset: i64, position: u64) -> io::Result<()> {
        let rel = u32::try_from(offset - self.base_offset).map_err(io::Error::other)?;
        let pos = u32::try_from(position).map_err(io::Error::other)?;
        if let Some(last) = self.entries.last() {
            if rel <= last.0 || pos <= last.1 {
                return Ok(());
            }
        }
        let mut entry = [0u8; OFFSET_ENTRY];
        entry[..4].copy_from_slice(&rel.to_be_bytes());
        entry[4..].copy_from_slice(&pos.to_be_bytes());
        self.file
            .write_all_at(&entry, (self.entries.len() * OFFSET_ENTRY) as u64)?;
        self.entries.push((rel, pos));
        Ok(())
    }

    /// The greatest indexed (offset, position) at or below `offset`; (base, 0) if none.
    pub fn lookup(&self, offset: i64) -> (i64, u64) {
        let rel = offset - self.base_offset;
        let idx = self.entries.partition_point(|e| i64::from(e.0) <= rel);
        match idx {
            0 => (self.base_offset, 0),
            i => {
                let (r, p) = self.entries[i - 1];
                (self.base_offset + i64::from(r), u64::from(p))
            }
        }
    }

    /// Drops entries for positions at or past `position` (the log was cut there).
    pub fn truncate_to_position(&mut self, position: u64) -> io::Result<()> {
        let keep = self.entries.partition_point(|e| u64::from(e.1) < position);
        if keep < self.entries.len() {
            self.entries.truncate(keep);
            self.file.set_len((keep * OFFSET_ENTRY) as u64)?;
        }
        Ok(())
    }

    /// Empties the index before a rebuild.
    pub fn reset(&mut self) -> io::Result<()> {
        self.entries.clear();
        self.file.set_len(0)
    }
}

/// Timestamp → offset, sparse, timestamps increasing.
#[derive(Debug)]
pub struct TimeIndex {
    path: PathBuf,
    file: Arc<dyn LogFile>,
    base_offset: i64,
    /// (timestamp, relative offset), both strictly increasing.
    entries: Vec<(i64, u32)>,
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
        let file = fs.open(path, OpenMode::Create)?;
        let mut index = TimeIndex {
            path: path.to_path_buf(),
            file,
            base_offset,
            entries: Vec::new(),
        };
        let Some(raw) = read_entries(index.file.as_ref(), TIME_ENTRY)? else {
            return Ok((index, false));
        };
        for chunk in raw.chunks_exact(TIME_ENTRY) {
            let entry = (i64_at(chunk, 0), u32_at(chunk, 8));
            let increasing = index
                .entries
                .last()
                .is_none_or(|last| entry.0 > last.0 && entry.1 >= last.1);
            let in_range = next_offset.is_none_or(|next| base_offset + i64::from(entry.1) < next);
            if !increasing || !in_range {
                index.entries.clear();
                return Ok((index, false));
            }
            index.entries.push(entry);
        }
        Ok((index, true))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> &Arc<dyn LogFile> {
        &self.file
    }

    /// The last entry: the segment's max timestamp as of its last index point.
    pub fn last(&self) -> Option<(i64, i64)> {
        self.entries
            .last()
            .map(|&(ts, rel)| (ts, self.base_offset + i64::from(rel)))
    }

    /// Records that `timestamp` is the max so far, first reached at `offset`.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) -> io::Result<()> {
        if self.entries.last().is_some_and(|last| timestamp <= last.0) {
            return Ok(());
        }
        let rel = u32::try_from(offset - self.base_offset).map_err(io::Error::other)?;
        let mut entry = [0u8; TIME_ENTRY];
        entry[..8].copy_from_slice(&timestamp.to_be_bytes());
        entry[8..].copy_from_slice(&rel.to_be_bytes());
        self.file
            .write_all_at(&entry, (self.entries.len() * TIME_ENTRY) as u64)?;
        self.entries.push((timestamp, rel));
        Ok(())
    }

    /// An offset from which a scan finds the first record with a timestamp at or above
    /// `timestamp`: the offset of the greatest entry whose timestamp is below it.
    pub fn lookup(&self, timestamp: i64) -> i64 {
        let idx = self.entries.partition_point(|e| e.0 < timestamp);
        match idx {
            0 => self.base_offset,
            i => self.base_offset + i64::from(self.entries[i - 1].1),
        }
    }

    /// Drops entries naming offsets at or past `offset`.
    pub fn truncate_to_offset(&mut self, offset: i64) -> io::Result<()> {
        let keep = self
            .entries
            .partition_point(|e| self.base_offset + i64::from(e.1) < offset);
        if keep < self.entries.len() {
            self.entries.truncate(keep);
            self.file.set_len((keep * TIME_ENTRY) as u64)?;
        }
        Ok(())
    }

    pub fn reset(&mut self) -> io::Result<()> {
        self.entries.clear();
        self.file.set_len(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::io::RealFs;

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
