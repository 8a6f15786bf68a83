//! Validation of a batch a client produced, before it is stored as received.
//!
//! Checks follow Kafka's `LogValidator` for magic v2 from a client: exactly one batch,
//! size within `max.message.bytes`, CRC-32C, a consistent offset range and record count,
//! no control batches, record structure (decompressed under a budget), timestamps within
//! `message.timestamp.{before,after}.max.ms`, and keys on compacted topics. One deliberate
//! difference: Kafka rewrites a compressed batch whose inner offsets are not 0..n-1 (some
//! pre-0.11 clients wrote them wrong); Runnel never re-encodes a batch, so it refuses one.

use super::batch::{self, BatchHeader, Codec, LOG_OVERHEAD, MAGIC_V2};
use super::walk::{for_each_record, WalkError};

/// The rules a batch is validated against, resolved from topic and broker config.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `max.message.bytes`: the largest batch, as sent.
    pub max_batch_bytes: usize,
    /// The most bytes one batch may decompress to.
    pub max_decompressed_bytes: usize,
    /// `message.timestamp.before.max.ms`.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`.
    pub timestamp_after_max_ms: i64,
    /// The topic's `message.timestamp.type` is CreateTime (not LogAppendTime).
    pub create_time: bool,
    /// The topic is compacted, so every record needs a key.
    pub require_keys: bool,
    pub now_ms: i64,
}

/// Why a batch was refused; each maps to one Kafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// CORRUPT_MESSAGE: the bytes do not match their CRC or cannot be a batch.
    Corrupt,
    /// INVALID_RECORD: a well-formed batch breaks a rule.
    InvalidRecord,
    /// MESSAGE_TOO_LARGE.
    TooLarge,
    /// INVALID_TIMESTAMP.
    InvalidTimestamp,
    /// UNSUPPORTED_COMPRESSION_TYPE.
    UnsupportedCompression,
}

/// A refusal with what a client should be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub refusal: Refusal,
    pub message: String,
    /// The record at fault, for Produce v8+ `record_errors`.
    pub record_index: Option<usize>,
}

fn invalid(refusal: Refusal, message: impl Into<String>) -> Invalid {
    Invalid {
        refusal,
        message: message.into(),
        record_index: None,
    }
}

/// What the log needs to know of a valid batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidBatch {
    pub header: BatchHeader,
    pub codec: Codec,
    /// The largest record timestamp and the offset delta of the first record holding it
    /// (Kafka's `offsetOfMaxTimestamp`), or -1 and 0 when no record has a timestamp.
    pub max_timestamp: i64,
    pub offset_delta_of_max_timestamp: i32,
}

/// Validates the `records` field of one partition of a Produce request.
pub fn validate_produce_batch(records: &[u8], limits: &Limits) -> Result<ValidBatch, Invalid> {
    let header = BatchHeader::parse(records).ok_or_else(|| {
        invalid(
            Refusal::Corrupt,
            format!("{} bytes cannot hold a record batch header", records.len()),
        )
    })?;
    if header.magic != MAGIC_V2 {
        return Err(invalid(
            Refusal::InvalidRecord,
            format!(
                "produce requests v3+ must carry magic v2 batches, not magic {}",
                header.magic
            ),
        ));
    }
    if header.batch_length < batch::MIN_BATCH_LENGTH {
        return Err(invalid(
            Refusal::Corrupt,
            "batch length below the header size",
        ));
    }
    let size = header.batch_length as usize + LOG_OVERHEAD;
    if size != records.len() {
        return Err(invalid(
            Refusal::InvalidRecord,
            format!(
                "a produce request must carry exactly one batch per partition \
                 (batch of {size} bytes in a {}-byte field)",
                records.len()
            ),
        ));
    }
    if size > limits.max_batch_bytes {
        return Err(invalid(
            Refusal::TooLarge,
            format!(
                "batch of {size} bytes is larger than max.message.bytes ({})",
                limits.max_batch_bytes
            ),
        ));
    }
    if !batch::crc_matches(records) {
        return Err(invalid(Refusal::Corrupt, "batch CRC-32C does not match"));
    }
    let codec = header.codec().ok_or_else(|| {
        invalid(
            Refusal::UnsupportedCompression,
            format!("unknown compression codec id {}", header.attributes & 7),
        )
    })?;
    check_batch_fields(&header)?;
    let (max_timestamp, offset_delta_of_max_timestamp) = check_records(records, &header, limits)?;
    Ok(ValidBatch {
        header,
        codec,
        max_timestamp,
        offset_delta_of_max_timestamp,
    })
}

fn check_batch_fields(header: &BatchHeader) -> Result<(), Invalid> {
    if header.records_count <= 0 {
        return Err(invalid(
            Refusal::InvalidRecord,
            format!("invalid record count {}", header.records_count),
        ));
    }
    if i64::from(header.last_offset_delta) + 1 != i64::from(header.records_count) {
        return Err(invalid(
            Refusal::InvalidRecord,
            format!(
                "last offset delta {} is inconsistent with the record count {}",
                header.last_offset_delta, header.records_count
            ),
        ));
    }
    if header.is_control() {
        return Err(invalid(
            Refusal::InvalidRecord,
            "clients may not write control batches",
        ));
    }
    if header.has_producer_id() && header.base_sequence < 0 {
        return Err(invalid(
            Refusal::InvalidRecord,
            format!("invalid sequence number {}", header.base_sequence),
        ));
    }
    if header.is_log_append_time() {
        return Err(invalid(
            Refusal::InvalidTimestamp,
            "producers may not set the timestamp type to LogAppendTime",
        ));
    }
    Ok(())
}

/// Walks the records; returns the max record timestamp and its offset delta.
fn check_records(
    records: &[u8],
    header: &BatchHeader,
    limits: &Limits,
) -> Result<(i64, i32), Invalid> {
    let mut max_timestamp = -1i64;
    let mut offset_of_max = 0i32;
    let mut failure: Option<Refusal> = None;
    let walked = for_each_record(
        records,
        header,
        limits.max_decompressed_bytes,
        &mut |meta| {
            if meta.offset_delta != meta.index as i32 {
                failure = Some(Refusal::InvalidRecord);
                return Err(format!(
                    "record offset deltas must run 0..n-1; record {} has {}",
                    meta.index, meta.offset_delta
                ));
            }
            if limits.require_keys && !meta.has_key {
                failure = Some(Refusal::InvalidRecord);
                return Err("a compacted topic cannot accept a record without a key".into());
            }
            let timestamp = header.base_timestamp.saturating_add(meta.timestamp_delta);
            if limits.create_time && timestamp != -1 {
                let behind = limits.now_ms.saturating_sub(timestamp);
                let ahead = timestamp.saturating_sub(limits.now_ms);
                if behind > limits.timestamp_before_max_ms || ahead > limits.timestamp_after_max_ms
                {
                    failure = Some(Refusal::InvalidTimestamp);
                    return Err(format!(
                        "timestamp {timestamp} is out of range [{}, {}]",
                        limits.now_ms.saturating_sub(limits.timestamp_before_max_ms),
                        limits.now_ms.saturating_add(limits.timestamp_after_max_ms)
                    ));
                }
            }
            if timestamp > max_timestamp {
                max_timestamp = timestamp;
                offset_of_max = meta.offset_delta;
            }
            Ok(())
        },
    );
    match walked {
        Ok(()) => Ok((max_timestamp, offset_of_max)),
        Err(WalkError::Rejected { index, message }) => Err(Invalid {
            refusal: failure.unwrap_or(Refusal::InvalidRecord),
            message,
            record_index: Some(index),
        }),
        Err(WalkError::OverBudget { budget }) => Err(invalid(
            Refusal::InvalidRecord,
            format!("batch decompresses to more than {budget} bytes"),
        )),
        Err(WalkError::Decompress(reason)) => Err(invalid(
            Refusal::Corrupt,
            format!("failed to decompress the batch: {reason}"),
        )),
        Err(WalkError::Malformed(reason)) => Err(invalid(Refusal::InvalidRecord, reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::test_batches::{assemble, uncompressed};

    fn limits() -> Limits {
        Limits {
            max_batch_bytes: 1 << 20,
            max_decompressed_bytes: 1 << 20,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            create_time: true,
            require_keys: false,
            now_ms: 1_000_000,
        }
    }

    #[test]
    fn a_well_formed_batch_is_accepted_with_its_max_timestamp() {
        let batch = uncompressed(&[b"a", b"b"], 999_000);
        let valid = validate_produce_batch(&batch, &limits()).unwrap();
        assert_eq!(valid.codec, Codec::None);
        assert_eq!(valid.max_timestamp, 999_000);
        assert_eq!(valid.header.records_count, 2);
    }

    #[test]
    fn each_rule_refuses_with_its_own_reason() {
        let good = uncompressed(&[b"a"], 999_000);

        let mut bad_crc = good.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 1;
        assert_eq!(
            validate_produce_batch(&bad_crc, &limits())
                .unwrap_err()
                .refusal,
            Refusal::Corrupt
        );

        let mut two = good.clone();
        two.extend_from_slice(&good);
        assert_eq!(
            validate_produce_batch(&two, &limits()).unwrap_err().refusal,
            Refusal::InvalidRecord
        );

        let small = Limits {
            max_batch_bytes: 10,
            ..limits()
        };
        assert_eq!(
            validate_produce_batch(&good, &small).unwrap_err().refusal,
            Refusal::TooLarge
        );

        let future = uncompressed(&[b"a"], 1_000_000 + 3_600_001);
        let err = validate_produce_batch(&future, &limits()).unwrap_err();
        assert_eq!(err.refusal, Refusal::InvalidTimestamp);
        assert_eq!(err.record_index, Some(0));

        assert_eq!(
            validate_produce_batch(&good[..40], &limits())
                .unwrap_err()
                .refusal,
            Refusal::Corrupt
        );

        let unknown_codec = assemble(7, b"", 1, 0);
        assert_eq!(
            validate_produce_batch(&unknown_codec, &limits())
                .unwrap_err()
                .refusal,
            Refusal::UnsupportedCompression
        );
    }

    #[test]
    fn a_compacted_topic_refuses_records_without_keys() {
        // A record with a null key: length, attrs, ts, offset, key -1, value 0, headers 0.
        let mut body = vec![0u8];
        for v in [0i64, 0, -1, 0, 0] {
            crate::records::batch::test_batches::put_varlong(&mut body, v);
        }
        let mut records = Vec::new();
        crate::records::batch::test_batches::put_varlong(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
        let batch = assemble(0, &records, 1, 999_000);
        assert!(validate_produce_batch(&batch, &limits()).is_ok());
        let compacted = Limits {
            require_keys: true,
            ..limits()
        };
        assert_eq!(
            validate_produce_batch(&batch, &compacted)
                .unwrap_err()
                .refusal,
            Refusal::InvalidRecord
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
                let _ = validate_produce_batch(&bytes, &limits());
            }

            #[test]
            fn a_flipped_byte_is_refused_exactly_when_the_crc_or_framing_covers_it(
                at in 0usize..80,
                mask in 1u8..=255,
            ) {
                let mut batch = uncompressed(&[b"alpha", b"beta"], 999_000);
                let at = at % batch.len();
                batch[at] ^= mask;
                let outcome = validate_produce_batch(&batch, &limits());
                // baseOffset (0..8) and partitionLeaderEpoch (12..16) are outside the CRC
                // and are overwritten by the leader; every other byte is checked.
                let unchecked = at < 8 || (12..16).contains(&at);
                prop_assert_eq!(outcome.is_ok(), unchecked, "byte {} flipped: {:?}", at, outcome);
            }
        }
    }

    #[test]
    fn a_maximal_last_offset_delta_is_refused_without_overflow() {
        // Found by the batch_validate fuzzer: lastOffsetDelta = i32::MAX overflowed `+ 1`.
        let mut batch = uncompressed(&[b"a"], 999_000);
        batch[23..27].copy_from_slice(&i32::MAX.to_be_bytes());
        batch[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            validate_produce_batch(&batch, &limits())
                .unwrap_err()
                .refusal,
            Refusal::InvalidRecord
        );
    }
}
