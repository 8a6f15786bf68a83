//! Crash recovery of the real binary: kill -9 mid-stream and restart; a hand-made torn
//! batch at the end of the active segment is cut; a clean SIGTERM restart skips recovery.
//! (kill -9 leaves the page cache intact, so these prove recovery, not fsync: that is
//! the power-loss test's job.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use common::{batch, metric, metrics, Client, Process};
use proto_kafka::messages::ApiKey;
use proto_kafka::records::Compression;

const TOPIC: &str = "crash";

/// Produces acks=1 batches until the broker disappears; returns what was acknowledged.
async fn produce_until_gone(client: &mut Client, from: usize) -> BTreeMap<i64, Bytes> {
    let mut acked = BTreeMap::new();
    for seq in from.. {
        let values: Vec<String> = (0..3).map(|i| format!("v{seq}-{i}")).collect();
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
        let Some(base_offset) = client
            .try_produce(TOPIC, 0, batch(&refs, Compression::Snappy), 1)
            .await
        else {
            break;
        };
        for (i, v) in values.into_iter().enumerate() {
            acked.insert(base_offset + i as i64, Bytes::from(v));
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = Process::start(&data, &["--internal.log.segment.bytes=20000"]).await;
    let mut client = Client::connect(broker.kafka).await;
    assert_eq!(client.create_topic(TOPIC, 1).await, 0);

    let pid = broker.pid();
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let _ = std::process::Command::new("kill")
            .arg("-9")
            .arg(pid.to_string())
            .status();
    });
    let acked = produce_until_gone(&mut client, 0).await;
    killer.await.unwrap();
    broker.kill9();
    assert!(
        acked.len() > 100,
        "only {} records acknowledged before the kill",
        acked.len()
    );

    let broker = Process::start(&data, &["--internal.log.segment.bytes=20000"]).await;
    let mut client = Client::connect(broker.kafka).await;
    let kept: BTreeMap<i64, Bytes> = client.read_all(TOPIC, 0, 0).await.into_iter().collect();
    for (offset, value) in &acked {
        assert_eq!(
            kept.get(offset),
            Some(value),
            "acknowledged offset {offset} lost"
        );
    }
    let text = metrics(broker.http).await;
    assert!(
        metric(&text, "runnel_log_recovered_segments_total") > 0.0,
        "recovery did not run"
    );
    println!("{} acknowledged records survived kill -9", acked.len());

    // The log takes new writes at the right offset after recovery.
    let next = client
        .produce(TOPIC, 0, batch(&[b"after"], Compression::None), 1)
        .await;
    assert_eq!(next.error_code, 0);
    assert_eq!(next.base_offset, kept.keys().max().unwrap() + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_batch_is_cut_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = Process::start(&data, &[]).await;
    let mut client = Client::connect(broker.kafka).await;
    assert_eq!(client.create_topic(TOPIC, 1).await, 0);
    for i in 0..10 {
        let r = client
            .produce(
                TOPIC,
                0,
                batch(&[format!("kept-{i}").as_bytes()], Compression::Gzip),
                -1,
            )
            .await;
        assert_eq!((r.error_code, r.base_offset), (0, i));
    }
    broker.kill9();

    // A batch that was being written when the machine died: its header promises more
    // bytes than made it to disk.
    let torn = batch(&[b"torn record that never finished"], Compression::None);
    let segment = data
        .join(format!("{TOPIC}-0"))
        .join("00000000000000000000.log");
    let before = std::fs::metadata(&segment).unwrap().len();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    file.write_all(&torn[..torn.len() - 7]).unwrap();
    drop(file);

    let broker = Process::start(&data, &[]).await;
    let text = metrics(broker.http).await;
    assert_eq!(
        metric(&text, "runnel_log_truncated_bytes_total"),
        (torn.len() - 7) as f64,
        "exactly the torn bytes are cut"
    );
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), before);
    let mut client = Client::connect(broker.kafka).await;
    let kept = client.read_all(TOPIC, 0, 0).await;
    let values: Vec<String> = kept
        .iter()
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("kept-{i}")).collect();
    assert_eq!(values, expected);
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(
        log.contains("recovery truncated a segment"),
        "the cut is logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_skips_recovery_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = Process::start(&data, &[]).await;
    let mut client = Client::connect(broker.kafka).await;
    assert_eq!(client.create_topic(TOPIC, 2).await, 0);
    for p in 0..2 {
        let r = client
            .produce(TOPIC, p, batch(&[b"a", b"b"], Compression::Zstd), 1)
            .await;
        assert_eq!(r.error_code, 0);
    }
    drop(client);
    assert!(broker.terminate().success(), "SIGTERM exits 0");
    assert!(data.join(".clean-shutdown").exists());

    let broker = Process::start(&data, &[]).await;
    let text = metrics(broker.http).await;
    assert_eq!(metric(&text, "runnel_log_opened_total"), 2.0);
    assert_eq!(metric(&text, "runnel_log_recovered_segments_total"), 0.0);
    let mut client = Client::connect(broker.kafka).await;
    for p in 0..2 {
        assert_eq!(client.read_all(TOPIC, p, 0).await.len(), 2);
    }
    // The leader epoch moved on with the restart (a new incarnation leads).
    let metadata = client.metadata(Some(&[TOPIC])).await;
    assert!(metadata.topics[0]
        .partitions
        .iter()
        .all(|p| p.leader_epoch >= 1));
}

/// Producer state survives restarts: after kill -9 (replayed from the log) and after a
/// clean stop (from the snapshot), a retry of the last batch is still a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_state_survives_kill_9_and_clean_restarts() {
    use common::producer_batch;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = Process::start(&data, &["--internal.log.segment.bytes=2000"]).await;
    let mut client = Client::connect(broker.kafka).await;
    assert_eq!(client.create_topic(TOPIC, 1).await, 0);
    let (pid, _) = client.init_producer_id().await;
    let batch_at = |seq: i32| {
        producer_batch(
            &[format!("{seq:0>300}").as_bytes()],
            Compression::Zstd,
            pid,
            0,
            seq,
        )
    };
    for seq in 0..20 {
        let r = client.produce(TOPIC, 0, batch_at(seq), -1).await;
        assert_eq!((r.error_code, r.base_offset), (0, i64::from(seq)));
    }
    broker.kill9();

    let broker = Process::start(&data, &["--internal.log.segment.bytes=2000"]).await;
    let mut client = Client::connect(broker.kafka).await;
    let retry = client.produce(TOPIC, 0, batch_at(19), -1).await;
    assert_eq!(
        (retry.error_code, retry.base_offset),
        (0, 19),
        "still a duplicate after kill -9"
    );
    let next = client.produce(TOPIC, 0, batch_at(20), -1).await;
    assert_eq!((next.error_code, next.base_offset), (0, 20));
    let gap = client.produce(TOPIC, 0, batch_at(22), -1).await;
    assert_eq!(gap.error_code, 45);
    drop(client);
    assert!(broker.terminate().success());
    assert!(
        std::fs::read_dir(data.join(format!("{TOPIC}-0")))
            .unwrap()
            .any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".snapshot")),
        "producer-state snapshots are written"
    );

    let broker = Process::start(&data, &["--internal.log.segment.bytes=2000"]).await;
    let mut client = Client::connect(broker.kafka).await;
    let retry = client.produce(TOPIC, 0, batch_at(20), -1).await;
    assert_eq!(
        (retry.error_code, retry.base_offset),
        (0, 20),
        "still a duplicate after a clean restart"
    );
    assert_eq!(client.read_all(TOPIC, 0, 0).await.len(), 21);
    let text = metrics(broker.http).await;
    assert_eq!(metric(&text, "runnel_produce_duplicate_batches_total"), 1.0);
}

/// The review's reproduction: a topic deleted and created again under the same name
/// must never inherit the old incarnation's log start or recovery point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_topic_keeps_its_records_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = Process::start(&data, &[]).await;
    let mut client = Client::connect(broker.kafka).await;
    assert_eq!(client.create_topic(TOPIC, 1).await, 0);
    for i in 0..20 {
        let r = client
            .produce(
                TOPIC,
                0,
                batch(&[format!("old-{i}").as_bytes()], Compression::None),
                1,
            )
            .await;
        assert_eq!(r.error_code, 0);
    }
    // The old incarnation's log start (20) is checkpointed at once.
    assert_eq!(client.delete_records(TOPIC, 0, 20).await, (0, 20));
    assert_eq!(client.delete_topic(TOPIC).await, 0);
    assert_eq!(client.create_topic(TOPIC, 1).await, 0);
    for i in 0..10 {
        let r = client
            .produce(
                TOPIC,
                0,
                batch(&[format!("new-{i}").as_bytes()], Compression::None),
                1,
            )
            .await;
        assert_eq!((r.error_code, r.base_offset), (0, i));
    }
    broker.kill9();

    let broker = Process::start(&data, &[]).await;
    let mut client = Client::connect(broker.kafka).await;
    assert_eq!(
        client.list_offsets(TOPIC, 0, -2).await.offset,
        0,
        "low watermark"
    );
    assert_eq!(
        client.list_offsets(TOPIC, 0, -1).await.offset,
        10,
        "high watermark"
    );
    let values: Vec<String> = client
        .read_all(TOPIC, 0, 0)
        .await
        .iter()
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("new-{i}")).collect();
    assert_eq!(values, expected, "all 10 acknowledged records are readable");
}

/// Recovery bounds a stored batch by the file, never by a request-size setting that may
/// have been lowered since the batch was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowering_the_request_size_limit_keeps_larger_stored_batches() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = Process::start(&data, &["--message.max.bytes=4000000"]).await;
    let mut client = Client::connect(broker.kafka).await;
    assert_eq!(client.create_topic(TOPIC, 1).await, 0);
    let big = vec![b'b'; 2_000_000];
    let r = client
        .produce(TOPIC, 0, batch(&[&big], Compression::None), 1)
        .await;
    assert_eq!(r.error_code, 0);
    let r = client
        .produce(
            TOPIC,
            0,
            batch(&[b"after the big one"], Compression::None),
            1,
        )
        .await;
    assert_eq!((r.error_code, r.base_offset), (0, 1));
    drop(client);
    assert!(broker.terminate().success());

    // The first start follows a clean stop, the second a kill -9 (every segment is
    // scanned then).
    for how in ["after a clean stop", "after kill -9"] {
        let broker = Process::start(
            &data,
            &[
                "--socket.request.max.bytes=1048576",
                "--message.max.bytes=1000000",
            ],
        )
        .await;
        let mut client = Client::connect(broker.kafka).await;
        let kept = client.read_all(TOPIC, 0, 0).await;
        assert_eq!(kept.len(), 2, "{how}: both records are kept");
        assert_eq!(kept[0].1.len(), big.len(), "{how}");
        let text = metrics(broker.http).await;
        assert_eq!(
            metric(&text, "runnel_log_truncated_bytes_total"),
            0.0,
            "{how}"
        );
        drop(client);
        broker.kill9();
    }
}

/// ListOffsets MAX_TIMESTAMP names the record with the newest timestamp, not its batch,
/// also after kill -9 made recovery rebuild the indexes from batch headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_timestamp_names_the_record_after_recovery() {
    use proto_kafka::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use proto_kafka::messages::{BrokerId, ListOffsetsRequest, ListOffsetsResponse};
    use proto_kafka::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = Process::start(&data, &[]).await;
    let mut client = Client::connect(broker.kafka).await;
    assert_eq!(client.create_topic(TOPIC, 1).await, 0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // One batch whose newest record is its second.
    let records: Vec<Record> = [now - 100, now + 5000, now - 50]
        .into_iter()
        .enumerate()
        .map(|(i, ts)| Record {
            transactional: false,
            control: false,
            delete_horizon_ms: None,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: ts,
            key: None,
            value: Some(Bytes::from(format!("m{i}"))),
            headers: Vec::new(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::Lz4,
        },
    )
    .unwrap();
    let r = client.produce(TOPIC, 0, buf.freeze(), -1).await;
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(common::topic_name(TOPIC))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-3)])]);
    let max_timestamp = |r: ListOffsetsResponse| {
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp)
    };
    let r = client.call(ApiKey::ListOffsets, 7, &request).await;
    assert_eq!(max_timestamp(r), (0, 1, now + 5000));
    broker.kill9();
    let broker = Process::start(&data, &[]).await;
    let mut client = Client::connect(broker.kafka).await;
    let r = client.call(ApiKey::ListOffsets, 7, &request).await;
    assert_eq!(
        max_timestamp(r),
        (0, 1, now + 5000),
        "the record, not its batch, after recovery"
    );
}
