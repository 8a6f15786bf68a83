//! Requests and batches captured from real clients (kafka-python 3.0, confluent-kafka
//! 2.16, kcat 1.7 with librdkafka 2.0; recorded by a proxy in front of the broker) are
//! the fuzzers' seeds. Here they are golden inputs: every captured request decodes, and
//! every captured batch (one per codec and client) validates. Inputs on which a fuzzer
//! once found a bug are replayed too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use bytes::Bytes;
use runnel_broker::protocol::request::{decode, Decoded};
use runnel_broker::records::validate::{validate_produce_batch, Limits};

fn seeds(kind: &str) -> Vec<(String, Vec<u8>)> {
    files("seeds", kind)
}

fn files(set: &str, kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(set)
        .join(kind);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn every_captured_client_request_decodes() {
    let captured = seeds("request_decode");
    assert!(captured.len() > 50, "only {} captures", captured.len());
    let mut apis = std::collections::BTreeSet::new();
    for (name, frame) in captured {
        match decode(Bytes::from(frame)) {
            Ok(Decoded::Request { header, .. }) => {
                apis.insert((header.request_api_key, header.request_api_version));
            }
            Ok(Decoded::ApiVersionsFallback { .. }) => {
                panic!("{name}: no client sends a too-new ApiVersions here")
            }
            Err(err) => panic!("{name} does not decode: {err}"),
        }
    }
    println!("decoded (api, version) pairs: {apis:?}");
}

#[test]
fn every_captured_batch_validates() {
    let limits = Limits {
        max_batch_bytes: 1 << 20,
        max_decompressed_bytes: 64 << 20,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: i64::MAX,
        create_time: true,
        require_keys: false,
        now_ms: 0,
    };
    let captured = seeds("batch_validate");
    assert!(captured.len() >= 10);
    for (name, batch) in captured {
        let valid =
            validate_produce_batch(&batch, &limits).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(valid.header.records_count > 0, "{name}");
    }
}

/// Inputs on which a fuzzer once found a panic: they must now be refused quietly.
#[test]
fn fuzzer_findings_stay_fixed() {
    let limits = Limits {
        max_batch_bytes: 1 << 20,
        max_decompressed_bytes: 4 << 20,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: i64::MAX,
        create_time: true,
        require_keys: false,
        now_ms: 1_700_000_000_000,
    };
    let findings = files("regressions", "batch_validate");
    assert!(!findings.is_empty());
    for (_, input) in findings {
        let _ = validate_produce_batch(&input, &limits);
        if input.len() >= 61 {
            let mut fixed = input.clone();
            let length = (fixed.len() - 12) as i32;
            fixed[8..12].copy_from_slice(&length.to_be_bytes());
            fixed[16] = 2;
            let crc = crc32c::crc32c(&fixed[21..]);
            fixed[17..21].copy_from_slice(&crc.to_be_bytes());
            let _ = validate_produce_batch(&fixed, &limits);
        }
    }
}
