//! Log compaction: keeps the latest record per key in a log's closed segments, offsets
//! preserved, tombstones dropped `delete.retention.ms` after the pass that first kept
//! them (KIP-534: that pass writes the delete horizon into the batch's base timestamp
//! and sets its delete-horizon attribute, which clients read transparently).
//!
//! A pass reads closed segments below the persisted recovery point, builds a map from
//! each key of the dirty section (the segments written since the last pass) to its
//! latest offset, bounded by `log.cleaner.dedupe.buffer.size` (when the map is full, the
//! pass stops at that segment and the next pass continues from there), and rewrites the
//! segments up to the map's end, grouped up to `segment.bytes`, into one new segment
//! each. A cleaned segment gets a `.cleaned` marker, so that recovery takes the gap
//! after it for compaction's, never for a lost tail. The new segment is written and fsynced in
//! the partition's `cleaner/` directory, then moved in as `<base>.log.swap`: that rename
//! is the commit point. The old segments are then deleted and the swap renamed to
//! `<base>.log`. Start-up completes a committed swap and discards anything uncommitted
//! ([`finish_interrupted`]), so a crash at any point loses nothing.
//!
//! Batches are kept byte for byte when nothing in them goes; a batch that loses some
//! records is re-encoded with its codec and producer fields; an idempotent producer's
//! last batch is always kept whole so its sequence state survives a rebuild.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use tracing::{info, warn};

use super::segment::{
    cleaned_marker_path, remove_segment_files, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};
use super::segment::{file_name, scan_batches, AppendMeta, ScanEnd, Segment};
use crate::fsio::{FileSystem, LogFile};
use crate::records::batch::{set_last_offset, set_log_append_time, BatchHeader};
use crate::records::codec;

/// The directory, inside a partition's, where cleaned segments are written.
pub const STAGING_DIR: &str = "cleaner";
/// A cleaned segment moved in but not yet renamed over the old ones.
pub const SWAP_SUFFIX: &str = ".swap";

/// The topic settings a cleaning pass follows.
#[derive(Debug, Clone, Copy)]
pub struct CleanPolicy {
    /// Keys one pass may map (`log.cleaner.dedupe.buffer.size` / [`MAP_ENTRY_BYTES`]).
    pub map_capacity: usize,
    pub min_cleanable_ratio: f64,
    pub delete_retention_ms: i64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
}

/// A closed segment the pass may rewrite.
#[derive(Debug, Clone)]
pub struct Input {
    pub base: i64,
    pub file: Arc<dyn LogFile>,
    pub size: u64,
}

/// What one pass will clean, taken under the log's lock and worked on outside it.
#[derive(Debug)]
pub struct CleanPlan {
    pub fs: Arc<dyn FileSystem>,
    pub dir: PathBuf,
    /// Consecutive segments, each group becoming one new segment.
    pub groups: Vec<Vec<Input>>,
    /// The offset after the last input.
    pub end: i64,
    /// Segments from this base offset on are dirty: the key map is built from them.
    pub first_dirty: i64,
    /// The most keys the map may hold (`log.cleaner.dedupe.buffer.size`).
    pub map_capacity: usize,
    pub index_interval: u64,
}

/// One group's cleaned segment in the staging directory.
#[derive(Debug, Clone)]
pub struct Output {
    pub base: i64,
    /// The offset after the segments it replaces (the next segment's base): a swap
    /// names it, so an interrupted install removes exactly those segments.
    pub end: i64,
    /// The segments it replaces.
    pub replaces: Vec<i64>,
    /// Nothing survived: the old segments are simply deleted.
    pub empty: bool,
}

/// What a pass did.
#[derive(Debug, Default, Clone, Copy)]
pub struct CleanReport {
    pub segments_in: u64,
    pub segments_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub records_removed: u64,
    pub tombstones_removed: u64,
    /// The earliest delete horizon of a tombstone the pass kept: the log is due again
    /// then, dirty or not.
    pub next_tombstone_horizon: Option<i64>,
    /// The offset the pass cleaned up to (the key map's end): the log is clean below it.
    pub end: i64,
    /// The key map filled before the dirty section ended; another pass continues.
    pub map_full: bool,
}

/// Bytes one key map entry takes, for `log.cleaner.dedupe.buffer.size`: a 128-bit hash
/// and an offset, with the hash table's control byte and load factor.
pub const MAP_ENTRY_BYTES: usize = 32;

/// Key → latest offset over the inputs, keyed by a 128-bit hash (two independently
/// seeded SipHashes) so memory does not grow with key sizes.
struct KeyMap {
    seeds: (RandomState, RandomState),
    latest: HashMap<u128, i64>,
    /// Producer id → base offset of its last batch in the inputs.
    producer_last: HashMap<i64, i64>,
}

impl KeyMap {
    fn hash(&self, key: &[u8]) -> u128 {
        (u128::from(self.seeds.0.hash_one(key)) << 64) | u128::from(self.seeds.1.hash_one(key))
    }
}

fn scan_inputs(
    inputs: &[Input],
    visit: &mut dyn FnMut(&BatchHeader, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    for input in inputs {
        let end = scan_batches(
            input.file.as_ref(),
            0,
            input.size,
            false,
            &mut |_, header, bytes| {
                visit(header, bytes)?;
                Ok(true)
            },
        )?;
        if let ScanEnd::Invalid { pos, reason } = end {
            return Err(io::Error::other(format!(
                "segment {} is unreadable at {pos}: {reason}",
                input.base
            )));
        }
    }
    Ok(())
}

/// The key map over the dirty section, and the offset it ends at: the end of the last
/// segment mapped. It maps whole segments until one would not fit, but always at least
/// the first dirty one (a bound of one segment's keys past the buffer, as Kafka needs).
fn build_key_map(plan: &CleanPlan) -> io::Result<(KeyMap, i64)> {
    let mut map = KeyMap {
        seeds: (RandomState::new(), RandomState::new()),
        latest: HashMap::new(),
        producer_last: HashMap::new(),
    };
    let inputs: Vec<&Input> = plan.groups.iter().flatten().collect();
    let mut end = plan.end;
    let mut mapped_any = false;
    for (i, input) in inputs.iter().enumerate() {
        let next = inputs.get(i + 1).map_or(plan.end, |n| n.base);
        if next <= plan.first_dirty {
            continue;
        }
        let mut latest: HashMap<u128, i64> = HashMap::new();
        scan_inputs(std::slice::from_ref(*input), &mut |header, bytes| {
            if header.is_control() {
                return Ok(());
            }
            let set = codec::decode(bytes)?;
            for r in &set.records {
                if let Some(key) = &r.key {
                    latest.insert(map.hash(key), r.offset);
                }
            }
            Ok(())
        })?;
        let new_keys = latest
            .keys()
            .filter(|k| !map.latest.contains_key(*k))
            .count();
        if mapped_any && map.latest.len() + new_keys > plan.map_capacity {
            end = input.base;
            break;
        }
        map.latest.extend(latest);
        mapped_any = true;
    }
    // Every producer's last batch below the end, clean section included (headers only).
    let cleaned: Vec<Input> = inputs
        .iter()
        .filter(|i| i.base < end)
        .map(|i| (*i).clone())
        .collect();
    scan_inputs(&cleaned, &mut |header, _| {
        if header.has_producer_id() && !header.is_control() {
            map.producer_last
                .insert(header.producer_id, header.base_offset);
        }
        Ok(())
    })?;
    Ok((map, end))
}

enum Kept {
    All,
    Nothing,
    Some(BytesMut),
}

fn filter_batch(
    header: &BatchHeader,
    bytes: &[u8],
    map: &KeyMap,
    now_ms: i64,
    delete_retention_ms: i64,
    report: &mut CleanReport,
) -> io::Result<Kept> {
    if header.is_control() {
        return Ok(Kept::All);
    }
    let set = codec::decode(bytes)?;
    let total = set.records.len();
    // KIP-534: a batch whose tombstones a pass already kept carries their horizon.
    let horizon = set.records.first().and_then(|r| r.delete_horizon_ms);
    let mut kept_tombstones = false;
    let mut kept: Vec<_> = set
        .records
        .into_iter()
        .filter(|r| {
            let Some(key) = &r.key else {
                return true;
            };
            if map
                .latest
                .get(&map.hash(key))
                .is_some_and(|latest| *latest > r.offset)
            {
                return false;
            }
            if r.value.is_none() {
                if horizon.is_some_and(|h| now_ms >= h) {
                    report.tombstones_removed += 1;
                    return false;
                }
                kept_tombstones = true;
            }
            true
        })
        .collect();
    let mut stamp = None;
    if kept_tombstones {
        let due = horizon.unwrap_or_else(|| now_ms.saturating_add(delete_retention_ms));
        let next = report.next_tombstone_horizon.get_or_insert(due);
        *next = (*next).min(due);
        if horizon.is_none() {
            // The first pass to keep these tombstones starts their retention now.
            stamp = Some(due);
        }
    }
    if kept.len() == total && stamp.is_none() {
        return Ok(Kept::All);
    }
    if kept.is_empty() {
        // An idempotent producer's last batch stays whole: its sequences are what a
        // rebuilt producer state continues from.
        let last_of_producer = header.has_producer_id()
            && map.producer_last.get(&header.producer_id) == Some(&header.base_offset);
        if last_of_producer {
            return Ok(Kept::All);
        }
        report.records_removed += total as u64;
        return Ok(Kept::Nothing);
    }
    report.records_removed += (total - kept.len()) as u64;
    if let Some(due) = stamp {
        for r in &mut kept {
            r.delete_horizon_ms = Some(due);
        }
    }
    let mut out = codec::encode(&kept, set.compression)?;
    set_last_offset(&mut out, header.last_offset());
    if header.is_log_append_time() {
        // The encoder writes CreateTime: restore the broker's stamp and its type.
        set_log_append_time(&mut out, header.max_timestamp);
    }
    Ok(Kept::Some(out))
}

fn append(segment: &mut Segment, batch: &[u8], index_interval: u64) -> io::Result<()> {
    let header = BatchHeader::parse(batch)
        .ok_or_else(|| io::Error::other("a cleaned batch has no header"))?;
    let meta = AppendMeta {
        base_offset: header.base_offset,
        next_offset: header.next_offset(),
        max_timestamp: header.max_timestamp,
        offset_of_max_timestamp: header.base_offset,
    };
    segment.append(batch, &meta, index_interval)
}

/// Writes every group's cleaned segment into the staging directory, fsynced. Runs
/// without the log's lock: closed segments do not change.
pub fn write_cleaned(
    plan: &CleanPlan,
    now_ms: i64,
    policy: &CleanPolicy,
) -> io::Result<(Vec<Output>, CleanReport)> {
    let (map, end) = build_key_map(plan)?;
    let staging = plan.dir.join(STAGING_DIR);
    if plan.fs.exists(&staging) {
        plan.fs.remove_dir_all(&staging)?;
    }
    plan.fs.create_dir_all(&staging)?;
    let mut report = CleanReport {
        end,
        map_full: end < plan.end,
        ..CleanReport::default()
    };
    let mut outputs = Vec::new();
    let retention = policy.delete_retention_ms;
    let bases: Vec<i64> = plan.groups.iter().flatten().map(|i| i.base).collect();
    for group in &plan.groups {
        // Only segments below the map's end: the rest wait for the next pass.
        let group: Vec<Input> = group.iter().filter(|i| i.base < end).cloned().collect();
        let Some(base) = group.first().map(|i| i.base) else {
            break;
        };
        let mut segment = Segment::create(plan.fs.as_ref(), &staging, base)?;
        scan_inputs(&group, &mut |header, bytes| match filter_batch(
            header,
            bytes,
            &map,
            now_ms,
            retention,
            &mut report,
        )? {
            Kept::All => append(&mut segment, bytes, plan.index_interval),
            Kept::Nothing => Ok(()),
            Kept::Some(batch) => append(&mut segment, &batch, plan.index_interval),
        })?;
        segment.sync_all()?;
        report.segments_in += group.len() as u64;
        report.bytes_in += group.iter().map(|i| i.size).sum::<u64>();
        report.bytes_out += segment.size();
        if !segment.is_empty() {
            report.segments_out += 1;
        }
        let last = group.last().map_or(base, |i| i.base);
        let group_end = bases
            .iter()
            .copied()
            .find(|b| *b > last)
            .unwrap_or(plan.end);
        outputs.push(Output {
            base,
            end: group_end,
            replaces: group.iter().map(|i| i.base).collect(),
            empty: segment.is_empty(),
        });
    }
    plan.fs.sync_dir(&staging)?;
    Ok((outputs, report))
}

fn remove_if_present(fs: &dyn FileSystem, path: &Path) -> io::Result<()> {
    if fs.exists(path) {
        fs.remove_file(path)?;
    }
    Ok(())
}

/// The commit point: the staged log becomes `<base>.log.swap` in the partition directory,
/// made durable together with its cleaned marker (a marker left by a pass that crashed
/// before this sits on a segment below the recovery point, which was synced whole).
pub fn commit_swap(fs: &dyn FileSystem, dir: &Path, base: i64, end: i64) -> io::Result<()> {
    mark_cleaned(fs, dir, base)?;
    let staged = dir.join(STAGING_DIR).join(file_name(base, LOG_SUFFIX));
    fs.rename(&staged, &swap_path(dir, base, Some(end)))?;
    fs.sync_dir(dir)
}

fn mark_cleaned(fs: &dyn FileSystem, dir: &Path, base: i64) -> io::Result<()> {
    let marker = cleaned_marker_path(dir, base);
    if !fs.exists(&marker) {
        fs.open(&marker, crate::fsio::OpenMode::CreateNew)?;
    }
    Ok(())
}

/// `<base>.log.<end>.swap` (`<base>.log.swap` from before swaps named their end).
fn swap_path(dir: &Path, base: i64, end: Option<i64>) -> PathBuf {
    match end {
        Some(end) => dir.join(format!(
            "{}.{end:020}{SWAP_SUFFIX}",
            file_name(base, LOG_SUFFIX)
        )),
        None => dir.join(format!("{}{SWAP_SUFFIX}", file_name(base, LOG_SUFFIX))),
    }
}

/// (base, end) of a swap file's name.
fn parse_swap_name(name: &str) -> Option<(i64, Option<i64>)> {
    let stem = name.strip_suffix(SWAP_SUFFIX)?;
    if let Some(base) = super::segment::parse_log_file_name(stem) {
        return Some((base, None));
    }
    let (log, end) = stem.rsplit_once('.')?;
    Some((
        super::segment::parse_log_file_name(log)?,
        Some(end.parse().ok()?),
    ))
}

/// After the old segments are gone: the staged indexes and the swap take their names.
pub fn finish_swap(fs: &dyn FileSystem, dir: &Path, base: i64, end: Option<i64>) -> io::Result<()> {
    let staging = dir.join(STAGING_DIR);
    for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        let staged = staging.join(file_name(base, suffix));
        let target = dir.join(file_name(base, suffix));
        remove_if_present(fs, &target)?;
        if fs.exists(&staged) {
            fs.rename(&staged, &target)?;
        }
    }
    // Removing the replaced segments removed the marker at this base too.
    mark_cleaned(fs, dir, base)?;
    fs.rename(
        &swap_path(dir, base, end),
        &dir.join(file_name(base, LOG_SUFFIX)),
    )?;
    fs.sync_dir(dir)
}

/// Completes a cleaning pass a crash interrupted: a committed swap replaces the segments
/// it covers; anything merely staged is discarded. Returns the swaps completed.
pub fn finish_interrupted(fs: &dyn FileSystem, dir: &Path) -> io::Result<usize> {
    let entries = fs.list_dir(dir)?;
    let logs: Vec<i64> = entries
        .iter()
        .filter_map(|e| super::segment::parse_log_file_name(&e.name))
        .collect();
    let mut completed = 0;
    for entry in &entries {
        let Some((base, swap_end)) = parse_swap_name(&entry.name) else {
            continue;
        };
        let swap = fs.open(
            &swap_path(dir, base, swap_end),
            crate::fsio::OpenMode::Existing,
        )?;
        let len = swap.len()?;
        let mut last = base;
        let end = scan_batches(swap.as_ref(), 0, len, true, &mut |_, h, _| {
            last = h.last_offset();
            Ok(true)
        })?;
        if end != ScanEnd::Complete {
            // Never happens to a swap fsynced before its rename; keep the old segments.
            warn!(dir = %dir.display(), base_offset = base, "discarding a damaged cleaned segment");
            fs.remove_file(&swap_path(dir, base, swap_end))?;
            continue;
        }
        // Exactly the segments the swap replaces: [base, end). A swap named before ends
        // were recorded covers what its batches reach.
        let replaced = |b: i64| b >= base && swap_end.map_or(b <= last, |end| b < end);
        for &old in logs.iter().filter(|&&b| replaced(b)) {
            remove_segment_files(fs, dir, old)?;
        }
        finish_swap(fs, dir, base, swap_end)?;
        info!(dir = %dir.display(), base_offset = base, last_offset = last, "completed an interrupted cleaning swap");
        completed += 1;
    }
    let staging = dir.join(STAGING_DIR);
    if fs.exists(&staging) {
        fs.remove_dir_all(&staging)?;
    }
    if completed > 0 {
        fs.sync_dir(dir)?;
    }
    Ok(completed)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;

    use bytes::Bytes;
    use proto_kafka::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };
    use uuid::Uuid;

    use super::*;
    use crate::fsio::sim::{CutMode, SimFs};
    use crate::fsio::{DirEntry, DirLock, OpenMode, Volume};
    use crate::log::partition_log::{LogConfig, OpenOptions, PartitionLog};
    use crate::log::segment::read_batches;
    use crate::records::validate::{validate_produce_batch, Limits};

    /// (offset, key, value)
    type Row = (i64, Vec<u8>, Option<Vec<u8>>);

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 600,
            segment_ms: i64::MAX,
            index_interval_bytes: 128,
            decompression_budget: 1 << 20,
        }
    }

    fn policy() -> CleanPolicy {
        CleanPolicy {
            map_capacity: 1 << 20,
            min_cleanable_ratio: 0.0,
            delete_retention_ms: 1_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }
    }

    const NOW: i64 = 10_000;

    fn keyed(records: &[(&str, Option<String>, i64)], compression: Compression) -> BytesMut {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v, ts))| Record {
                transactional: false,
                control: false,
                delete_horizon_ms: None,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: *ts,
                key: Some(Bytes::copy_from_slice(k.as_bytes())),
                value: v.clone().map(Bytes::from),
                headers: Vec::new(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf
    }

    fn limits() -> Limits {
        Limits {
            max_batch_bytes: 1 << 20,
            max_decompressed_bytes: 1 << 20,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            create_time: true,
            require_keys: true,
            now_ms: NOW,
        }
    }

    /// Ten keys over many batches (some compressed, some of several records), a
    /// tombstone older than delete.retention.ms (k3) and a fresh one (k4), all synced.
    fn fill(log: &mut PartitionLog, fs: &dyn FileSystem) {
        let mut n = 0;
        for round in 0..12 {
            for k in 0..10 {
                let key = format!("k{k}");
                let value = Some(format!("{key}-r{round}"));
                let records = if k % 4 == 0 {
                    vec![
                        (key.as_str(), value.clone(), 5_000),
                        (key.as_str(), Some(format!("{key}-r{round}b")), 5_000),
                    ]
                } else {
                    vec![(key.as_str(), value, 5_000)]
                };
                let compression = if n % 3 == 0 {
                    Compression::Lz4
                } else {
                    Compression::None
                };
                let mut batch = keyed(&records, compression);
                let valid = validate_produce_batch(&batch, &limits()).unwrap();
                log.append_as_leader(&mut batch, &valid, 1, NOW, false)
                    .unwrap();
                n += 1;
            }
        }
        for (key, ts) in [("k3", 1_000), ("k4", 9_500)] {
            let mut batch = keyed(&[(key, None, ts)], Compression::None);
            let valid = validate_produce_batch(&batch, &limits()).unwrap();
            log.append_as_leader(&mut batch, &valid, 1, NOW, false)
                .unwrap();
        }
        // Filler so that the tombstones' segment closes.
        for i in 0..8 {
            let mut batch = keyed(&[("filler", Some(format!("f{i}")), NOW)], Compression::None);
            let valid = validate_produce_batch(&batch, &limits()).unwrap();
            log.append_as_leader(&mut batch, &valid, 1, NOW, false)
                .unwrap();
        }
        while let Some(ticket) = log.take_flush() {
            for f in &ticket.files {
                f.sync_data().unwrap();
            }
            if let Some(dir) = &ticket.dir {
                fs.sync_dir(dir).unwrap();
            }
            log.finish_flush(&ticket, true);
        }
    }

    fn read_all(log: &PartitionLog) -> Vec<Row> {
        let mut rows = Vec::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let Some(plan) = log.read_plan(offset).unwrap() else {
                break;
            };
            let read = read_batches(&plan, offset, 1 << 20, true, i64::MAX).unwrap();
            if read.bytes.is_empty() {
                break;
            }
            let mut bytes = read.bytes;
            while !bytes.is_empty() {
                let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
                for r in set.records.into_iter().filter(|r| r.offset >= offset) {
                    rows.push((
                        r.offset,
                        r.key.unwrap().to_vec(),
                        r.value.map(|v| v.to_vec()),
                    ));
                }
            }
            offset = read.next_offset;
        }
        rows
    }

    /// What a pass over offsets below `end` must leave.
    /// What a first pass over offsets below `end` must leave: the latest record per key,
    /// tombstones included (their retention starts with this pass, KIP-534).
    fn expected(original: &[Row], end: i64) -> Vec<Row> {
        let mut latest: BTreeMap<&[u8], i64> = BTreeMap::new();
        for (offset, key, _) in original.iter().filter(|r| r.0 < end) {
            latest.insert(key, *offset);
        }
        original
            .iter()
            .filter(|(offset, key, _)| *offset >= end || latest.get(key.as_slice()) == Some(offset))
            .cloned()
            .collect()
    }

    fn clean_at(
        log: &mut PartitionLog,
        upto: i64,
        now: i64,
        policy: &CleanPolicy,
    ) -> io::Result<Option<CleanReport>> {
        let Some(plan) = log.clean_plan(upto, now, policy) else {
            return Ok(None);
        };
        let (outputs, report) = write_cleaned(&plan, now, policy)?;
        log.install_cleaned(&outputs, &report)
            .map_err(io::Error::other)?;
        Ok(Some(report))
    }

    fn clean(log: &mut PartitionLog, upto: i64) -> io::Result<Option<i64>> {
        Ok(clean_at(log, upto, NOW, &policy())?.map(|r| r.end))
    }

    #[test]
    fn the_latest_value_per_key_stays_at_its_offset_and_tombstones_go_after_their_retention() {
        let fs = Arc::new(SimFs::new());
        let dir = Path::new("/data/t-0");
        let mut log = PartitionLog::create(fs.clone(), dir, Uuid::new_v4(), config()).unwrap();
        fill(&mut log, fs.as_ref());
        let original = read_all(&log);
        let size_before = log.size_bytes();
        let upto = log.recovery_point();
        let end = clean(&mut log, upto).unwrap().expect("due");
        assert!(end > 0);
        let after = read_all(&log);
        assert_eq!(after, expected(&original, end));
        // k3's tombstone has an event time far older than delete.retention.ms: it stays
        // anyway, so that a consumer lagging behind sees the delete (KIP-534).
        for key in [&b"k3"[..], b"k4"] {
            assert!(
                after.iter().any(|r| r.1 == key && r.2.is_none()),
                "the first pass keeps every tombstone"
            );
        }
        assert!(log.size_bytes() < size_before / 2);
        // A second pass before the horizon finds nothing new to do.
        assert_eq!(clean(&mut log, upto).unwrap(), None);
        // Reopened, the log reads the same.
        let reopened = PartitionLog::open(
            fs.clone(),
            dir,
            log.topic_id(),
            config(),
            OpenOptions {
                clean_shutdown: false,
                recovery_point: Some(log.recovery_point()),
                log_start_offset: None,
            },
        )
        .unwrap()
        .0;
        assert_eq!(read_all(&reopened), after);
        // Once the horizon the first pass wrote has passed, both tombstones go (a
        // restart in between changes nothing: the horizon is in the batches).
        let mut log = reopened;
        let later = NOW + policy().delete_retention_ms;
        let report = clean_at(&mut log, upto, later, &policy())
            .unwrap()
            .expect("due at the horizon");
        assert_eq!(report.tombstones_removed, 2);
        let last = read_all(&log);
        assert!(!last.iter().any(|r| r.2.is_none()), "no tombstone left");
        assert!(!last.iter().any(|r| r.1 == b"k3" || r.1 == b"k4"));
    }

    #[test]
    fn a_key_map_smaller_than_the_dirty_keys_cleans_in_several_passes() {
        let fs = Arc::new(SimFs::new());
        let dir = Path::new("/data/t-0");
        let mut log = PartitionLog::create(fs.clone(), dir, Uuid::new_v4(), config()).unwrap();
        fill(&mut log, fs.as_ref());
        let original = read_all(&log);
        let upto = log.recovery_point();
        // Room for three keys: each pass maps as few segments as fit (at least one).
        let small = CleanPolicy {
            map_capacity: 3,
            ..policy()
        };
        let mut passes = 0;
        let mut partial = 0;
        while let Some(report) = clean_at(&mut log, upto, NOW, &small).unwrap() {
            passes += 1;
            partial += usize::from(report.map_full);
            assert!(passes < 100, "the passes make progress");
        }
        assert!(partial > 0, "some passes stopped at a full map");
        let mut whole = PartitionLog::open(
            fs.clone(),
            dir,
            log.topic_id(),
            config(),
            OpenOptions::default(),
        )
        .unwrap()
        .0;
        // One more pass with an unbounded map changes nothing: the bounded passes did
        // all of it.
        let before = read_all(&whole);
        clean_at(&mut whole, upto, NOW, &policy()).unwrap();
        assert_eq!(read_all(&whole), before);
        let mut latest: BTreeMap<&[u8], i64> = BTreeMap::new();
        for (offset, key, _) in original.iter().filter(|r| r.0 < upto) {
            latest.insert(key, *offset);
        }
        for (offset, key, _) in &before {
            if *offset < upto {
                assert_eq!(
                    latest.get(key.as_slice()),
                    Some(offset),
                    "only latest values stay"
                );
            }
        }
    }

    #[test]
    fn segments_past_the_recovery_point_are_not_cleaned() {
        let fs = Arc::new(SimFs::new());
        let dir = Path::new("/data/t-0");
        let mut log = PartitionLog::create(fs.clone(), dir, Uuid::new_v4(), config()).unwrap();
        fill(&mut log, fs.as_ref());
        assert_eq!(clean(&mut log, 0).unwrap(), None);
        let end = clean(&mut log, 40).unwrap().expect("due");
        assert!(end <= 40);
    }

    /// A pass planned on one incarnation of a topic must never install into the next:
    /// the topic is deleted and created again (same directory name) while the pass runs.
    #[test]
    fn a_pass_racing_a_delete_and_recreate_never_touches_the_new_incarnation() {
        let fs = Arc::new(SimFs::new());
        let dir = Path::new("/data/t-0");
        let mut old = PartitionLog::create(fs.clone(), dir, Uuid::new_v4(), config()).unwrap();
        fill(&mut old, fs.as_ref());
        let upto = old.recovery_point();
        let plan = old.clean_plan(upto, NOW, &policy()).expect("due");
        old.delete_dir().unwrap();
        let mut new = PartitionLog::create(fs.clone(), dir, Uuid::new_v4(), config()).unwrap();
        for i in 0..5 {
            let mut batch = keyed(&[("n", Some(format!("new-{i}")), NOW)], Compression::None);
            let valid = validate_produce_batch(&batch, &limits()).unwrap();
            new.append_as_leader(&mut batch, &valid, 1, NOW, false)
                .unwrap();
        }
        let before = read_all(&new);
        // The pass reads the old files (still open) and stages into the directory,
        // which is now the new incarnation's.
        let (outputs, report) = write_cleaned(&plan, NOW, &policy()).unwrap();
        assert!(
            old.install_cleaned(&outputs, &report).is_err(),
            "a deleted log refuses the install"
        );
        assert_eq!(read_all(&new), before, "the new incarnation is untouched");
        let reopened = PartitionLog::open(
            fs.clone(),
            dir,
            new.topic_id(),
            config(),
            OpenOptions::default(),
        )
        .unwrap()
        .0;
        assert_eq!(read_all(&reopened), before, "also after a restart");
    }

    /// A file system that cuts power at its `n`th directory operation once armed.
    #[derive(Debug)]
    struct CutAt {
        inner: SimFs,
        armed: AtomicBool,
        left: AtomicUsize,
        rebooted: Mutex<Option<SimFs>>,
    }

    impl CutAt {
        fn step(&self) -> io::Result<()> {
            if !self.armed.load(Ordering::SeqCst) {
                return Ok(());
            }
            if self.left.fetch_sub(1, Ordering::SeqCst) == 1 {
                *self.rebooted.lock().unwrap() = Some(self.inner.power_cut(CutMode::LoseUnsynced));
                return Err(io::Error::other("power cut"));
            }
            Ok(())
        }
    }

    impl FileSystem for CutAt {
        fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn LogFile>> {
            self.step()?;
            self.inner.open(path, mode)
        }
        fn create_dir_all(&self, path: &Path) -> io::Result<()> {
            self.step()?;
            self.inner.create_dir_all(path)
        }
        fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
            self.inner.list_dir(path)
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            self.step()?;
            self.inner.rename(from, to)
        }
        fn remove_file(&self, path: &Path) -> io::Result<()> {
            self.step()?;
            self.inner.remove_file(path)
        }
        fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
            self.step()?;
            self.inner.remove_dir_all(path)
        }
        fn sync_dir(&self, path: &Path) -> io::Result<()> {
            self.step()?;
            self.inner.sync_dir(path)
        }
        fn exists(&self, path: &Path) -> bool {
            self.inner.exists(path)
        }
        fn lock_dir(&self, path: &Path) -> io::Result<DirLock> {
            self.inner.lock_dir(path)
        }
        fn open_volume(&self, dir: &Path) -> io::Result<Option<Arc<dyn Volume>>> {
            self.inner.open_volume(dir)
        }
    }

    #[test]
    fn a_compacted_log_reopened_without_any_checkpoint_keeps_every_record() {
        // A missing, damaged or foreign recovery-point entry means full recovery: the
        // gaps compaction left must not be taken for lost tails.
        let fs = Arc::new(SimFs::new());
        let dir = Path::new("/data/t-0");
        let mut log = PartitionLog::create(fs.clone(), dir, Uuid::new_v4(), config()).unwrap();
        fill(&mut log, fs.as_ref());
        let upto = log.recovery_point();
        clean(&mut log, upto).unwrap().expect("due");
        let after = read_all(&log);
        let (reopened, report) = PartitionLog::open(
            fs.clone(),
            dir,
            log.topic_id(),
            config(),
            OpenOptions::default(),
        )
        .unwrap();
        assert_eq!(report.deleted_segments, 0);
        assert_eq!(
            report.recovered_segments, report.segments,
            "recovered in full"
        );
        assert_eq!(read_all(&reopened), after);
    }

    #[test]
    fn a_power_cut_at_any_step_of_a_cleaning_pass_loses_nothing() {
        power_cut_sweep(true);
    }

    #[test]
    fn a_power_cut_at_any_step_of_a_cleaning_pass_loses_nothing_without_a_recovery_point() {
        power_cut_sweep(false);
    }

    /// Cuts power at every directory operation of a pass in turn and reopens, with the
    /// recovery point the pass cleaned up to or (as after a lost checkpoint) none.
    fn power_cut_sweep(recovery_point_known: bool) {
        let dir = Path::new("/data/t-0");
        let mut outcomes = (0usize, 0usize, 0usize); // (kept original, fully cleaned, swaps completed at open)
        for n in 1.. {
            let cut = Arc::new(CutAt {
                inner: SimFs::new(),
                armed: AtomicBool::new(false),
                left: AtomicUsize::new(n),
                rebooted: Mutex::new(None),
            });
            cut.inner.create_dir_all(Path::new("/data")).unwrap();
            cut.inner.sync_dir(Path::new("/")).unwrap();
            let mut log = PartitionLog::create(cut.clone(), dir, Uuid::new_v4(), config()).unwrap();
            fill(&mut log, cut.as_ref());
            let original = read_all(&log);
            let upto = log.recovery_point();
            cut.armed.store(true, Ordering::SeqCst);
            let result = clean(&mut log, upto);
            let rebooted = cut.rebooted.lock().unwrap().take();
            let Some(rebooted) = rebooted else {
                let end = result.unwrap().expect("due");
                assert_eq!(read_all(&log), expected(&original, end));
                assert!(n > 10, "the pass has more than a few steps to cut");
                break;
            };
            let (reopened, report) = PartitionLog::open(
                Arc::new(rebooted),
                dir,
                log.topic_id(),
                config(),
                OpenOptions {
                    clean_shutdown: false,
                    recovery_point: recovery_point_known.then_some(upto),
                    log_start_offset: None,
                },
            )
            .unwrap();
            let rows = read_all(&reopened);
            let by_offset: BTreeMap<i64, &Row> = original.iter().map(|r| (r.0, r)).collect();
            for row in &rows {
                assert_eq!(
                    by_offset.get(&row.0),
                    Some(&row),
                    "cut {n}: an invented or altered record"
                );
            }
            let end = upto;
            let mut want = expected(&original, end);
            // Records of segments the plan never covered count as kept too.
            want.retain(|r| r.0 < end);
            for row in &want {
                assert!(rows.contains(row), "cut {n}: lost {row:?}");
            }
            assert!(
                rows.windows(2).all(|w| w[0].0 < w[1].0),
                "cut {n}: offsets out of order"
            );
            assert_eq!(
                rows.last().map(|r| r.0),
                original.last().map(|r| r.0),
                "cut {n}: the tail is intact"
            );
            if rows == original {
                outcomes.0 += 1;
            } else if rows.len() < original.len() {
                outcomes.1 += 1;
            }
            outcomes.2 += report.completed_swaps;
        }
        assert!(outcomes.0 > 0, "some cuts came before the commit");
        assert!(outcomes.1 > 0, "some cuts came after a commit");
        assert!(outcomes.2 > 0, "some swaps were completed at open");
    }
}
