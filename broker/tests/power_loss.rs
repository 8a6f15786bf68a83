//! Power loss through the I/O seam: producers and a consumer run against an in-process
//! broker on a simulated disk; power is cut at a random moment; a new broker starts on
//! what the disk kept.
//!
//! In the default durable mode every acknowledged record (acks=1 and acks=all) must be
//! readable after the cut at the offset it was acknowledged at, and every record a
//! consumer saw before the cut must still be there (nothing unacknowledged was served
//! as committed). With `log.flush.mode=interval` the same run reports what it lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{batch, decode, metric, metrics, start, test_config, Client};
use proto_kafka::messages::{ApiKey, FetchResponse};
use proto_kafka::records::Compression;
use runnel_broker::fsio::sim::{CutMode, SimFs};
use runnel_broker::fsio::FileSystem;

const TOPIC: &str = "power";
const PARTITIONS: i32 = 2;

/// (partition, offset) → value.
type Ledger = Arc<Mutex<BTreeMap<(i32, i64), Bytes>>>;

struct Outcome {
    acked: usize,
    lost_acked: usize,
    lost_served: usize,
    served: usize,
    truncated_bytes: f64,
    recovered_segments: f64,
    dropped_segments: f64,
    file_syncs: u64,
    volume_syncs: u64,
}

fn fresh_disk() -> SimFs {
    let sim = SimFs::new();
    sim.create_dir_all(Path::new("/data")).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    sim
}

async fn produce_until_cut(addr: std::net::SocketAddr, task: usize, acks: i16, acked: Ledger) {
    let mut client = Client::connect(addr).await;
    let codecs = [Compression::None, Compression::Lz4, Compression::Zstd];
    for seq in 0usize.. {
        let partition = (seq % PARTITIONS as usize) as i32;
        let values: Vec<String> = (0..(1 + seq % 4))
            .map(|i| format!("t{task}-s{seq}-r{i}-{}", "x".repeat(200)))
            .collect();
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
        let Some(base_offset) = client
            .try_produce(TOPIC, partition, batch(&refs, codecs[seq % 3]), acks)
            .await
        else {
            return;
        };
        let mut ledger = acked.lock().unwrap();
        for (i, v) in values.iter().enumerate() {
            ledger.insert((partition, base_offset + i as i64), Bytes::from(v.clone()));
        }
    }
}

/// acks=0 and pipelined: keeps unsynced bytes in the log at any moment, so a cut tears
/// batches. Its records are never acknowledged, so they are not in the ledger.
async fn produce_unacknowledged_until_cut(addr: std::net::SocketAddr) {
    let mut client = Client::connect(addr).await;
    for seq in 0usize.. {
        let value = format!("unacked-{seq}-{}", "y".repeat(3000));
        let request = Client::produce_request(
            TOPIC,
            (seq % 2) as i32,
            batch(&[value.as_bytes()], Compression::None),
            0,
        );
        let (_, frame) = client.frame(ApiKey::Produce, 9, &request);
        if client.send_raw(&frame).await.is_err() {
            return;
        }
        if seq % 16 == 0 {
            tokio::task::yield_now().await;
        }
    }
}

async fn consume_until_cut(addr: std::net::SocketAddr, served: Ledger) {
    let mut client = Client::connect(addr).await;
    let mut next = [0i64; PARTITIONS as usize];
    loop {
        for partition in 0..PARTITIONS {
            let request = Client::fetch_request(TOPIC, partition, next[partition as usize], 20);
            let Some(response) = client
                .try_call::<_, FetchResponse>(ApiKey::Fetch, 12, &request)
                .await
            else {
                return;
            };
            let data = &response.responses[0].partitions[0];
            if data.error_code != 0 {
                return;
            }
            let mut ledger = served.lock().unwrap();
            for (offset, value) in decode(data.records.clone().unwrap_or_default()) {
                if offset >= next[partition as usize] {
                    ledger.insert((partition, offset), value);
                    next[partition as usize] = offset + 1;
                }
            }
        }
    }
}

/// `bulk_threshold` "0" syncs file by file; "2" lets the flusher sync the whole volume
/// when partitions queue up (syncfs).
async fn run_once(seed: u64, mode: CutMode, flush_mode: &str, bulk_threshold: &str) -> Outcome {
    let sim = fresh_disk();
    let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
    let config = test_config(
        Path::new("/data"),
        &[
            ("internal.log.segment.bytes", "32768"),
            ("log.flush.mode", flush_mode),
            ("log.flush.bulk.threshold", bulk_threshold),
        ],
    );
    let broker = start(config.clone(), fs).await;
    let addr = broker.kafka_addrs[0];
    assert_eq!(
        Client::connect(addr)
            .await
            .create_topic(TOPIC, PARTITIONS)
            .await,
        0
    );

    let acked: Ledger = Arc::default();
    let served: Ledger = Arc::default();
    let mut tasks = Vec::new();
    for task in 0..3 {
        let acks = if task % 2 == 0 { 1 } else { -1 };
        tasks.push(tokio::spawn(produce_until_cut(
            addr,
            task,
            acks,
            acked.clone(),
        )));
    }
    tasks.push(tokio::spawn(produce_unacknowledged_until_cut(addr)));
    tasks.push(tokio::spawn(consume_until_cut(addr, served.clone())));

    // Cut somewhere between 150 and 650 ms into the run, at a moment when unsynced bytes
    // exist (the acks=0 producer makes that nearly always true), so torn tails happen.
    tokio::time::sleep(Duration::from_millis(150 + (seed * 7919) % 500)).await;
    for _ in 0..1000 {
        if sim.unsynced_bytes() > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let (file_syncs, volume_syncs) = (sim.stats().file_syncs, sim.stats().volume_syncs);
    let after = sim.power_cut(mode);
    let cut = after.stats();
    println!(
        "seed {seed}: cut dropped {} unsynced bytes and kept {} torn bytes",
        cut.bytes_lost_at_cut, cut.torn_bytes_kept_at_cut
    );
    broker.abort();
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }

    let broker = start(config, Arc::new(after)).await;
    let mut client = Client::connect(broker.kafka_addrs[0]).await;
    let mut kept: BTreeMap<(i32, i64), Bytes> = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let records = client.read_all(TOPIC, partition, 0).await;
        let offsets: Vec<i64> = records.iter().map(|(o, _)| *o).collect();
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            offsets, expected,
            "seed {seed}: offsets after recovery are 0..n without gaps"
        );
        for (offset, value) in records {
            kept.insert((partition, offset), value);
        }
    }
    let text = metrics(broker.http_addr).await;
    let acked = acked.lock().unwrap().clone();
    let served = served.lock().unwrap().clone();
    let lost_acked = acked.iter().filter(|(k, v)| kept.get(k) != Some(v)).count();
    let lost_served = served
        .iter()
        .filter(|(k, v)| kept.get(k) != Some(v))
        .count();
    let values: BTreeSet<&Bytes> = kept.values().collect();
    assert_eq!(
        values.len(),
        kept.len(),
        "seed {seed}: no record is stored twice"
    );
    broker.abort();
    Outcome {
        acked: acked.len(),
        lost_acked,
        lost_served,
        served: served.len(),
        truncated_bytes: metric(&text, "runnel_log_truncated_bytes_total"),
        recovered_segments: metric(&text, "runnel_log_recovered_segments_total"),
        dropped_segments: metric(&text, "runnel_log_dropped_segments_total"),
        file_syncs,
        volume_syncs,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_mode_keeps_every_acknowledged_record_through_power_loss() {
    let mut total_acked = 0;
    let mut total_truncated = 0.0;
    let mut total_volume_syncs = 0;
    for seed in 0..8u64 {
        let mode = if seed % 2 == 0 {
            CutMode::LoseUnsynced
        } else {
            CutMode::TornTail { seed }
        };
        let bulk = if seed % 4 < 2 { "0" } else { "2" };
        let outcome = run_once(seed, mode, "durable", bulk).await;
        println!(
            "durable seed={seed} mode={mode:?} bulk={bulk}: acked={} served={} lost_acked={} lost_served={} fsyncs={} syncfs={} recovered_segments={} truncated_bytes={} dropped_segments={}",
            outcome.acked, outcome.served, outcome.lost_acked, outcome.lost_served, outcome.file_syncs,
            outcome.volume_syncs, outcome.recovered_segments, outcome.truncated_bytes, outcome.dropped_segments
        );
        if bulk == "0" {
            assert_eq!(
                outcome.volume_syncs, 0,
                "seed {seed}: bulk flushes were off"
            );
        }
        total_volume_syncs += outcome.volume_syncs;
        assert!(
            outcome.acked > 0,
            "seed {seed}: the run acknowledged nothing"
        );
        assert!(outcome.file_syncs > 0, "seed {seed}: nothing was fsynced");
        assert!(
            outcome.recovered_segments > 0.0,
            "seed {seed}: recovery did not run"
        );
        assert_eq!(
            outcome.lost_acked, 0,
            "seed {seed}: acknowledged records were lost"
        );
        assert_eq!(
            outcome.lost_served, 0,
            "seed {seed}: a consumer was served records that did not survive"
        );
        total_acked += outcome.acked;
        total_truncated += outcome.truncated_bytes;
    }
    println!("durable: {total_acked} acknowledged records survived 8 power cuts; {total_truncated} torn bytes cut; {total_volume_syncs} syncfs");
    assert!(total_truncated > 0.0, "torn tails were never exercised");
    assert!(
        total_volume_syncs > 0,
        "bulk flushes (syncfs) were never exercised"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_mode_reports_what_power_loss_takes() {
    let mut lost = 0;
    let mut acked = 0;
    for seed in 0..4u64 {
        let outcome = run_once(seed, CutMode::LoseUnsynced, "interval", "2").await;
        println!(
            "interval seed={seed}: acked={} lost_acked={} served={} lost_served={}",
            outcome.acked, outcome.lost_acked, outcome.served, outcome.lost_served
        );
        lost += outcome.lost_acked;
        acked += outcome.acked;
    }
    println!("interval mode (Kafka's default behaviour): lost {lost} of {acked} acknowledged records over 4 power cuts");
    assert!(acked > 0);
    assert!(
        lost > 0,
        "interval mode acknowledges before fsync, so a power cut must lose something"
    );
}
