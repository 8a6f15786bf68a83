//! RecordBatch v2, the unit Runnel stores and replicates byte for byte.
//!
//! Layout (big-endian), from Kafka's message-format documentation:
//!
//! ```text
//!  0 baseOffset: i64          12 partitionLeaderEpoch: i32   17 crc: u32 (CRC-32C of 21..)
//!  8 batchLength: i32         16 magic: i8 (= 2)             21 attributes: i16
//! 23 lastOffsetDelta: i32     27 baseTimestamp: i64          35 maxTimestamp: i64
//! 43 producerId: i64          51 producerEpoch: i16          53 baseSequence: i32
//! 57 recordsCount: i32        61 records...
//! ```
//!
//! The CRC covers everything from `attributes` on, so the leader may overwrite
//! `baseOffset` and `partitionLeaderEpoch` in place without recomputing it.

/// Bytes before the records: the fixed batch header.
pub const HEADER_LEN: usize = 61;
/// `baseOffset` and `batchLength`, which `batchLength` does not count.
pub const LOG_OVERHEAD: usize = 12;
/// The smallest legal `batchLength` (a header with no records).
pub const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;
/// The only batch format Runnel accepts.
pub const MAGIC_V2: i8 = 2;

const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const MAX_TIMESTAMP: usize = 35;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// The codecs a batch may use (attributes bits 0–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    pub fn from_id(id: i16) -> Option<Codec> {
        match id {
            0 => Some(Codec::None),
            1 => Some(Codec::Gzip),
            2 => Some(Codec::Snappy),
            3 => Some(Codec::Lz4),
            4 => Some(Codec::Zstd),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

/// The fixed fields of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(x)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(x)
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Parses the header at the start of `buf`, or `None` if fewer than
    /// [`HEADER_LEN`] bytes are there. Nothing is validated.
    pub fn parse(buf: &[u8]) -> Option<BatchHeader> {
        if buf.len() < HEADER_LEN {
            return None;
        }
        Some(BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH),
            magic: buf[MAGIC] as i8,
            crc: be_i32(buf, CRC) as u32,
            attributes: be_i16(buf, ATTRIBUTES),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            records_count: be_i32(buf, 57),
        })
    }

    /// Bytes the whole batch occupies, `batchLength` plus the 12 it does not count.
    /// Only meaningful once `batch_length >= MIN_BATCH_LENGTH` was checked.
    pub fn total_size(&self) -> usize {
        self.batch_length.max(0) as usize + LOG_OVERHEAD
    }

    /// Saturating: a corrupt header near `i64::MAX` must not overflow (recovery reads
    /// whatever is on disk).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// The offset after this batch (saturating, as `last_offset`).
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    pub fn codec(&self) -> Option<Codec> {
        Codec::from_id(self.attributes & COMPRESSION_MASK)
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// Whether the stored CRC-32C matches the batch's bytes. `batch` is the whole batch.
pub fn crc_matches(batch: &[u8]) -> bool {
    if batch.len() < HEADER_LEN {
        return false;
    }
    let stored = be_i32(batch, CRC) as u32;
    crc32c::crc32c(&batch[ATTRIBUTES..]) == stored
}

/// Stamps the offset the leader assigned. Outside the CRC.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Stamps the leader epoch the batch was appended in. Outside the CRC.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch as LogAppendTime with `now_ms` as its timestamp. This changes
/// `attributes` and `maxTimestamp`, which the CRC covers, so the CRC is recomputed.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = be_i16(batch, ATTRIBUTES) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Sets the batch's CreateTime max timestamp to what its records hold (Kafka rewrites a
/// wrong claim the same way): the field is under the CRC, which is recomputed. Returns
/// whether the batch changed.
pub fn set_max_timestamp(batch: &mut [u8], max_timestamp: i64) -> bool {
    if be_i64(batch, MAX_TIMESTAMP) == max_timestamp {
        return false;
    }
    batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    true
}

/// Sets the batch's last offset (base offset + delta), as compaction keeps it when it
/// removes the batch's last records (KIP-98: the next offset and an idempotent producer's
/// last sequence must not move). `lastOffsetDelta` is under the CRC, which is recomputed.
pub fn set_last_offset(batch: &mut [u8], last_offset: i64) {
    let base = be_i64(batch, 0);
    let delta = i32::try_from(last_offset - base).unwrap_or(i32::MAX);
    batch[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4].copy_from_slice(&delta.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// One step of walking a buffer of consecutive batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A complete batch at `pos` whose CRC matched (when checked).
    Batch { pos: usize, header: BatchHeader },
    /// The buffer ends inside the batch starting at `pos`.
    Incomplete { pos: usize },
    /// The bytes at `pos` are not a valid batch.
    Corrupt { pos: usize, reason: &'static str },
}

/// Walks the batches in `buf`, stopping at the first incomplete or corrupt one.
#[derive(Debug)]
pub struct BatchWalker<'a> {
    buf: &'a [u8],
    pos: usize,
    check_crc: bool,
    done: bool,
}

impl<'a> BatchWalker<'a> {
    pub fn new(buf: &'a [u8], check_crc: bool) -> Self {
        BatchWalker {
            buf,
            pos: 0,
            check_crc,
            done: false,
        }
    }
}

impl Iterator for BatchWalker<'_> {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        if self.done || self.pos >= self.buf.len() {
            return None;
        }
        let pos = self.pos;
        let step = inspect(&self.buf[pos..], self.check_crc, pos);
        match step {
            Step::Batch { header, .. } => self.pos += header.total_size(),
            Step::Incomplete { .. } | Step::Corrupt { .. } => self.done = true,
        }
        Some(step)
    }
}

/// Classifies the bytes at the start of `rest` (which begins at `pos` of a larger buffer).
pub fn inspect(rest: &[u8], check_crc: bool, pos: usize) -> Step {
    let Some(header) = BatchHeader::parse(rest) else {
        // Fewer bytes than a header: incomplete unless what is there already says
        // this cannot be a batch.
        if rest.len() >= LOG_OVERHEAD && be_i32(rest, 8) < MIN_BATCH_LENGTH {
            return Step::Corrupt {
                pos,
                reason: "batch length below the header size",
            };
        }
        return Step::Incomplete { pos };
    };
    if header.batch_length < MIN_BATCH_LENGTH {
        return Step::Corrupt {
            pos,
            reason: "batch length below the header size",
        };
    }
    if header.magic != MAGIC_V2 {
        return Step::Corrupt {
            pos,
            reason: "magic is not 2",
        };
    }
    if header.last_offset_delta < 0 || header.base_offset < 0 {
        return Step::Corrupt {
            pos,
            reason: "negative offset",
        };
    }
    let size = header.total_size();
    if rest.len() < size {
        return Step::Incomplete { pos };
    }
    if check_crc && !crc_matches(&rest[..size]) {
        return Step::Corrupt {
            pos,
            reason: "CRC-32C mismatch",
        };
    }
    Step::Batch { pos, header }
}

#[cfg(test)]
pub(crate) mod test_batches {
    //! Builds valid batches for tests without going through a client.
    use super::*;

    /// An uncompressed batch of `values`, keys `k<i>`, base offset 0.
    pub(crate) fn uncompressed(values: &[&[u8]], timestamp: i64) -> Vec<u8> {
        let mut records = Vec::new();
        for (i, value) in values.iter().enumerate() {
            let key = format!("k{i}");
            let mut body = Vec::new();
            body.push(0u8); // attributes
            put_varlong(&mut body, 0); // timestamp delta
            put_varlong(&mut body, i as i64); // offset delta
            put_varlong(&mut body, key.len() as i64);
            body.extend_from_slice(key.as_bytes());
            put_varlong(&mut body, value.len() as i64);
            body.extend_from_slice(value);
            put_varlong(&mut body, 0); // headers
            put_varlong(&mut records, body.len() as i64);
            records.extend_from_slice(&body);
        }
        assemble(0, &records, values.len() as i32, timestamp)
    }

    /// [`uncompressed`] from an idempotent producer: id, epoch and first sequence set.
    pub(crate) fn idempotent(
        values: &[&[u8]],
        timestamp: i64,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> Vec<u8> {
        let mut b = uncompressed(values, timestamp);
        b[43..51].copy_from_slice(&producer_id.to_be_bytes());
        b[51..53].copy_from_slice(&producer_epoch.to_be_bytes());
        b[53..57].copy_from_slice(&base_sequence.to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES..]);
        b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// A batch with a given attributes codec id around an already encoded records section.
    pub(crate) fn assemble(codec: i16, records: &[u8], count: i32, timestamp: i64) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LEN + records.len());
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.push(MAGIC_V2 as u8);
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&codec.to_be_bytes());
        b.extend_from_slice(&(count - 1).to_be_bytes());
        b.extend_from_slice(&timestamp.to_be_bytes());
        b.extend_from_slice(&timestamp.to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&count.to_be_bytes());
        b.extend_from_slice(records);
        let crc = crc32c::crc32c(&b[ATTRIBUTES..]);
        b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    pub(crate) fn put_varlong(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::test_batches::uncompressed;
    use super::*;

    #[test]
    fn a_built_batch_parses_and_its_crc_matches() {
        let batch = uncompressed(&[b"a", b"bc"], 1000);
        let header = BatchHeader::parse(&batch).unwrap();
        assert_eq!(header.records_count, 2);
        assert_eq!(header.last_offset_delta, 1);
        assert_eq!(header.total_size(), batch.len());
        assert!(crc_matches(&batch));
    }

    #[test]
    fn patching_offset_and_epoch_keeps_the_crc_valid() {
        let mut batch = uncompressed(&[b"a"], 1000);
        set_base_offset(&mut batch, 42);
        set_partition_leader_epoch(&mut batch, 7);
        assert!(crc_matches(&batch));
        let header = BatchHeader::parse(&batch).unwrap();
        assert_eq!((header.base_offset, header.partition_leader_epoch), (42, 7));
    }

    #[test]
    fn log_append_time_rewrites_the_crc() {
        let mut batch = uncompressed(&[b"a"], 1000);
        set_log_append_time(&mut batch, 5000);
        assert!(crc_matches(&batch));
        let header = BatchHeader::parse(&batch).unwrap();
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp, 5000);
    }

    #[test]
    fn the_walker_stops_at_a_torn_batch_and_at_garbage() {
        let one = uncompressed(&[b"a"], 1);
        let mut buf = one.clone();
        buf.extend_from_slice(&one[..30]);
        let steps: Vec<Step> = BatchWalker::new(&buf, true).collect();
        assert!(matches!(steps[0], Step::Batch { pos: 0, .. }));
        assert_eq!(steps[1], Step::Incomplete { pos: one.len() });

        let mut buf = one.clone();
        let mut bad = one.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        buf.extend_from_slice(&bad);
        let steps: Vec<Step> = BatchWalker::new(&buf, true).collect();
        assert!(matches!(
            steps[1],
            Step::Corrupt {
                reason: "CRC-32C mismatch",
                ..
            }
        ));
    }

    #[test]
    fn offsets_near_the_top_of_the_range_saturate() {
        let mut batch = uncompressed(&[b"a"], 1);
        set_base_offset(&mut batch, i64::MAX - 1);
        batch[23..27].copy_from_slice(&i32::MAX.to_be_bytes());
        let header = BatchHeader::parse(&batch).unwrap();
        assert_eq!(header.last_offset(), i64::MAX);
        assert_eq!(header.next_offset(), i64::MAX);
    }
}
