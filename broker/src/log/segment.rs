//! One segment of a partition's log: a `.log` file of batches and its two indexes.
//!
//! Files are named by the segment's base offset, zero-padded to 20 digits
//! (`00000000000000001500.log`, `.index`, `.timeindex`), so a directory listing sorts
//! them in offset order. Only the last (active) segment is appended to.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::index::{OffsetIndex, TimeIndex};
use crate::fsio::{read_exact_at, FileSystem, LogFile, OpenMode};
use crate::records::batch::{inspect, BatchHeader, BatchWalker, Step, HEADER_LEN};
use crate::records::walk::for_each_record;

pub const LOG_SUFFIX: &str = ".log";
pub const INDEX_SUFFIX: &str = ".index";
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// An empty file beside a segment the cleaner wrote: the segment may end before the next
/// one starts (compaction removed the records between), which is not a lost tail.
pub const CLEANED_SUFFIX: &str = ".cleaned";

/// Bytes read at a time when scanning a segment.
const SCAN_CHUNK: usize = 1 << 20;

/// `00000000000000001500.log` for base offset 1500.
pub fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// The base offset of a `.log` file name.
pub fn parse_log_file_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(LOG_SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// How a scan over a segment's batches ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every byte up to the end was a valid batch.
    Complete,
    /// The visitor asked to stop before the batch at `pos`.
    Stopped { pos: u64 },
    /// The bytes at `pos` are torn or corrupt.
    Invalid { pos: u64, reason: &'static str },
}

/// Called with each batch's position, header and bytes; returns whether to go on.
pub type BatchVisitor<'a> = dyn FnMut(u64, &BatchHeader, &[u8]) -> io::Result<bool> + 'a;

/// Visits the batches of `file` in `[from, end)`, reading a chunk at a time.
///
/// A batch is bounded only by the bytes the range holds: a batch that declares more
/// than that is torn or corrupt. Never by a request-size setting, which can be lowered
/// after bigger batches were stored.
pub fn scan_batches(
    file: &dyn LogFile,
    from: u64,
    end: u64,
    check_crc: bool,
    visit: &mut BatchVisitor<'_>,
) -> io::Result<ScanEnd> {
    let mut pos = from;
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = from;
    loop {
        if pos >= end {
            return Ok(ScanEnd::Complete);
        }
        let off = usize::try_from(pos - buf_start).unwrap_or(usize::MAX);
        let avail: &[u8] = buf.get(off..).unwrap_or(&[]);
        match inspect(avail, check_crc, 0) {
            Step::Batch { header, .. } => {
                let size = header.total_size();
                if !visit(pos, &header, &avail[..size])? {
                    return Ok(ScanEnd::Stopped { pos });
                }
                pos += size as u64;
            }
            Step::Incomplete { .. } => {
                let buffered_end = buf_start + buf.len() as u64;
                let need = BatchHeader::parse(avail).map_or(HEADER_LEN, |h| h.total_size());
                if need as u64 > end - pos {
                    return Ok(ScanEnd::Invalid {
                        pos,
                        reason: "incomplete batch at the end of the segment",
                    });
                }
                if buffered_end >= end || (buf_start == pos && buf.len() >= need) {
                    return Ok(ScanEnd::Invalid {
                        pos,
                        reason: "incomplete batch at the end of the segment",
                    });
                }
                let len = (need.max(SCAN_CHUNK) as u64).min(end - pos) as usize;
                buf.resize(len, 0);
                read_exact_at(file, &mut buf, pos)?;
                buf_start = pos;
            }
            Step::Corrupt { reason, .. } => return Ok(ScanEnd::Invalid { pos, reason }),
        }
    }
}

/// What recovering a segment found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub batches: u64,
    pub valid_bytes: u64,
    pub truncated_bytes: u64,
    pub reason: Option<&'static str>,
}

/// Batches read for a fetch, already cut to whole batches below the high watermark.
#[derive(Debug, Clone, Default)]
pub struct ReadBatches {
    pub bytes: Bytes,
    /// The offset after the last batch returned (the fetch offset if none).
    pub next_offset: i64,
}

/// Where a read of this segment can start: handed out under the log's lock, used after it.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    pub file: Arc<dyn LogFile>,
    /// A position at or before the batch holding the target offset.
    pub hint_pos: u64,
    /// Bytes of complete batches when the plan was made.
    pub end_pos: u64,
}

/// Per-append facts the segment indexes.
#[derive(Debug, Clone, Copy)]
pub struct AppendMeta {
    pub base_offset: i64,
    pub next_offset: i64,
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
}

#[derive(Debug)]
pub struct Segment {
    base_offset: i64,
    dir: PathBuf,
    log: Arc<dyn LogFile>,
    index: OffsetIndex,
    time_index: TimeIndex,
    /// Bytes of complete batches in `.log`.
    size: u64,
    next_offset: i64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    bytes_since_index: u64,
    /// When the segment started, for `segment.ms`: its first batch's max timestamp.
    first_batch_timestamp: Option<i64>,
}

/// The `.log`, `.index` and `.timeindex` paths of the segment at `base_offset`.
pub fn segment_paths(dir: &Path, base_offset: i64) -> [PathBuf; 3] {
    [
        dir.join(file_name(base_offset, LOG_SUFFIX)),
        dir.join(file_name(base_offset, INDEX_SUFFIX)),
        dir.join(file_name(base_offset, TIME_INDEX_SUFFIX)),
    ]
}

/// The cleaned marker of the segment at `base_offset`.
pub fn cleaned_marker_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(file_name(base_offset, CLEANED_SUFFIX))
}

/// Removes a segment's files and its cleaned marker, whichever exist. The marker goes
/// too, so that a later segment with the same base is never taken for a cleaned one.
pub fn remove_segment_files(fs: &dyn FileSystem, dir: &Path, base_offset: i64) -> io::Result<()> {
    let [log, index, time] = segment_paths(dir, base_offset);
    for path in [log, index, time, cleaned_marker_path(dir, base_offset)] {
        if fs.exists(&path) {
            fs.remove_file(&path)?;
        }
    }
    Ok(())
}

impl Segment {
    /// Creates an empty segment at `base_offset`. Its directory entries become durable
    /// when the flusher next syncs the partition directory.
    pub fn create(fs: &dyn FileSystem, dir: &Path, base_offset: i64) -> io::Result<Segment> {
        let [log_path, index_path, time_path] = segment_paths(dir, base_offset);
        // A marker left at this base by an older segment must not vouch for this one.
        let marker = cleaned_marker_path(dir, base_offset);
        if fs.exists(&marker) {
            fs.remove_file(&marker)?;
        }
        let log = fs.open(&log_path, OpenMode::Create)?;
        log.set_len(0)?;
        let (mut index, _) = OffsetIndex::open(fs, &index_path, base_offset, 0)?;
        index.reset()?;
        let (mut time_index, _) = TimeIndex::open(fs, &time_path, base_offset, None)?;
        time_index.reset()?;
        Ok(Segment {
            base_offset,
            dir: dir.to_path_buf(),
            log,
            index,
            time_index,
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            bytes_since_index: 0,
            first_batch_timestamp: None,
        })
    }

    /// Opens an existing segment trusting its contents (below the recovery point or after
    /// a clean shutdown): loads the indexes and scans only the tail after the last index
    /// entry. Returns `None` when that check fails and the segment needs recovery.
    pub fn open_trusted(
        fs: &dyn FileSystem,
        dir: &Path,
        base_offset: i64,
    ) -> io::Result<(Segment, bool)> {
        let [log_path, index_path, time_path] = segment_paths(dir, base_offset);
        let log = fs.open(&log_path, OpenMode::Existing)?;
        let size = log.len()?;
        let (index, index_ok) = OffsetIndex::open(fs, &index_path, base_offset, size.max(1))?;
        let (time_index, time_ok) = TimeIndex::open(fs, &time_path, base_offset, None)?;
        let mut segment = Segment {
            base_offset,
            dir: dir.to_path_buf(),
            log,
            index,
            time_index,
            size,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            bytes_since_index: 0,
            first_batch_timestamp: None,
        };
        if !index_ok || !time_ok {
            return Ok((segment, false));
        }
        if let Some((ts, offset)) = segment.time_index.last() {
            segment.max_timestamp = ts;
            segment.offset_of_max_timestamp = offset;
        }
        let (mut next, from) = segment.index.lookup(i64::MAX);
        let mut first_ts = None;
        let mut max = (segment.max_timestamp, segment.offset_of_max_timestamp);
        let end = scan_batches(
            segment.log.as_ref(),
            from,
            size,
            true,
            &mut |_, header, _| {
                next = header.next_offset();
                if header.max_timestamp > max.0 {
                    max = (header.max_timestamp, header.base_offset);
                }
                first_ts.get_or_insert(header.max_timestamp);
                Ok(true)
            },
        )?;
        if end != ScanEnd::Complete || (size > 0 && next <= base_offset) {
            return Ok((segment, false));
        }
        segment.next_offset = next;
        (segment.max_timestamp, segment.offset_of_max_timestamp) = max;
        if size > 0 {
            segment.first_batch_timestamp = Some(first_ts_of(&segment)?);
        }
        Ok((segment, true))
    }

    /// Rebuilds the indexes from the log, truncating it at the first torn or corrupt
    /// batch. `on_batch` sees every valid batch (the caller rebuilds its epoch cache).
    pub fn recover(
        &mut self,
        index_interval: u64,
        on_batch: &mut dyn FnMut(&BatchHeader),
    ) -> io::Result<RecoveryReport> {
        self.index.reset()?;
        self.time_index.reset()?;
        let file_len = self.log.len()?;
        let mut report = RecoveryReport::default();
        let mut expected = self.base_offset;
        let mut state = AppendState::default();
        let base = self.base_offset;
        let mut index_entries: Vec<(i64, u64, i64, i64)> = Vec::new();
        let end = scan_batches(
            self.log.as_ref(),
            0,
            file_len,
            true,
            &mut |pos, header, _| {
                if header.base_offset < expected {
                    return Ok(false);
                }
                expected = header.next_offset();
                if state.bytes_since_index >= index_interval && pos > 0 {
                    index_entries.push((header.base_offset, pos, state.max_ts, state.max_off));
                    state.bytes_since_index = 0;
                }
                if header.max_timestamp > state.max_ts {
                    state.max_ts = header.max_timestamp;
                    state.max_off = header.base_offset;
                }
                state.first_ts.get_or_insert(header.max_timestamp);
                state.bytes_since_index += header.total_size() as u64;
                report.batches += 1;
                report.valid_bytes = pos + header.total_size() as u64;
                on_batch(header);
                Ok(true)
            },
        )?;
        for (offset, pos, max_ts, max_off) in index_entries {
            self.index.append(offset, pos)?;
            if max_ts >= 0 {
                self.time_index.maybe_append(max_ts, max_off)?;
            }
        }
        let valid = report.valid_bytes;
        if let ScanEnd::Invalid { reason, .. } = end {
            report.reason = Some(reason);
        } else if let ScanEnd::Stopped { .. } = end {
            report.reason = Some("batch offsets go backwards");
        }
        if valid < file_len {
            report.truncated_bytes = file_len - valid;
            self.log.set_len(valid)?;
        }
        self.size = valid;
        self.next_offset = if report.batches > 0 { expected } else { base };
        self.max_timestamp = state.max_ts;
        self.offset_of_max_timestamp = if state.max_ts >= 0 {
            state.max_off
        } else {
            base
        };
        self.bytes_since_index = state.bytes_since_index;
        self.first_batch_timestamp = state.first_ts;
        if self.max_timestamp >= 0 {
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp)?;
        }
        Ok(report)
    }

    /// Appends one batch whose offsets the leader already stamped.
    pub fn append(
        &mut self,
        batch: &[u8],
        meta: &AppendMeta,
        index_interval: u64,
    ) -> io::Result<()> {
        let pos = self.size;
        self.log.write_all_at(batch, pos)?;
        if self.bytes_since_index >= index_interval && pos > 0 {
            self.index.append(meta.base_offset, pos)?;
            if self.max_timestamp >= 0 {
                self.time_index
                    .maybe_append(self.max_timestamp, self.offset_of_max_timestamp)?;
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += batch.len() as u64;
        if meta.max_timestamp > self.max_timestamp {
            self.max_timestamp = meta.max_timestamp;
            self.offset_of_max_timestamp = meta.offset_of_max_timestamp;
        }
        self.first_batch_timestamp.get_or_insert(meta.max_timestamp);
        self.size += batch.len() as u64;
        self.next_offset = meta.next_offset;
        Ok(())
    }

    /// Where a read for `offset` can start.
    pub fn read_plan(&self, offset: i64) -> ReadPlan {
        let (_, hint_pos) = self.index.lookup(offset);
        ReadPlan {
            file: self.log.clone(),
            hint_pos,
            end_pos: self.size,
        }
    }

    /// Cuts the segment so that `offset` is its next offset. Returns the bytes removed.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<u64> {
        if offset >= self.next_offset {
            return Ok(0);
        }
        let (_, hint) = self.index.lookup(offset);
        let mut cut = self.size;
        scan_batches(
            self.log.as_ref(),
            hint,
            self.size,
            false,
            &mut |pos, header, _| {
                if header.base_offset >= offset {
                    cut = pos;
                    return Ok(false);
                }
                Ok(true)
            },
        )?;
        let removed = self.size - cut;
        self.log.set_len(cut)?;
        self.index.truncate_to_position(cut)?;
        self.time_index.truncate_to_offset(offset)?;
        self.size = cut;
        self.next_offset = offset.max(self.base_offset);
        if let Some((ts, off)) = self.time_index.last() {
            self.max_timestamp = ts;
            self.offset_of_max_timestamp = off;
        } else {
            self.max_timestamp = -1;
            self.offset_of_max_timestamp = self.base_offset;
        }
        if cut == 0 {
            self.first_batch_timestamp = None;
        }
        Ok(removed)
    }

    /// fsyncs the log and both indexes (before the segment counts as recovered).
    pub fn sync_all(&self) -> io::Result<()> {
        self.log.sync_data()?;
        self.index.file().sync_data()?;
        self.time_index.file().sync_data()
    }

    pub fn files(&self) -> [Arc<dyn LogFile>; 3] {
        [
            self.log.clone(),
            self.index.file().clone(),
            self.time_index.file().clone(),
        ]
    }

    pub fn log_file(&self) -> &Arc<dyn LogFile> {
        &self.log
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }

    pub fn first_batch_timestamp(&self) -> Option<i64> {
        self.first_batch_timestamp
    }

    pub fn time_lookup(&self, timestamp: i64) -> i64 {
        self.time_index.lookup(timestamp)
    }

    pub fn index_lookup(&self, offset: i64) -> (i64, u64) {
        self.index.lookup(offset)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Paths of the segment's three files.
    pub fn file_paths(&self) -> [PathBuf; 3] {
        segment_paths(&self.dir, self.base_offset)
    }
}

#[derive(Debug)]
struct AppendState {
    max_ts: i64,
    max_off: i64,
    bytes_since_index: u64,
    first_ts: Option<i64>,
}

impl Default for AppendState {
    fn default() -> Self {
        AppendState {
            max_ts: -1,
            max_off: 0,
            bytes_since_index: 0,
            first_ts: None,
        }
    }
}

fn first_ts_of(segment: &Segment) -> io::Result<i64> {
    let mut first = -1;
    scan_batches(
        segment.log.as_ref(),
        0,
        segment.size,
        false,
        &mut |_, header, _| {
            first = header.max_timestamp;
            Ok(false)
        },
    )?;
    Ok(first)
}

/// Finds the batch holding `offset` (the first whose next offset is above it) by walking
/// headers from the plan's hint, reading a small chunk at a time.
fn locate(plan: &ReadPlan, offset: i64) -> io::Result<Option<(u64, BatchHeader)>> {
    const CHUNK: u64 = 64 * 1024;
    let mut pos = plan.hint_pos;
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = pos;
    loop {
        if pos + HEADER_LEN as u64 > plan.end_pos {
            return Ok(None);
        }
        if pos < buf_start || pos + HEADER_LEN as u64 > buf_start + buf.len() as u64 {
            let len = CHUNK.min(plan.end_pos - pos) as usize;
            buf.resize(len, 0);
            read_exact_at(plan.file.as_ref(), &mut buf, pos)?;
            buf_start = pos;
        }
        let at = (pos - buf_start) as usize;
        let Some(header) = BatchHeader::parse(&buf[at..]) else {
            return Ok(None);
        };
        if header.batch_length < crate::records::batch::MIN_BATCH_LENGTH {
            return Ok(None);
        }
        if header.next_offset() > offset {
            return Ok(Some((pos, header)));
        }
        pos += header.total_size() as u64;
    }
}

/// Reads the whole batches holding offsets from `offset` on, up to `max_bytes` (or one
/// whole batch when `min_one` and the first is larger), stopping before any batch that
/// ends above `high_watermark`.
pub fn read_batches(
    plan: &ReadPlan,
    offset: i64,
    max_bytes: usize,
    min_one: bool,
    high_watermark: i64,
) -> io::Result<ReadBatches> {
    let empty = ReadBatches {
        bytes: Bytes::new(),
        next_offset: offset,
    };
    let Some((start, first)) = locate(plan, offset)? else {
        return Ok(empty);
    };
    let first_size = first.total_size();
    if first.next_offset() > high_watermark || start + first_size as u64 > plan.end_pos {
        return Ok(empty);
    }
    if first_size > max_bytes {
        if !min_one {
            return Ok(empty);
        }
        let mut whole = vec![0; first_size];
        read_exact_at(plan.file.as_ref(), &mut whole, start)?;
        return Ok(ReadBatches {
            bytes: Bytes::from(whole),
            next_offset: first.next_offset(),
        });
    }
    let len = (max_bytes as u64).min(plan.end_pos - start) as usize;
    let mut buf = vec![0; len];
    read_exact_at(plan.file.as_ref(), &mut buf, start)?;
    let mut end = 0usize;
    let mut next_offset = offset;
    for step in BatchWalker::new(&buf, false) {
        let Step::Batch { pos, header } = step else {
            break;
        };
        if header.next_offset() > high_watermark {
            break;
        }
        end = pos + header.total_size();
        next_offset = header.next_offset();
    }
    buf.truncate(end);
    Ok(ReadBatches {
        bytes: Bytes::from(buf),
        next_offset,
    })
}

/// The largest batch timestamp among the batches of `plan` that end at or below `upto`,
/// and that batch's base offset (the earliest on a tie). Reads only batch headers.
pub fn max_timestamp_in(plan: &ReadPlan, upto: i64) -> io::Result<Option<(i64, i64)>> {
    let mut max: Option<(i64, i64)> = None;
    scan_batches(
        plan.file.as_ref(),
        0,
        plan.end_pos,
        false,
        &mut |_, header, _| {
            if header.next_offset() > upto {
                return Ok(false);
            }
            if max.is_none_or(|(ts, _)| header.max_timestamp > ts) {
                max = Some((header.max_timestamp, header.base_offset));
            }
            Ok(true)
        },
    )?;
    Ok(max.filter(|(ts, _)| *ts >= 0))
}

/// The first record at or after `timestamp` below `high_watermark`, scanning from `from`:
/// `(offset, timestamp)`. Compressed batches are walked under `budget`.
pub fn find_by_timestamp(
    plan: &ReadPlan,
    from_offset: i64,
    timestamp: i64,
    high_watermark: i64,
    budget: usize,
) -> io::Result<Option<(i64, i64)>> {
    let mut found = None;
    scan_batches(
        plan.file.as_ref(),
        plan.hint_pos,
        plan.end_pos,
        false,
        &mut |_, header, bytes| {
            if header.next_offset() <= from_offset {
                return Ok(true);
            }
            if header.base_offset >= high_watermark {
                return Ok(false);
            }
            if header.max_timestamp < timestamp {
                return Ok(true);
            }
            if header.is_log_append_time() {
                found = Some((header.base_offset, header.max_timestamp));
                return Ok(false);
            }
            let mut hit = None;
            let walked = for_each_record(bytes, header, budget, &mut |meta| {
                let ts = header.base_timestamp.saturating_add(meta.timestamp_delta);
                if ts >= timestamp && hit.is_none() {
                    hit = Some((header.base_offset + i64::from(meta.offset_delta), ts));
                }
                Ok(())
            });
            if walked.is_err() {
                // Fall back to the batch's own claim if its records cannot be walked.
                hit = hit.or(Some((header.base_offset, header.max_timestamp)));
            }
            found = hit;
            Ok(found.is_none())
        },
    )?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsio::RealFs;
    use crate::records::batch::test_batches::uncompressed;
    use crate::records::batch::{set_base_offset, set_partition_leader_epoch};

    fn stamped(values: &[&[u8]], base: i64, ts: i64) -> (Vec<u8>, AppendMeta) {
        let mut b = uncompressed(values, ts);
        set_base_offset(&mut b, base);
        set_partition_leader_epoch(&mut b, 0);
        let next = base + values.len() as i64;
        (
            b,
            AppendMeta {
                base_offset: base,
                next_offset: next,
                max_timestamp: ts,
                offset_of_max_timestamp: base,
            },
        )
    }

    fn filled(dir: &Path, batches: usize) -> Segment {
        let mut seg = Segment::create(&RealFs, dir, 0).unwrap();
        for i in 0..batches {
            let (b, m) = stamped(&[b"value-a", b"value-b"], (i * 2) as i64, 1000 + i as i64);
            seg.append(&b, &m, 100).unwrap();
        }
        seg
    }

    #[test]
    fn file_names_are_zero_padded_and_parse_back() {
        assert_eq!(file_name(1500, LOG_SUFFIX), "00000000000000001500.log");
        assert_eq!(parse_log_file_name("00000000000000001500.log"), Some(1500));
        assert_eq!(parse_log_file_name("1500.log"), None);
        assert_eq!(parse_log_file_name("00000000000000001500.index"), None);
    }

    #[test]
    fn reads_start_at_the_batch_holding_the_offset_and_stop_at_the_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let seg = filled(dir.path(), 10);
        let plan = seg.read_plan(5);
        let read = read_batches(&plan, 5, 1 << 20, true, 20).unwrap();
        let first = BatchHeader::parse(&read.bytes).unwrap();
        assert_eq!(first.base_offset, 4);
        assert_eq!(read.next_offset, 20);

        let read = read_batches(&plan, 5, 1 << 20, true, 10).unwrap();
        assert_eq!(read.next_offset, 10);

        let read = read_batches(&seg.read_plan(20), 20, 1 << 20, true, 20).unwrap();
        assert!(read.bytes.is_empty());
    }

    #[test]
    fn max_bytes_cuts_at_whole_batches_but_returns_at_least_one() {
        let dir = tempfile::tempdir().unwrap();
        let seg = filled(dir.path(), 10);
        let one = stamped(&[b"value-a", b"value-b"], 0, 0).0.len();
        let read = read_batches(&seg.read_plan(0), 0, one * 3 + 1, true, 20).unwrap();
        assert_eq!(read.bytes.len(), one * 3);
        let read = read_batches(&seg.read_plan(0), 0, 1, true, 20).unwrap();
        assert_eq!(read.bytes.len(), one);
        let read = read_batches(&seg.read_plan(0), 0, 1, false, 20).unwrap();
        assert!(read.bytes.is_empty());
    }

    #[test]
    fn recovery_cuts_a_torn_tail_and_rebuilds_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let seg = filled(dir.path(), 10);
        let good = seg.size();
        drop(seg);
        let log_path = dir.path().join(file_name(0, LOG_SUFFIX));
        let mut bytes = std::fs::read(&log_path).unwrap();
        bytes.extend_from_slice(&[7u8; 40]);
        std::fs::write(&log_path, &bytes).unwrap();

        let (mut seg, trusted) = Segment::open_trusted(&RealFs, dir.path(), 0).unwrap();
        assert!(!trusted, "the torn tail must be noticed");
        let report = seg.recover(100, &mut |_| {}).unwrap();
        assert_eq!(report.batches, 10);
        assert_eq!(report.truncated_bytes, 40);
        assert_eq!(seg.size(), good);
        assert_eq!(seg.next_offset(), 20);
        assert_eq!(std::fs::metadata(&log_path).unwrap().len(), good);
        assert!(seg.index_lookup(19).1 > 0, "index rebuilt");
    }

    #[test]
    fn a_trusted_open_finds_the_next_offset_from_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let seg = filled(dir.path(), 10);
        let next = seg.next_offset();
        drop(seg);
        let (seg, trusted) = Segment::open_trusted(&RealFs, dir.path(), 0).unwrap();
        assert!(trusted);
        assert_eq!(seg.next_offset(), next);
        assert_eq!(seg.max_timestamp(), 1009);
        assert_eq!(seg.first_batch_timestamp(), Some(1000));
    }

    #[test]
    fn truncation_removes_whole_batches_from_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = filled(dir.path(), 10);
        let removed = seg.truncate_to(6).unwrap();
        assert!(removed > 0);
        assert_eq!(seg.next_offset(), 6);
        let read = read_batches(&seg.read_plan(0), 0, 1 << 20, true, 100).unwrap();
        assert_eq!(read.next_offset, 6);
    }

    #[test]
    fn find_by_timestamp_returns_the_first_record_at_or_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let seg = filled(dir.path(), 10);
        let from = seg.time_lookup(1004);
        let plan = seg.read_plan(from);
        let hit = find_by_timestamp(&plan, from, 1004, 20, 1 << 20).unwrap();
        assert_eq!(hit, Some((8, 1004)));
        assert_eq!(
            find_by_timestamp(&plan, from, 5000, 20, 1 << 20).unwrap(),
            None
        );
    }
}
