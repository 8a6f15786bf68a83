//! Decoding and re-encoding whole batches, for the one path that rewrites stored data:
//! compaction, which drops records from a batch and must write the rest back as a batch
//! of the same codec and producer. Everything else keeps batches as received.

use std::io;

use bytes::{Bytes, BytesMut};
use proto_kafka::records::{RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};

pub use proto_kafka::records::{Compression, Record};

/// A batch's records and the codec they were compressed with.
#[derive(Debug)]
pub struct DecodedBatch {
    pub records: Vec<Record>,
    pub compression: Compression,
}

/// Decodes one stored batch.
pub fn decode(batch: &[u8]) -> io::Result<DecodedBatch> {
    let set = RecordBatchDecoder::decode(&mut Bytes::copy_from_slice(batch))
        .map_err(|e| io::Error::other(format!("failed to decode a batch: {e}")))?;
    Ok(DecodedBatch {
        records: set.records,
        compression: set.compression,
    })
}

/// Encodes `records` as one v2 batch compressed with `compression` (producer fields and
/// the delete horizon come from the records).
pub fn encode(records: &[Record], compression: Compression) -> io::Result<BytesMut> {
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(|e| io::Error::other(format!("failed to encode a batch: {e}")))?;
    Ok(out)
}
