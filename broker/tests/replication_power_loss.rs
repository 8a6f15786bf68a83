//! Power loss of replicated brokers through the I/O seam: three in-process brokers, each
//! on its own simulated disk, share one real etcd; a partition with RF 3 and
//! `min.insync.replicas=2` takes acks=all writes; power is cut on the leader, on a
//! follower, or on all three at once (a rack or a data centre); the brokers start again
//! on what their disks kept. Every acknowledged record must be readable at the offset it
//! was acknowledged at, and the replicas must hold the same batches up to the high
//! watermark.
//!
//! The all-at-once cut is what Runnel's durable mode is for: acknowledged means fsynced
//! on `min.insync.replicas` brokers, so it survives even that. With
//! `log.flush.mode=interval` (Kafka's behaviour) the same cut reports what it lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{batch, metric, metrics, start, test_config, Client};
use proto_kafka::messages::{ApiKey, CreateTopicsResponse};
use proto_kafka::records::Compression;
use runnel_broker::broker::Broker;
use runnel_broker::fsio::sim::{CutMode, SimFs};
use runnel_broker::fsio::{read_file, FileSystem};
use runnel_broker::test_support::etcd::TestEtcd;

const TOPIC: &str = "replicated";

/// offset → value, acknowledged with acks=all.
type Ledger = Arc<Mutex<BTreeMap<i64, Bytes>>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Leader,
    Follower,
    All,
}

struct Node {
    sim: SimFs,
    broker: Option<Broker>,
}

struct Ring {
    etcd: TestEtcd,
    nodes: Vec<Node>,
    flush_mode: &'static str,
}

fn fresh_disk() -> SimFs {
    let sim = SimFs::new();
    sim.create_dir_all(Path::new("/data")).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    sim
}

impl Ring {
    async fn start(test: &str, flush_mode: &'static str) -> Option<Ring> {
        let etcd = TestEtcd::start_or_skip(test)?;
        let mut ring = Ring {
            etcd,
            nodes: Vec::new(),
            flush_mode,
        };
        for _ in 0..3 {
            ring.nodes.push(Node {
                sim: fresh_disk(),
                broker: None,
            });
        }
        for id in 0..3 {
            ring.launch(id).await;
        }
        Some(ring)
    }

    async fn launch(&mut self, id: usize) {
        let id_text = id.to_string();
        let endpoint = self.etcd.endpoint();
        let config = test_config(
            Path::new("/data"),
            &[
                ("broker.id", &id_text),
                ("etcd.endpoints", &endpoint),
                ("metadata.lease.ttl.ms", "2000"),
                ("log.flush.mode", self.flush_mode),
                ("internal.log.segment.bytes", "32768"),
                ("offsets.topic.replication.factor", "1"),
            ],
        );
        let fs: Arc<dyn FileSystem> = Arc::new(self.nodes[id].sim.clone());
        self.nodes[id].broker = Some(start(config, fs).await);
    }

    fn broker(&self, id: usize) -> &Broker {
        self.nodes[id].broker.as_ref().expect("broker running")
    }

    fn addr(&self, id: usize) -> SocketAddr {
        self.broker(id).kafka_addrs[0]
    }

    fn running(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|i| self.nodes[*i].broker.is_some())
    }

    /// (leader, ISR size) as the running brokers' metadata shows it.
    async fn leader(&self) -> Option<(usize, usize)> {
        let id = self.running().next()?;
        let mut client = Client::connect(self.addr(id)).await;
        let m = client.metadata(Some(&[TOPIC])).await;
        let p = m.topics.first()?.partitions.first()?;
        let leader = usize::try_from(p.leader_id.0).ok()?;
        self.nodes.get(leader)?.broker.as_ref()?;
        Some((leader, p.isr_nodes.len()))
    }

    async fn wait_leader_with_isr(&self, isr: usize, timeout: Duration) -> usize {
        let started = Instant::now();
        loop {
            if let Some((leader, size)) = self.leader().await {
                if size >= isr {
                    return leader;
                }
            }
            assert!(
                started.elapsed() < timeout,
                "no leader with an ISR of {isr} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Cuts power on `ids` at one instant: each disk keeps what it synced (and, torn, a
    /// prefix of the rest); the brokers stop as a crash would.
    fn cut(&mut self, ids: &[usize], seed: u64) {
        let mut after = Vec::new();
        for &id in ids {
            let mode = if seed.is_multiple_of(2) {
                CutMode::LoseUnsynced
            } else {
                CutMode::TornTail {
                    seed: seed + id as u64,
                }
            };
            after.push((id, self.nodes[id].sim.power_cut(mode)));
        }
        for (id, disk) in after {
            if let Some(broker) = self.nodes[id].broker.take() {
                broker.abort();
            }
            self.nodes[id].sim = disk;
        }
    }

    /// The stored batches of the partition on broker `id`'s disk, in offset order, cut at
    /// `upto` (whole batches below it).
    fn stored(&self, id: usize, upto: i64) -> Vec<u8> {
        let sim = &self.nodes[id].sim;
        let dir = PathBuf::from(format!("/data/{TOPIC}-0"));
        let mut names: Vec<String> = sim
            .list_dir(&dir)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .filter(|n| n.ends_with(".log"))
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let data = read_file(sim, &dir.join(name)).unwrap();
            let mut pos = 0;
            while pos + 61 <= data.len() {
                let base = i64::from_be_bytes(data[pos..pos + 8].try_into().unwrap());
                let len = i32::from_be_bytes(data[pos + 8..pos + 12].try_into().unwrap()) as usize;
                let delta = i32::from_be_bytes(data[pos + 23..pos + 27].try_into().unwrap());
                let end = pos + 12 + len;
                if end > data.len() {
                    break;
                }
                if base + i64::from(delta) < upto {
                    out.extend_from_slice(&data[pos..end]);
                }
                pos = end;
            }
        }
        out
    }
}

async fn produce_until_stopped(addr: SocketAddr, task: usize, acked: Ledger) {
    let mut client = Client::connect(addr).await;
    for seq in 0usize.. {
        let values: Vec<String> = (0..(1 + seq % 3))
            .map(|i| format!("t{task}-s{seq}-r{i}-{}", "x".repeat(300)))
            .collect();
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
        let Some(base_offset) = client
            .try_produce(TOPIC, 0, batch(&refs, Compression::None), -1)
            .await
        else {
            return;
        };
        let mut ledger = acked.lock().unwrap();
        for (i, v) in values.iter().enumerate() {
            ledger.insert(base_offset + i as i64, Bytes::from(v.clone()));
        }
    }
}

struct Outcome {
    acked: usize,
    lost: usize,
    high_watermark: i64,
}

async fn run_once(test: &str, seed: u64, cut: Cut, flush_mode: &'static str) -> Option<Outcome> {
    let mut ring = Ring::start(test, flush_mode).await?;
    let request = Client::create_topics_request(TOPIC, 1, 3, &[("min.insync.replicas", "2")]);
    let created: CreateTopicsResponse = Client::connect(ring.addr(0))
        .await
        .call(ApiKey::CreateTopics, 7, &request)
        .await;
    assert_eq!(created.topics[0].error_code, 0);
    let leader = ring.wait_leader_with_isr(3, Duration::from_secs(30)).await;

    let acked: Ledger = Arc::default();
    let tasks: Vec<_> = (0..3)
        .map(|task| {
            tokio::spawn(produce_until_stopped(
                ring.addr(leader),
                task,
                acked.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300 + (seed * 7919) % 400)).await;
    let victims: Vec<usize> = match cut {
        Cut::Leader => vec![leader],
        Cut::Follower => vec![(leader + 1) % 3],
        Cut::All => vec![0, 1, 2],
    };
    ring.cut(&victims, seed);
    if cut == Cut::Follower {
        // The leader goes on with the other follower; then it stops taking writes.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
    for &id in &victims {
        ring.launch(id).await;
    }
    let leader = ring.wait_leader_with_isr(3, Duration::from_secs(60)).await;
    let mut client = Client::connect(ring.addr(leader)).await;
    let kept: BTreeMap<i64, Bytes> = client.read_all(TOPIC, 0, 0).await.into_iter().collect();
    let high_watermark = kept.keys().next_back().map_or(0, |o| o + 1);
    let acked = acked.lock().unwrap().clone();
    let lost = acked.iter().filter(|(o, v)| kept.get(o) != Some(v)).count();
    // Every replica holds the same batches up to the high watermark, once caught up.
    let started = Instant::now();
    loop {
        let copies: Vec<Vec<u8>> = (0..3).map(|id| ring.stored(id, high_watermark)).collect();
        if copies.iter().all(|c| *c == copies[0]) && !copies[0].is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "seed {seed}: replicas differ below the high watermark {high_watermark}: {:?} bytes",
            copies.iter().map(Vec::len).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut truncations = 0.0;
    for id in 0..3 {
        let text = metrics(ring.broker(id).http_addr).await;
        truncations += metric(&text, "runnel_replication_truncations_total");
    }
    println!(
        "{flush_mode} seed={seed} cut={cut:?}: acked={} lost={lost} kept={} hw={high_watermark} truncations={truncations}",
        acked.len(),
        kept.len()
    );
    for node in &mut ring.nodes {
        if let Some(broker) = node.broker.take() {
            broker.abort();
        }
    }
    Some(Outcome {
        acked: acked.len(),
        lost,
        high_watermark,
    })
}

fn seeds() -> u64 {
    if std::env::var_os("RUNNEL_FULL").is_some() {
        6
    } else {
        2
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_mode_keeps_every_acknowledged_record_when_replicas_lose_power() {
    let mut total = 0;
    for seed in 0..seeds() {
        for cut in [Cut::Leader, Cut::Follower, Cut::All] {
            let Some(outcome) = run_once("replicated power loss", seed, cut, "durable").await
            else {
                return;
            };
            assert!(
                outcome.acked > 0,
                "seed {seed} {cut:?}: nothing was acknowledged"
            );
            assert!(outcome.high_watermark > 0);
            assert_eq!(
                outcome.lost, 0,
                "seed {seed} {cut:?}: acknowledged records were lost"
            );
            total += outcome.acked;
        }
    }
    println!("durable: {total} acknowledged records survived every cut, all three brokers at once included");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_mode_reports_what_losing_power_everywhere_takes() {
    let mut lost = 0;
    let mut acked = 0;
    for seed in 0..seeds() {
        let Some(outcome) = run_once(
            "replicated power loss, interval",
            seed,
            Cut::All,
            "interval",
        )
        .await
        else {
            return;
        };
        lost += outcome.lost;
        acked += outcome.acked;
    }
    println!("interval mode (Kafka's behaviour): a power cut of all three replicas lost {lost} of {acked} acknowledged records");
    assert!(acked > 0);
}
