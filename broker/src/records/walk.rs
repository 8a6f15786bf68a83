//! Walks the records inside a batch without decoding them into objects.
//!
//! Used to validate produced batches and to find a record by timestamp. Keys, values and
//! headers are skipped, never copied, so a batch claiming millions of empty headers costs
//! time bounded by its bytes and no memory. Compressed batches are read through a
//! streaming decompressor capped at a byte budget, so a compression bomb stops at the cap.

use std::io::{self, BufRead, BufReader, Read};

use super::batch::{BatchHeader, Codec, HEADER_LEN};

/// Why walking the records stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkError {
    /// The record bytes are malformed; the message says how.
    Malformed(String),
    /// Decompressing would exceed the budget.
    OverBudget { budget: usize },
    /// The compressed payload could not be decompressed.
    Decompress(String),
    /// The visitor rejected a record.
    Rejected { index: usize, message: String },
}

/// What a visitor learns of each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    pub index: usize,
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub has_key: bool,
}

/// A byte source that counts what it has consumed.
trait Source {
    fn byte(&mut self) -> Result<u8, WalkError>;
    fn skip(&mut self, n: usize) -> Result<(), WalkError>;
    fn consumed(&self) -> usize;
    fn at_end(&mut self) -> Result<bool, WalkError>;
}

struct SliceSource<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn truncated() -> WalkError {
    WalkError::Malformed("records end before the declared record count".into())
}

impl Source for SliceSource<'_> {
    fn byte(&mut self) -> Result<u8, WalkError> {
        let b = *self.buf.get(self.pos).ok_or_else(truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn skip(&mut self, n: usize) -> Result<(), WalkError> {
        if self.buf.len() - self.pos < n {
            return Err(truncated());
        }
        self.pos += n;
        Ok(())
    }

    fn consumed(&self) -> usize {
        self.pos
    }

    fn at_end(&mut self) -> Result<bool, WalkError> {
        Ok(self.pos == self.buf.len())
    }
}

/// Reads a decompressor through a cap of `budget + 1` bytes.
struct StreamSource<R: Read> {
    reader: BufReader<io::Take<R>>,
    consumed: usize,
    budget: usize,
}

impl<R: Read> StreamSource<R> {
    fn new(inner: R, budget: usize) -> Self {
        StreamSource {
            reader: BufReader::with_capacity(32 * 1024, inner.take(budget as u64 + 1)),
            consumed: 0,
            budget,
        }
    }

    fn fill(&mut self) -> Result<&[u8], WalkError> {
        if self.consumed > self.budget {
            return Err(WalkError::OverBudget {
                budget: self.budget,
            });
        }
        self.reader
            .fill_buf()
            .map_err(|e| WalkError::Decompress(e.to_string()))
    }

    fn advance(&mut self, n: usize) -> Result<(), WalkError> {
        self.reader.consume(n);
        self.consumed += n;
        if self.consumed > self.budget {
            return Err(WalkError::OverBudget {
                budget: self.budget,
            });
        }
        Ok(())
    }
}

impl<R: Read> Source for StreamSource<R> {
    fn byte(&mut self) -> Result<u8, WalkError> {
        let b = *self.fill()?.first().ok_or_else(truncated)?;
        self.advance(1)?;
        Ok(b)
    }

    fn skip(&mut self, mut n: usize) -> Result<(), WalkError> {
        while n > 0 {
            let available = self.fill()?.len();
            if available == 0 {
                return Err(truncated());
            }
            let step = available.min(n);
            self.advance(step)?;
            n -= step;
        }
        Ok(())
    }

    fn consumed(&self) -> usize {
        self.consumed
    }

    fn at_end(&mut self) -> Result<bool, WalkError> {
        Ok(self.fill()?.is_empty())
    }
}

fn varlong<S: Source>(src: &mut S) -> Result<i64, WalkError> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let b = src.byte()?;
        raw |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            if shift == 63 && b > 1 {
                break;
            }
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(WalkError::Malformed("varint longer than 10 bytes".into()))
}

fn varint<S: Source>(src: &mut S) -> Result<i32, WalkError> {
    let v = varlong(src)?;
    i32::try_from(v).map_err(|_| WalkError::Malformed("varint out of the i32 range".into()))
}

fn length<S: Source>(src: &mut S, what: &str, nullable: bool) -> Result<Option<usize>, WalkError> {
    let n = varint(src)?;
    match n {
        -1 if nullable => Ok(None),
        n if n >= 0 => Ok(Some(n as usize)),
        n => Err(WalkError::Malformed(format!(
            "{what} length {n} is invalid"
        ))),
    }
}

fn walk<S: Source>(
    src: &mut S,
    count: usize,
    visit: &mut dyn FnMut(RecordMeta) -> Result<(), String>,
) -> Result<(), WalkError> {
    for index in 0..count {
        let declared = length(src, "record", false)?.unwrap_or(0);
        let start = src.consumed();
        let _attributes = src.byte()?;
        let timestamp_delta = varlong(src)?;
        let offset_delta = varint(src)?;
        let key = length(src, "key", true)?;
        if let Some(n) = key {
            src.skip(n)?;
        }
        if let Some(n) = length(src, "value", true)? {
            src.skip(n)?;
        }
        let headers = length(src, "header count", false)?.unwrap_or(0);
        for _ in 0..headers {
            let key_len = length(src, "header key", false)?.unwrap_or(0);
            src.skip(key_len)?;
            if let Some(n) = length(src, "header value", true)? {
                src.skip(n)?;
            }
        }
        let used = src.consumed() - start;
        if used != declared {
            return Err(WalkError::Malformed(format!(
                "record {index} declares {declared} bytes but holds {used}"
            )));
        }
        visit(RecordMeta {
            index,
            offset_delta,
            timestamp_delta,
            has_key: key.is_some(),
        })
        .map_err(|message| WalkError::Rejected { index, message })?;
    }
    if !src.at_end()? {
        return Err(WalkError::Malformed(
            "bytes follow the last declared record".into(),
        ));
    }
    Ok(())
}

/// Largest output raw snappy can produce per input byte (a 64-byte copy in a 3-byte
/// element); a declared length beyond it is a lie, whatever the budget.
const SNAPPY_MAX_RATIO: usize = 22;
/// The Xerial framing header Java's snappy stream writes before its chunks.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_LEN: usize = 16;
/// zstd windows above 16 MiB are refused: producers compress whole batches at default
/// levels (windows of a few MiB), so a larger window only costs memory.
const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// Calls `visit` for every record of `batch` (a whole, CRC-checked batch), decompressing
/// with at most `budget` bytes of output. Every record must parse, exactly
/// `records_count` of them, with nothing after the last.
pub fn for_each_record(
    batch: &[u8],
    header: &BatchHeader,
    budget: usize,
    visit: &mut dyn FnMut(RecordMeta) -> Result<(), String>,
) -> Result<(), WalkError> {
    let payload = &batch[HEADER_LEN.min(batch.len())..];
    let count = usize::try_from(header.records_count)
        .map_err(|_| WalkError::Malformed("negative record count".into()))?;
    let codec = header
        .codec()
        .ok_or_else(|| WalkError::Malformed("unknown compression codec".into()))?;
    if codec == Codec::None {
        // Walked where they lie: no reader, no allocation.
        let mut source = SliceSource {
            buf: payload,
            pos: 0,
        };
        return walk(&mut source, count, visit);
    }
    match decompressed(payload, codec, budget)? {
        Decompressed::Stream(reader) => walk(&mut StreamSource::new(reader, budget), count, visit),
        Decompressed::Block(out) => walk(&mut SliceSource { buf: &out, pos: 0 }, count, visit),
    }
}

/// Decompresses a whole batch payload into memory, refusing to produce more than
/// `budget` bytes (for readers that need the records themselves, such as the console's
/// message browser; the produce path walks records without keeping them).
pub fn decompress(payload: &[u8], codec: Codec, budget: usize) -> Result<Vec<u8>, WalkError> {
    match decompressed(payload, codec, budget)? {
        Decompressed::Stream(reader) => {
            let mut out = Vec::new();
            reader
                .take(budget as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| WalkError::Decompress(e.to_string()))?;
            if out.len() > budget {
                return Err(WalkError::OverBudget { budget });
            }
            Ok(out)
        }
        Decompressed::Block(out) => Ok(out),
    }
}

/// A batch payload's records as its codec yields them.
enum Decompressed<'a> {
    /// Read as they are decompressed (the reader does not bound its output: the caller
    /// stops at its budget).
    Stream(Box<dyn Read + 'a>),
    /// A raw snappy block, decompressed whole (after checking its declared size).
    Block(Vec<u8>),
}

/// The reader (or block) of `payload` under `codec`.
fn decompressed(
    payload: &[u8],
    codec: Codec,
    budget: usize,
) -> Result<Decompressed<'_>, WalkError> {
    let failed = |e: io::Error| WalkError::Decompress(e.to_string());
    Ok(match codec {
        Codec::None => Decompressed::Stream(Box::new(payload)),
        Codec::Gzip => Decompressed::Stream(Box::new(flate2::read::MultiGzDecoder::new(payload))),
        Codec::Lz4 => Decompressed::Stream(Box::new(lz4::Decoder::new(payload).map_err(failed)?)),
        Codec::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::new(payload).map_err(failed)?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(failed)?;
            Decompressed::Stream(Box::new(decoder))
        }
        Codec::Snappy if payload.len() >= XERIAL_HEADER_LEN && payload[..8] == XERIAL_MAGIC => {
            Decompressed::Stream(Box::new(XerialChunks {
                rest: &payload[XERIAL_HEADER_LEN..],
                out: Vec::new(),
                pos: 0,
                budget,
                produced: 0,
            }))
        }
        Codec::Snappy => Decompressed::Block(snappy_block(payload, budget)?),
    })
}

/// Decompresses one raw snappy block after checking its declared size.
fn snappy_block(block: &[u8], budget: usize) -> Result<Vec<u8>, WalkError> {
    let declared =
        snap::raw::decompress_len(block).map_err(|e| WalkError::Decompress(e.to_string()))?;
    if declared > budget {
        return Err(WalkError::OverBudget { budget });
    }
    if declared > block.len().saturating_mul(SNAPPY_MAX_RATIO) + 64 {
        return Err(WalkError::Decompress(format!(
            "snappy block of {} bytes declares an impossible {declared} bytes",
            block.len()
        )));
    }
    snap::raw::Decoder::new()
        .decompress_vec(block)
        .map_err(|e| WalkError::Decompress(e.to_string()))
}

/// Xerial-framed snappy: big-endian i32 chunk lengths, each chunk a raw snappy block.
struct XerialChunks<'a> {
    rest: &'a [u8],
    out: Vec<u8>,
    pos: usize,
    budget: usize,
    produced: usize,
}

impl Read for XerialChunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            if self.rest.is_empty() {
                return Ok(0);
            }
            if self.rest.len() < 4 {
                return Err(io::Error::other("truncated snappy chunk header"));
            }
            let len = u32::from_be_bytes([self.rest[0], self.rest[1], self.rest[2], self.rest[3]])
                as usize;
            if self.rest.len() - 4 < len {
                return Err(io::Error::other("truncated snappy chunk"));
            }
            let chunk = &self.rest[4..4 + len];
            self.rest = &self.rest[4 + len..];
            let remaining = self.budget.saturating_sub(self.produced) + 1;
            self.out = match snappy_block(chunk, remaining) {
                Ok(out) => out,
                Err(WalkError::OverBudget { .. }) => {
                    // Hand out one byte past the budget so the caller reports OverBudget.
                    vec![0; remaining]
                }
                Err(e) => return Err(io::Error::other(format!("{e:?}"))),
            };
            self.produced += self.out.len();
            self.pos = 0;
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::test_batches::{assemble, uncompressed};
    use std::io::Write;

    fn collect(batch: &[u8], budget: usize) -> Result<Vec<RecordMeta>, WalkError> {
        let header = BatchHeader::parse(batch).unwrap();
        let mut seen = Vec::new();
        for_each_record(batch, &header, budget, &mut |m| {
            seen.push(m);
            Ok(())
        })?;
        Ok(seen)
    }

    fn records_section(batch: &[u8]) -> &[u8] {
        &batch[HEADER_LEN..]
    }

    #[test]
    fn every_record_of_an_uncompressed_batch_is_visited() {
        let batch = uncompressed(&[b"a", b"b", b"c"], 10);
        let seen = collect(&batch, 1 << 20).unwrap();
        assert_eq!(
            seen.iter().map(|m| m.offset_delta).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(seen.iter().all(|m| m.has_key));
    }

    #[test]
    fn each_codec_is_walked_through_its_decompressor() {
        let plain = uncompressed(&[b"hello", b"world"], 10);
        let raw = records_section(&plain);

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(raw).unwrap();
        let gz = gz.finish().unwrap();

        let mut lz = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        lz.write_all(raw).unwrap();
        let (lz, result) = lz.finish();
        result.unwrap();

        let zs = zstd::stream::encode_all(raw, 3).unwrap();
        let sn = snap::raw::Encoder::new().compress_vec(raw).unwrap();

        let mut xerial = Vec::from(XERIAL_MAGIC);
        xerial.extend_from_slice(&1i32.to_be_bytes());
        xerial.extend_from_slice(&1i32.to_be_bytes());
        xerial.extend_from_slice(&(sn.len() as i32).to_be_bytes());
        xerial.extend_from_slice(&sn);

        for (codec, payload) in [(1, gz), (2, sn.clone()), (2, xerial), (3, lz), (4, zs)] {
            let batch = assemble(codec, &payload, 2, 10);
            assert_eq!(collect(&batch, 1 << 20).unwrap().len(), 2, "codec {codec}");
        }
    }

    #[test]
    fn a_compression_bomb_stops_at_the_budget() {
        // One record whose value is 8 MiB of zeros: compresses to almost nothing.
        use crate::records::batch::test_batches::put_varlong;
        let value_len = 8usize << 20;
        let mut body = vec![0u8];
        for v in [0i64, 0, -1, value_len as i64] {
            put_varlong(&mut body, v);
        }
        body.resize(body.len() + value_len, 0);
        put_varlong(&mut body, 0);
        let mut zeros = Vec::new();
        put_varlong(&mut zeros, body.len() as i64);
        zeros.extend_from_slice(&body);
        let bomb = zstd::stream::encode_all(&zeros[..], 3).unwrap();
        let batch = assemble(4, &bomb, 1, 10);
        assert_eq!(
            collect(&batch, 1 << 20),
            Err(WalkError::OverBudget { budget: 1 << 20 })
        );

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&zeros).unwrap();
        let batch = assemble(1, &gz.finish().unwrap(), 1, 10);
        assert!(matches!(
            collect(&batch, 1 << 20),
            Err(WalkError::OverBudget { .. })
        ));

        let sn = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
        let batch = assemble(2, &sn, 1, 10);
        assert!(matches!(
            collect(&batch, 1 << 20),
            Err(WalkError::OverBudget { .. })
        ));
    }

    #[test]
    fn a_wrong_record_count_or_trailing_bytes_are_malformed() {
        let batch = uncompressed(&[b"a", b"b"], 10);
        let mut header = BatchHeader::parse(&batch).unwrap();
        header.records_count = 3;
        assert!(matches!(
            for_each_record(&batch, &header, 1 << 20, &mut |_| Ok(())),
            Err(WalkError::Malformed(_))
        ));
        header.records_count = 1;
        assert!(matches!(
            for_each_record(&batch, &header, 1 << 20, &mut |_| Ok(())),
            Err(WalkError::Malformed(_))
        ));
    }

    #[test]
    fn the_visitor_can_reject_a_record() {
        let batch = uncompressed(&[b"a", b"b"], 10);
        let header = BatchHeader::parse(&batch).unwrap();
        let result = for_each_record(&batch, &header, 1 << 20, &mut |m| {
            if m.index == 1 {
                Err("no".into())
            } else {
                Ok(())
            }
        });
        assert_eq!(
            result,
            Err(WalkError::Rejected {
                index: 1,
                message: "no".into()
            })
        );
    }
}
