//! Fuzzes produce-batch validation (every codec's bounded decompression and the record
//! walk) and the batch walker recovery uses. Each input is tried as is and with its
//! length and CRC fixed up, so the fuzzer reaches the record walk past the CRC check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_broker::records::batch::{BatchWalker, HEADER_LEN, LOG_OVERHEAD};
use runnel_broker::records::validate::{validate_produce_batch, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_batch_bytes: 1 << 20,
        max_decompressed_bytes: 4 << 20,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: i64::MAX,
        create_time: true,
        require_keys: data.first().is_some_and(|b| b & 1 == 1),
        now_ms: 1_700_000_000_000,
    };
    let _ = validate_produce_batch(data, &limits);
    for _ in BatchWalker::new(data, true) {}
    if data.len() >= HEADER_LEN {
        let mut fixed = data.to_vec();
        let length = (fixed.len() - LOG_OVERHEAD) as i32;
        fixed[8..12].copy_from_slice(&length.to_be_bytes());
        fixed[16] = 2;
        let crc = crc32c::crc32c(&fixed[21..]);
        fixed[17..21].copy_from_slice(&crc.to_be_bytes());
        let _ = validate_produce_batch(&fixed, &limits);
    }
});
