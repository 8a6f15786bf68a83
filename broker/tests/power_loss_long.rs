//! The long power-loss run: one simulated disk, many power cuts, everything that rides
//! on the log at once. Between cuts a seeded workload mixes idempotent produce (the
//! batch in flight at a cut is retried after the restart), acks=1 and acks=all produce,
//! DeleteRecords, a topic deleted and created again under the same name, a compacted
//! topic with tombstones, and consumer-group offset commits, with checkpoints and cleaner
//! passes every few tens of milliseconds and small segments. After each cut a new broker
//! starts on what the disk kept, and every acknowledged record, log start, committed
//! offset and tombstone is checked against a model of what was acknowledged.
//!
//! `RUNNEL_POWER_SEED` replays a run (the seed is printed); `RUNNEL_POWER_CUTS` sets the
//! number of cuts (default 200; `scripts/test.sh --full` runs 1000).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    batch, keyed_batch, metric, metrics, producer_batch, start, test_config, topic_name, Client,
};
use proto_kafka::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use proto_kafka::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use proto_kafka::messages::*;
use proto_kafka::protocol::StrBytes;
use proto_kafka::records::{Compression, RecordBatchDecoder};
use runnel_broker::fsio::sim::{CutMode, SimFs};
use runnel_broker::fsio::FileSystem;

const PLAIN: &str = "plain";
const CHURN: &str = "churn";
const COMPACT: &str = "compact";
const GROUPS: usize = 4;
const KEYS: usize = 12;
/// delete.retention.ms of the compacted topic.
const TOMBSTONE_RETENTION_MS: i64 = 400;

/// A small deterministic generator (the run's choices replay from its seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One acknowledged write to the compacted topic.
#[derive(Debug, Clone)]
struct KeyedWrite {
    offset: i64,
    value: Option<Bytes>,
    acked_at_ms: i64,
}

/// What the brokers acknowledged, across every cut.
#[derive(Debug, Default)]
struct Model {
    /// (partition, offset) → value on the plain topic.
    plain: BTreeMap<(i32, i64), Bytes>,
    /// The highest acknowledged DeleteRecords offset per plain partition.
    plain_low: [i64; 2],
    /// The churn topic's acknowledged records in its current incarnation, or `None`
    /// while a delete or create was cut short (either incarnation may be there).
    churn: Option<BTreeMap<i64, Bytes>>,
    churn_generation: u64,
    /// key → its acknowledged writes, oldest first.
    compact: BTreeMap<String, Vec<KeyedWrite>>,
    /// (group, partition) → (latest acknowledged commit, latest commit sent).
    commits: BTreeMap<(usize, i32), (i64, i64)>,
    /// The idempotent producer: id, epoch, next sequence and the batch in flight at the
    /// last cut (retried after the restart).
    producer: Option<(i64, i16)>,
    next_sequence: i32,
    in_flight: Option<(i32, String)>,
    acked: u64,
}

type Shared = Arc<Mutex<Model>>;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// (offset, key, value) of every record from `offset` up to the high watermark.
async fn read_keyed(c: &mut Client, topic: &str, from: i64) -> Vec<(i64, String, Option<Bytes>)> {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let data = c.fetch(topic, 0, offset, 100).await;
        assert_eq!(data.error_code, 0, "fetch {topic} at {offset}");
        let mut records = data.records.clone().unwrap_or_default();
        let before = out.len();
        while !records.is_empty() {
            for set in RecordBatchDecoder::decode_all(&mut records).unwrap() {
                for r in set.records {
                    if r.offset < offset {
                        continue;
                    }
                    let key = String::from_utf8_lossy(&r.key.unwrap_or_default()).into_owned();
                    out.push((r.offset, key, r.value));
                    offset = r.offset + 1;
                }
            }
        }
        if out.len() == before {
            if offset >= data.high_watermark {
                return out;
            }
            // A compacted gap: continue from the next offset the log holds.
            offset += 1;
        }
    }
}

async fn create_topic_with(
    c: &mut Client,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> i16 {
    let request = Client::create_topics_request(name, partitions, 1, configs);
    match c
        .try_call::<_, CreateTopicsResponse>(ApiKey::CreateTopics, 7, &request)
        .await
    {
        Some(r) => r.topics[0].error_code,
        None => -100,
    }
}

/// The idempotent producer: retries the batch cut short by the last cut, then keeps
/// producing one batch at a time until the broker goes away.
async fn idempotent_producer(addr: SocketAddr, model: Shared, generation: u64) {
    let mut c = Client::connect(addr).await;
    let (pid, epoch) = {
        let existing = model.lock().unwrap().producer;
        match existing {
            Some(p) => p,
            None => {
                let p = c.init_producer_id().await;
                model.lock().unwrap().producer = Some(p);
                p
            }
        }
    };
    for n in 0u64.. {
        let (sequence, value) = {
            let mut m = model.lock().unwrap();
            let next = m
                .in_flight
                .clone()
                .unwrap_or_else(|| (m.next_sequence, format!("idem-g{generation}-n{n}")));
            m.in_flight = Some(next.clone());
            next
        };
        let partition = sequence % 2;
        let Some(base_offset) = c
            .try_produce(
                PLAIN,
                partition,
                producer_batch(&[value.as_bytes()], Compression::Lz4, pid, epoch, sequence),
                1,
            )
            .await
        else {
            return;
        };
        let mut m = model.lock().unwrap();
        m.plain.insert((partition, base_offset), Bytes::from(value));
        m.in_flight = None;
        m.next_sequence = sequence + 1;
        m.acked += 1;
    }
}

/// acks=all (even task) or acks=1 writes to the plain topic, values unique.
async fn plain_producer(addr: SocketAddr, model: Shared, generation: u64, task: usize) {
    let mut c = Client::connect(addr).await;
    let acks = if task.is_multiple_of(2) { -1 } else { 1 };
    for n in 0u64.. {
        let partition = ((n + task as u64) % 2) as i32;
        let values: Vec<String> = (0..1 + n % 3)
            .map(|i| format!("plain-g{generation}-t{task}-n{n}-{i}"))
            .collect();
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
        let Some(base_offset) = c
            .try_produce(PLAIN, partition, batch(&refs, Compression::Zstd), acks)
            .await
        else {
            return;
        };
        let mut m = model.lock().unwrap();
        for (i, v) in values.into_iter().enumerate() {
            m.plain
                .insert((partition, base_offset + i as i64), Bytes::from(v));
            m.acked += 1;
        }
    }
}

/// Keyed writes and tombstones to the compacted topic.
async fn compact_producer(addr: SocketAddr, model: Shared, seed: u64) {
    let mut c = Client::connect(addr).await;
    let mut rng = Rng(seed);
    for n in 0u64.. {
        let key = format!("k{}", rng.below(KEYS as u64));
        let value = (rng.below(6) != 0).then(|| format!("{key}-s{seed}-n{n}"));
        let records = keyed_batch(&key, value.as_deref().map(str::as_bytes));
        let Some(base_offset) = c.try_produce(COMPACT, 0, records, 1).await else {
            return;
        };
        let mut m = model.lock().unwrap();
        m.compact.entry(key).or_default().push(KeyedWrite {
            offset: base_offset,
            value: value.map(Bytes::from),
            acked_at_ms: now_ms(),
        });
        m.acked += 1;
    }
}

fn commit_request(group: usize, partition: i32, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(&format!("g{group}"))))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(PLAIN))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)])])
}

/// Admin commits of ever larger offsets for a few groups.
async fn committer(addr: SocketAddr, model: Shared, seed: u64) {
    let mut c = Client::connect(addr).await;
    let mut rng = Rng(seed ^ 0x00C0_FFEE);
    loop {
        let group = rng.below(GROUPS as u64) as usize;
        let partition = rng.below(2) as i32;
        let offset = {
            let mut m = model.lock().unwrap();
            let entry = m.commits.entry((group, partition)).or_insert((-1, -1));
            entry.1 += 1 + rng.below(5) as i64;
            entry.1
        };
        let Some(r) = c
            .try_call::<_, OffsetCommitResponse>(
                ApiKey::OffsetCommit,
                8,
                &commit_request(group, partition, offset),
            )
            .await
        else {
            return;
        };
        let error = r.topics[0].partitions[0].error_code;
        if error == 14 {
            // COORDINATOR_LOAD_IN_PROGRESS after a restart: try again shortly.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        if error != 0 {
            return;
        }
        let mut m = model.lock().unwrap();
        if let Some(entry) = m.commits.get_mut(&(group, partition)) {
            entry.0 = entry.0.max(offset);
        }
    }
}

/// DeleteRecords on the plain topic, and the churn topic deleted and created again.
async fn admin(addr: SocketAddr, model: Shared, seed: u64, generation: u64) {
    let mut c = Client::connect(addr).await;
    let mut rng = Rng(seed ^ 0xAD);
    loop {
        match rng.below(3) {
            0 => {
                let partition = rng.below(2) as i32;
                let high = {
                    let m = model.lock().unwrap();
                    m.plain
                        .keys()
                        .filter(|(p, _)| *p == partition)
                        .map(|(_, o)| *o)
                        .max()
                };
                let Some(high) = high else { continue };
                let target = (high - 20).max(0);
                let request = DeleteRecordsRequest::default()
                    .with_topics(vec![
                        proto_kafka::messages::delete_records_request::DeleteRecordsTopic::default()
                            .with_name(topic_name(PLAIN))
                            .with_partitions(vec![
                                proto_kafka::messages::delete_records_request::DeleteRecordsPartition::default()
                                    .with_partition_index(partition)
                                    .with_offset(target),
                            ]),
                    ])
                    .with_timeout_ms(5000);
                let Some(r) = c
                    .try_call::<_, DeleteRecordsResponse>(ApiKey::DeleteRecords, 2, &request)
                    .await
                else {
                    return;
                };
                let p = &r.topics[0].partitions[0];
                if p.error_code != 0 {
                    return;
                }
                let mut m = model.lock().unwrap();
                let low = &mut m.plain_low[partition as usize];
                *low = (*low).max(p.low_watermark);
            }
            1 => {
                // From here until the create is acknowledged either incarnation may win.
                model.lock().unwrap().churn = None;
                let request = DeleteTopicsRequest::default()
                    .with_topics(vec![
                        proto_kafka::messages::delete_topics_request::DeleteTopicState::default()
                            .with_name(Some(topic_name(CHURN))),
                    ])
                    .with_timeout_ms(5000);
                let Some(r) = c
                    .try_call::<_, DeleteTopicsResponse>(ApiKey::DeleteTopics, 6, &request)
                    .await
                else {
                    return;
                };
                if ![0, 3].contains(&r.responses[0].error_code) {
                    return;
                }
                if create_topic_with(&mut c, CHURN, 1, &[]).await != 0 {
                    return;
                }
                let mut m = model.lock().unwrap();
                m.churn = Some(BTreeMap::new());
                m.churn_generation += 1;
            }
            _ => {
                let (tag, certain) = {
                    let m = model.lock().unwrap();
                    (m.churn_generation, m.churn.is_some())
                };
                if !certain {
                    continue;
                }
                let value = format!("churn-g{generation}-i{tag}-{}", rng.next());
                let Some(base_offset) = c
                    .try_produce(CHURN, 0, batch(&[value.as_bytes()], Compression::None), 1)
                    .await
                else {
                    return;
                };
                let mut m = model.lock().unwrap();
                if m.churn_generation == tag {
                    if let Some(churn) = m.churn.as_mut() {
                        churn.insert(base_offset, Bytes::from(value));
                        m.acked += 1;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5 + rng.below(20))).await;
    }
}

/// Checks what a fresh broker serves against the model; returns the losses found.
async fn check(addr: SocketAddr, model: &Model, cut: usize, seed: u64) -> Vec<String> {
    let mut c = Client::connect(addr).await;
    let mut losses = Vec::new();
    // The plain topic: log starts never move back, every acknowledged record above them
    // is there with its value, nothing is stored twice.
    let mut seen: BTreeSet<Bytes> = BTreeSet::new();
    for partition in 0..2i32 {
        let low = c.list_offsets(PLAIN, partition, -2).await.offset;
        if low < model.plain_low[partition as usize] {
            losses.push(format!(
                "plain-{partition}: log start {low} is below the acknowledged {}",
                model.plain_low[partition as usize]
            ));
        }
        let kept: BTreeMap<i64, Bytes> = c
            .read_all(PLAIN, partition, low)
            .await
            .into_iter()
            .collect();
        for value in kept.values() {
            if !seen.insert(value.clone()) {
                losses.push(format!("plain-{partition}: {value:?} stored twice"));
            }
        }
        for ((p, offset), value) in model.plain.range((partition, low)..(partition + 1, 0)) {
            debug_assert_eq!(*p, partition);
            if kept.get(offset) != Some(value) {
                losses.push(format!(
                    "plain-{partition}: acknowledged offset {offset} ({value:?}) is {:?}",
                    kept.get(offset)
                ));
            }
        }
    }
    // The churn topic: exactly its current incarnation's records.
    if let Some(churn) = &model.churn {
        let kept: BTreeMap<i64, Bytes> = c.read_all(CHURN, 0, 0).await.into_iter().collect();
        for (offset, value) in churn {
            if kept.get(offset) != Some(value) {
                losses.push(format!(
                    "churn: acknowledged offset {offset} is {:?}",
                    kept.get(offset)
                ));
            }
        }
        let generation = format!("-i{}-", model.churn_generation);
        if let Some(stale) = kept
            .values()
            .find(|v| !String::from_utf8_lossy(v).contains(&generation))
        {
            losses.push(format!(
                "churn: a record of an older incarnation came back: {stale:?}"
            ));
        }
    }
    // The compacted topic: each key's newest record is at least its newest acknowledged
    // write (the same value when it is that write); a tombstone younger than
    // delete.retention.ms is still there.
    let low = c.list_offsets(COMPACT, 0, -2).await.offset;
    let records = read_keyed(&mut c, COMPACT, low).await;
    let mut newest: HashMap<&str, (i64, &Option<Bytes>)> = HashMap::new();
    for (offset, key, value) in &records {
        newest.insert(key.as_str(), (*offset, value));
    }
    let now = now_ms();
    for (key, writes) in &model.compact {
        let Some(last) = writes.last() else { continue };
        match newest.get(key.as_str()) {
            Some((offset, _)) if *offset > last.offset => {}
            Some((offset, value)) if *offset == last.offset => {
                if **value != last.value {
                    losses.push(format!("compact: {key} at {offset} has another value"));
                }
            }
            Some((offset, _)) => losses.push(format!(
                "compact: {key}'s newest record is {offset}, older than the acknowledged {}",
                last.offset
            )),
            None if last.value.is_none() && now - last.acked_at_ms > TOMBSTONE_RETENTION_MS => {}
            None => losses.push(format!(
                "compact: {key} is gone; its last acknowledged write ({}) was {}",
                last.offset,
                if last.value.is_some() {
                    "a value"
                } else {
                    "a recent tombstone"
                }
            )),
        }
    }
    // Committed offsets: at least the last acknowledged commit, at most the last sent.
    let request = OffsetFetchRequest::default().with_groups(
        (0..GROUPS)
            .map(|g| {
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s(&format!("g{g}"))))
                    .with_member_id(None)
                    .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                        .with_name(topic_name(PLAIN))
                        .with_partition_indexes(vec![0, 1])]))
            })
            .collect(),
    );
    let mut fetched = None;
    for _ in 0..400 {
        let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 8, &request).await;
        if r.groups.iter().all(|g| g.error_code == 0) {
            fetched = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fetched = fetched.unwrap_or_else(|| panic!("seed {seed} cut {cut}: offsets never loaded"));
    for (g, group) in fetched.groups.iter().enumerate() {
        for p in &group.topics[0].partitions {
            let Some((acked, sent)) = model.commits.get(&(g, p.partition_index)) else {
                continue;
            };
            if p.committed_offset < *acked || p.committed_offset > *sent {
                losses.push(format!(
                    "g{g} partition {}: committed {} but {acked} was acknowledged (last sent {sent})",
                    p.partition_index, p.committed_offset
                ));
            }
        }
    }
    losses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_power_cuts_lose_nothing_acknowledged_across_everything_on_the_log() {
    let seed: u64 = std::env::var("RUNNEL_POWER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ms() as u64);
    let cuts: usize = std::env::var("RUNNEL_POWER_CUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if std::env::var("RUNNEL_FULL").is_ok() {
            1000
        } else {
            200
        });
    println!(
        "power-loss run: seed {seed} (RUNNEL_POWER_SEED={seed} replays its choices), {cuts} cuts"
    );
    let mut rng = Rng(seed);
    let started = Instant::now();
    let config = test_config(
        Path::new("/data"),
        &[
            ("internal.log.segment.bytes", "3000"),
            ("log.flush.offset.checkpoint.interval.ms", "40"),
            ("log.cleaner.backoff.ms", "30"),
            ("offsets.topic.num.partitions", "2"),
            ("offsets.topic.segment.bytes", "3000"),
            ("group.initial.rebalance.delay.ms", "0"),
        ],
    );
    let mut sim = SimFs::new();
    sim.create_dir_all(Path::new("/data")).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    let model: Shared = Arc::default();
    {
        let broker = start(config.clone(), Arc::new(sim.clone())).await;
        let mut c = Client::connect(broker.kafka_addrs[0]).await;
        assert_eq!(create_topic_with(&mut c, PLAIN, 2, &[]).await, 0);
        assert_eq!(create_topic_with(&mut c, CHURN, 1, &[]).await, 0);
        let retention = TOMBSTONE_RETENTION_MS.to_string();
        assert_eq!(
            create_topic_with(
                &mut c,
                COMPACT,
                1,
                &[
                    ("cleanup.policy", "compact"),
                    ("min.cleanable.dirty.ratio", "0"),
                    ("delete.retention.ms", &retention),
                ],
            )
            .await,
            0
        );
        // FindCoordinator creates __consumer_offsets; wait until a commit is taken.
        let find = FindCoordinatorRequest::default().with_key(s("g0"));
        let _: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 3, &find).await;
        let mut taken = false;
        for _ in 0..400 {
            let r: OffsetCommitResponse = c
                .call(ApiKey::OffsetCommit, 8, &commit_request(0, 0, 0))
                .await;
            if r.topics[0].partitions[0].error_code == 0 {
                taken = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(taken, "the group coordinator never loaded");
        {
            let mut m = model.lock().unwrap();
            m.commits.insert((0, 0), (0, 0));
            m.churn = Some(BTreeMap::new());
        }
        broker.shutdown().await.unwrap();
    }
    let mut failures: Vec<String> = Vec::new();
    let (mut torn, mut recovered, mut cleaned, mut tombstones_removed) = (0.0, 0.0, 0.0, 0.0);
    for cut in 0..cuts {
        let broker = start(config.clone(), Arc::new(sim.clone())).await;
        let addr = broker.kafka_addrs[0];
        let text = metrics(broker.http_addr).await;
        recovered += metric(&text, "runnel_log_recovered_segments_total");
        torn += metric(&text, "runnel_log_truncated_bytes_total");
        // No task runs while the model is checked: take it out and put it back.
        let snapshot = std::mem::take(&mut *model.lock().unwrap());
        let losses = check(addr, &snapshot, cut, seed).await;
        *model.lock().unwrap() = snapshot;
        for loss in losses {
            failures.push(format!("cut {cut}: {loss}"));
        }
        let generation = cut as u64;
        let task_seed = rng.next();
        let tasks = vec![
            tokio::spawn(idempotent_producer(addr, model.clone(), generation)),
            tokio::spawn(plain_producer(addr, model.clone(), generation, 0)),
            tokio::spawn(plain_producer(addr, model.clone(), generation, 1)),
            tokio::spawn(compact_producer(addr, model.clone(), task_seed)),
            tokio::spawn(committer(addr, model.clone(), task_seed)),
            tokio::spawn(admin(addr, model.clone(), task_seed, generation)),
        ];
        tokio::time::sleep(Duration::from_millis(20 + rng.below(250))).await;
        let text = metrics(broker.http_addr).await;
        cleaned += metric(&text, "runnel_log_cleaner_passes_total");
        tombstones_removed += metric(&text, "runnel_log_cleaner_tombstones_removed_total");
        let mode = if rng.below(2) == 0 {
            CutMode::LoseUnsynced
        } else {
            CutMode::TornTail { seed: rng.next() }
        };
        let after = sim.power_cut(mode);
        broker.abort();
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        sim = after;
    }
    let broker = start(config.clone(), Arc::new(sim.clone())).await;
    let snapshot = std::mem::take(&mut *model.lock().unwrap());
    for loss in check(broker.kafka_addrs[0], &snapshot, cuts, seed).await {
        failures.push(format!("final: {loss}"));
    }
    broker.abort();
    let m = snapshot;
    let keyed: usize = m.compact.values().map(Vec::len).sum();
    let commits: i64 = m.commits.values().map(|(a, _)| a + 1).sum();
    println!(
        "seed {seed}: {cuts} power cuts in {:?}; {} acknowledged writes ({} plain records, {keyed} keyed writes, {} churn incarnations), commits acknowledged up to {commits} offsets; recovered segments {recovered}, torn bytes cut {torn}, cleaner passes {cleaned}, tombstones removed {tombstones_removed}; losses {}",
        started.elapsed(),
        m.acked,
        m.plain.len(),
        m.churn_generation,
        failures.len()
    );
    for failure in failures.iter().take(20) {
        println!("LOSS {failure}");
    }
    assert!(
        failures.is_empty(),
        "seed {seed}: {} losses (first: {})",
        failures.len(),
        failures[0]
    );
    assert!(
        m.acked > cuts as u64,
        "seed {seed}: the workload acknowledged too little"
    );
    assert!(recovered > 0.0, "recovery never ran");
    assert!(torn > 0.0, "no torn tail was ever cut");
    assert!(cleaned > 0.0, "the cleaner never ran a pass");
    assert!(
        m.churn_generation > 0,
        "the topic was never deleted and created again"
    );
}
