//! I/O errors and slow disks through the I/O seam (SimFs with injected faults) against an
//! in-process broker: a failed fsync or write takes the log offline and every waiter gets
//! an error at once (KAFKA_STORAGE_ERROR, never a timeout or a hang), nothing is
//! acknowledged after the error, the group coordinator answers instead of hanging, a
//! restart recovers; and a slow disk under one partition delays neither other
//! partitions' produce nor requests that touch no disk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{batch, keyed_batch, start, test_config, topic_name, Client};
use proto_kafka::messages::find_coordinator_request::FindCoordinatorRequest;
use proto_kafka::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use proto_kafka::messages::CreateTopicsResponse;
use proto_kafka::messages::*;
use proto_kafka::protocol::StrBytes;
use proto_kafka::records::Compression;
use runnel_broker::fsio::sim::{CutMode, Fault, FaultEffect, FaultOp, FaultTarget, SimFs};
use runnel_broker::fsio::FileSystem;

const KAFKA_STORAGE_ERROR: i16 = 56;

fn fresh_disk() -> SimFs {
    let sim = SimFs::new();
    sim.create_dir_all(Path::new("/data")).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    sim
}

fn fault(op: FaultOp, path: &str, effect: FaultEffect, times: Option<u64>) -> Fault {
    Fault {
        op,
        target: FaultTarget::Path(PathBuf::from(path)),
        effect,
        times,
    }
}

async fn produce_one(c: &mut Client, topic: &str, value: &str, acks: i16) -> (i16, i64) {
    let r = c
        .produce(
            topic,
            0,
            batch(&[value.as_bytes()], Compression::None),
            acks,
        )
        .await;
    (r.error_code, r.base_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eio_on_fsync_takes_the_log_offline_and_a_restart_recovers() {
    let sim = fresh_disk();
    let config = test_config(Path::new("/data"), &[]);
    let broker = start(config.clone(), Arc::new(sim.clone())).await;
    let mut c = Client::connect(broker.kafka_addrs[0]).await;
    assert_eq!(c.create_topic("bad", 1).await, 0);
    assert_eq!(c.create_topic("good", 1).await, 0);
    let mut acked: BTreeMap<i64, String> = BTreeMap::new();
    for i in 0..10 {
        let value = format!("before-{i}");
        let (error, offset) = produce_one(&mut c, "bad", &value, 1).await;
        assert_eq!(error, 0);
        acked.insert(offset, value);
    }
    sim.inject(fault(
        FaultOp::Sync,
        "/data/bad-0",
        FaultEffect::Fail,
        Some(1),
    ));
    let started = Instant::now();
    let (error, _) = produce_one(&mut c, "bad", "lost", -1).await;
    assert_eq!(
        error, KAFKA_STORAGE_ERROR,
        "the failed fsync is the produce's error"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at once, not at the timeout"
    );
    for acks in [1, -1] {
        let (error, _) = produce_one(&mut c, "bad", "after", acks).await;
        assert_eq!(
            error, KAFKA_STORAGE_ERROR,
            "nothing is acknowledged after the error"
        );
    }
    let fetched = c.fetch("bad", 0, 0, 0).await;
    assert_eq!(fetched.error_code, KAFKA_STORAGE_ERROR);
    assert_eq!(
        produce_one(&mut c, "good", "fine", -1).await.0,
        0,
        "other logs go on"
    );
    assert!(sim.stats().faults_fired >= 1);

    // Power off; the rebooted machine has a healthy disk.
    let after = sim.power_cut(CutMode::LoseUnsynced);
    drop(broker);
    let broker = start(config, Arc::new(after)).await;
    let mut c = Client::connect(broker.kafka_addrs[0]).await;
    let kept: BTreeMap<i64, String> = c
        .read_all("bad", 0, 0)
        .await
        .into_iter()
        .map(|(o, v)| (o, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    for (offset, value) in &acked {
        assert_eq!(
            kept.get(offset),
            Some(value),
            "acknowledged offset {offset} lost"
        );
    }
    assert!(
        !kept.values().any(|v| v == "after"),
        "nothing refused came back"
    );
    let (error, _) = produce_one(&mut c, "bad", "recovered", -1).await;
    assert_eq!(error, 0, "the log takes writes again after the restart");
}

/// A write that fails while earlier appends still wait for their fsync: those waiters
/// get the storage error at once (they used to wait for the produce timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_wakes_the_appends_waiting_before_it() {
    let sim = fresh_disk();
    // One flusher thread, held by a slow fsync of another partition.
    let config = test_config(Path::new("/data"), &[("log.flush.threads", "1")]);
    let broker = start(config, Arc::new(sim.clone())).await;
    let mut c = Client::connect(broker.kafka_addrs[0]).await;
    for t in ["slow", "bad"] {
        assert_eq!(c.create_topic(t, 1).await, 0);
    }
    sim.inject(fault(
        FaultOp::Sync,
        "/data/slow-0",
        FaultEffect::Delay(Duration::from_secs(2)),
        Some(1),
    ));
    let addr = broker.kafka_addrs[0];
    let slow = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        produce_one(&mut c, "slow", "s", 1).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        let started = Instant::now();
        let outcome = produce_one(&mut c, "bad", "waits for its fsync", 1).await;
        (outcome, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    sim.inject(fault(
        FaultOp::Write,
        "/data/bad-0",
        FaultEffect::Fail,
        Some(1),
    ));
    let (error, _) = produce_one(&mut c, "bad", "fails to write", 1).await;
    assert_eq!(error, KAFKA_STORAGE_ERROR);
    let ((error, _), waited) = waiting.await.unwrap();
    assert_eq!(
        error, KAFKA_STORAGE_ERROR,
        "the earlier append learns of the failure"
    );
    assert!(
        waited < Duration::from_secs(10),
        "woken, not timed out ({waited:?})"
    );
    assert_eq!(slow.await.unwrap().0, 0);
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn admin_commit(group: &str, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name("data"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)])])
}

/// The group coordinator's writes wait on the log like produce: a write error answers
/// the commits waiting behind it instead of leaving them (and their groups) hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_coordinator_answers_when_its_log_fails() {
    let sim = fresh_disk();
    let config = test_config(
        Path::new("/data"),
        &[
            ("log.flush.threads", "1"),
            ("offsets.topic.num.partitions", "1"),
        ],
    );
    let broker = start(config, Arc::new(sim.clone())).await;
    let addr = broker.kafka_addrs[0];
    let mut c = Client::connect(addr).await;
    assert_eq!(c.create_topic("data", 1).await, 0);
    assert_eq!(c.create_topic("slow", 1).await, 0);
    let find = FindCoordinatorRequest::default().with_key(s("g"));
    for _ in 0..100 {
        let r: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 3, &find).await;
        if r.error_code == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut loaded = false;
    for _ in 0..100 {
        let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &admin_commit("g", 1)).await;
        if r.topics[0].partitions[0].error_code == 0 {
            loaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(loaded, "the coordinator took a first commit");
    sim.inject(fault(
        FaultOp::Sync,
        "/data/slow-0",
        FaultEffect::Delay(Duration::from_secs(2)),
        Some(1),
    ));
    let slow = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        produce_one(&mut c, "slow", "s", 1).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        let started = Instant::now();
        let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &admin_commit("g", 2)).await;
        (r.topics[0].partitions[0].error_code, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    sim.inject(fault(
        FaultOp::Write,
        "/data/__consumer_offsets-0",
        FaultEffect::Fail,
        Some(1),
    ));
    let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &admin_commit("g", 3)).await;
    assert_ne!(
        r.topics[0].partitions[0].error_code, 0,
        "the failed write is an error"
    );
    let (error, waited) = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the waiting commit is answered, not left hanging")
        .unwrap();
    assert_ne!(error, 0, "the earlier commit learns of the failure");
    assert!(waited < Duration::from_secs(10), "answered in {waited:?}");
    assert_eq!(slow.await.unwrap().0, 0);
}

/// A slow disk under one partition (every fsync of it takes 3 s, segments roll often)
/// delays neither another partition's produce nor requests that touch no disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_disk_under_one_partition_does_not_stall_the_others() {
    let sim = fresh_disk();
    let config = test_config(
        Path::new("/data"),
        &[("internal.log.segment.bytes", "4096")],
    );
    let broker = start(config, Arc::new(sim.clone())).await;
    let addr = broker.kafka_addrs[0];
    let mut c = Client::connect(addr).await;
    assert_eq!(c.create_topic("sluggish", 1).await, 0);
    assert_eq!(c.create_topic("brisk", 1).await, 0);
    for op in [FaultOp::Sync, FaultOp::SyncDir] {
        sim.inject(fault(
            op,
            "/data/sluggish-0",
            FaultEffect::Delay(Duration::from_secs(3)),
            None,
        ));
    }
    // Several connections keep the slow partition rolling segments.
    let mut hogs = Vec::new();
    for h in 0..4 {
        hogs.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let value = "x".repeat(1500);
            for i in 0..6 {
                let request = Client::produce_request(
                    "sluggish",
                    0,
                    batch(&[format!("{h}-{i}-{value}").as_bytes()], Compression::None),
                    1,
                );
                let (_, frame) = c.frame(ApiKey::Produce, 9, &request);
                c.send_raw(&frame).await.unwrap();
            }
            c
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut worst = Duration::ZERO;
    for i in 0..10 {
        let started = Instant::now();
        let (error, _) = produce_one(&mut c, "brisk", &format!("b{i}"), 1).await;
        assert_eq!(error, 0);
        let metadata = c.metadata(Some(&["brisk"])).await;
        assert_eq!(metadata.topics[0].error_code, 0);
        worst = worst.max(started.elapsed());
    }
    println!("slowest produce+metadata on the healthy partition: {worst:?}");
    assert!(
        worst < Duration::from_secs(1),
        "a slow disk under another partition delayed this one by {worst:?}"
    );
    for hog in hogs {
        drop(hog.await.unwrap());
    }
}

/// Produce's timeout is one deadline for the request, not one per topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_produce_to_many_topics_waits_one_timeout_in_all() {
    use proto_kafka::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let sim = fresh_disk();
    let config = test_config(Path::new("/data"), &[]);
    let broker = start(config, Arc::new(sim.clone())).await;
    let mut c = Client::connect(broker.kafka_addrs[0]).await;
    let topics = ["t1", "t2", "t3", "t4"];
    for t in topics {
        assert_eq!(c.create_topic(t, 1).await, 0);
        sim.inject(fault(
            FaultOp::Sync,
            &format!("/data/{t}-0"),
            FaultEffect::Delay(Duration::from_secs(4)),
            None,
        ));
    }
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(
            topics
                .iter()
                .map(|t| {
                    TopicProduceData::default()
                        .with_name(topic_name(t))
                        .with_partition_data(vec![PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch(&[b"v"], Compression::None)))])
                })
                .collect(),
        );
    let started = Instant::now();
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &request).await;
    let took = started.elapsed();
    for t in &r.responses {
        assert_eq!(t.partition_responses[0].error_code, 7, "REQUEST_TIMED_OUT");
    }
    println!("a 4-topic produce with timeout 1 s was answered in {took:?}");
    assert!(
        took < Duration::from_millis(2500),
        "timeouts added up: {took:?}"
    );
}

/// A log that fails to open (an I/O error during recovery) stays offline and is opened
/// again at the next metadata change: never created over its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_failed_to_open_is_opened_again_never_created_over() {
    let sim = fresh_disk();
    let config = test_config(Path::new("/data"), &[]);
    let broker = start(config.clone(), Arc::new(sim.clone())).await;
    let mut c = Client::connect(broker.kafka_addrs[0]).await;
    assert_eq!(c.create_topic("victim", 1).await, 0);
    for i in 0..20 {
        let (error, offset) = produce_one(&mut c, "victim", &format!("old-{i}"), -1).await;
        assert_eq!((error, offset), (0, i));
    }
    drop(c);
    let after = sim.power_cut(CutMode::LoseUnsynced);
    broker.abort();
    // One transient EIO while the victim's log is recovered.
    after.inject(fault(
        FaultOp::Sync,
        "/data/victim-0",
        FaultEffect::Fail,
        Some(1),
    ));
    let broker = start(config, Arc::new(after.clone())).await;
    let mut c = Client::connect(broker.kafka_addrs[0]).await;
    // The open failed (the log may already have been tried again: the broker's own start
    // changes metadata too).
    let text = common::metrics(broker.http_addr).await;
    assert_eq!(common::metric(&text, "runnel_log_open_failures_total"), 1.0);
    // Any metadata change makes the broker try the failed partition again.
    assert_eq!(c.create_topic("unrelated", 1).await, 0);
    let mut reopened = false;
    for _ in 0..50 {
        let (error, offset) = produce_one(&mut c, "victim", "new", -1).await;
        if error == 0 {
            assert_eq!(offset, 20, "appended after the 20 acknowledged records");
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened, "the log was opened again");
    let values: Vec<String> = c
        .read_all("victim", 0, 0)
        .await
        .into_iter()
        .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
        .collect();
    let mut expected: Vec<String> = (0..20).map(|i| format!("old-{i}")).collect();
    expected.push("new".into());
    assert_eq!(values, expected, "nothing acknowledged was overwritten");
}

fn keyed(key: &str, value: &str) -> bytes::Bytes {
    keyed_batch(key, Some(value.as_bytes()))
}

async fn create_compacted(c: &mut Client, name: &str) -> i16 {
    let configs = [
        ("cleanup.policy", "compact"),
        ("min.cleanable.dirty.ratio", "0"),
    ];
    let request = Client::create_topics_request(name, 1, 1, &configs);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &request).await;
    r.topics[0].error_code
}

/// The cleaner's directory fsyncs run without the log's lock: fetches of the partition
/// it installs into go on while the disk is slow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleaning_pass_on_a_slow_disk_does_not_hold_up_fetches() {
    let sim = fresh_disk();
    let config = test_config(
        Path::new("/data"),
        &[
            ("internal.log.segment.bytes", "600"),
            ("log.cleaner.backoff.ms", "50"),
            ("log.flush.offset.checkpoint.interval.ms", "50"),
        ],
    );
    let broker = start(config, Arc::new(sim.clone())).await;
    let mut c = Client::connect(broker.kafka_addrs[0]).await;
    assert_eq!(create_compacted(&mut c, "cmp").await, 0);
    for i in 0..60 {
        let r = c
            .produce("cmp", 0, keyed(&format!("k{}", i % 3), &format!("v{i}")), 1)
            .await;
        assert_eq!(r.error_code, 0);
    }
    let before = common::metric(
        &common::metrics(broker.http_addr).await,
        "runnel_log_cleaner_passes_total",
    );
    sim.inject(fault(
        FaultOp::SyncDir,
        "/data/cmp-0",
        FaultEffect::Delay(Duration::from_millis(700)),
        None,
    ));
    // More dirty segments, without waiting for the slow disk.
    for i in 60..120 {
        let request =
            Client::produce_request("cmp", 0, keyed(&format!("k{}", i % 3), &format!("v{i}")), 0);
        let (_, frame) = c.frame(ApiKey::Produce, 9, &request);
        c.send_raw(&frame).await.unwrap();
    }
    let mut f = Client::connect(broker.kafka_addrs[0]).await;
    let mut worst = Duration::ZERO;
    let started = Instant::now();
    let mut passes = before;
    // Fetch until a pass that began on the slow disk has installed (each install syncs
    // the directory several times), and a little after.
    while started.elapsed() < Duration::from_secs(40) {
        let t = Instant::now();
        let _ = f.fetch("cmp", 0, 0, 0).await;
        worst = worst.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
        if passes <= before {
            let text = common::metrics(broker.http_addr).await;
            passes = common::metric(&text, "runnel_log_cleaner_passes_total");
        } else if started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    println!(
        "slowest fetch while the cleaner installed on a slow disk: {worst:?} ({} passes)",
        passes - before
    );
    assert!(passes > before, "a cleaner pass finished on the slow disk");
    assert!(
        worst < Duration::from_millis(500),
        "a fetch waited {worst:?}"
    );
}

/// Interval mode flushes at every roll (as Kafka does), so the recovery point moves and
/// the cleaner, which cleans below it, runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_mode_still_compacts() {
    let sim = fresh_disk();
    let config = test_config(
        Path::new("/data"),
        &[
            ("log.flush.mode", "interval"),
            ("internal.log.segment.bytes", "600"),
            ("log.cleaner.backoff.ms", "50"),
            ("log.flush.offset.checkpoint.interval.ms", "50"),
        ],
    );
    let broker = start(config, Arc::new(sim.clone())).await;
    let mut c = Client::connect(broker.kafka_addrs[0]).await;
    assert_eq!(create_compacted(&mut c, "cmp").await, 0);
    for i in 0..200 {
        let r = c
            .produce("cmp", 0, keyed(&format!("k{}", i % 3), &format!("v{i}")), 1)
            .await;
        assert_eq!(r.error_code, 0);
    }
    let mut passes = 0.0;
    for _ in 0..50 {
        let text = common::metrics(broker.http_addr).await;
        passes = common::metric(&text, "runnel_log_cleaner_passes_total");
        if passes > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(passes > 0.0, "no compaction in interval mode");
}
