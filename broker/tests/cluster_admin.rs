//! Three brokers on one real etcd, in this process: admin requests sent to a broker that
//! is not the controller are forwarded over gRPC and answered as the controller answers;
//! the admin service's watch stream shows a snapshot and then every leader change a kill
//! causes, in revision order; forged, stale, oversized and unknown-field gRPC requests are
//! refused, counted, and write nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{metric, metrics, test_config, Client};
use proto_kafka::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use proto_kafka::messages::*;
use proto_kafka::protocol::StrBytes;
use runnel_broker::broker::Broker;
use runnel_broker::fsio::RealFs;
use runnel_broker::rpc::proto::admin_client::AdminClient;
use runnel_broker::rpc::proto::{self, Forwarded};
use runnel_broker::test_support::etcd::TestEtcd;
use tempfile::TempDir;
use tonic::transport::Channel;

const TTL_MS: &str = "2000";

struct Cluster {
    etcd: TestEtcd,
    dirs: Vec<TempDir>,
    brokers: Vec<Option<Broker>>,
    extra: Vec<(String, String)>,
}

impl Cluster {
    async fn start(test: &str, n: usize, extra: &[(&str, &str)]) -> Option<Cluster> {
        let etcd = TestEtcd::start_or_skip(test)?;
        let mut cluster = Cluster {
            etcd,
            dirs: Vec::new(),
            brokers: Vec::new(),
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        for id in 0..n {
            cluster.dirs.push(tempfile::tempdir().unwrap());
            let broker = cluster.launch(id).await;
            cluster.brokers.push(Some(broker));
        }
        cluster.wait_for_brokers(n).await;
        Some(cluster)
    }

    async fn launch(&self, id: usize) -> Broker {
        let id_text = id.to_string();
        let endpoint = self.etcd.endpoint();
        let mut pairs: Vec<(&str, &str)> = vec![
            ("broker.id", &id_text),
            ("etcd.endpoints", &endpoint),
            ("metadata.lease.ttl.ms", TTL_MS),
        ];
        pairs.extend(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let config = test_config(self.dirs[id].path(), &pairs);
        let broker = Broker::start(config, Arc::new(RealFs), None)
            .await
            .expect("broker starts");
        assert!(
            broker.wait_ready(Duration::from_secs(30)).await,
            "broker {id} ready"
        );
        broker
    }

    fn broker(&self, id: usize) -> &Broker {
        self.brokers[id].as_ref().expect("broker running")
    }

    fn any(&self) -> &Broker {
        self.brokers.iter().flatten().next().expect("a broker runs")
    }

    async fn wait_for_brokers(&self, n: usize) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            let all_see = self.brokers.iter().flatten().all(|b| {
                let image = b.cache.image();
                image.brokers.len() == n && image.controller.is_some()
            });
            if all_see {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the brokers did not all see {n} brokers and a controller");
    }

    fn controller(&self) -> usize {
        let (id, _) = self.any().cache.image().controller.expect("a controller");
        usize::try_from(id).unwrap()
    }

    fn other_than_controller(&self) -> usize {
        let controller = self.controller();
        (0..self.brokers.len())
            .find(|i| *i != controller && self.brokers[*i].is_some())
            .expect("a broker that is not the controller")
    }

    async fn kafka(&self, id: usize) -> Client {
        Client::connect(self.broker(id).kafka_addrs[0]).await
    }

    async fn admin(&self, id: usize) -> AdminClient<Channel> {
        AdminClient::connect(format!("http://{}", self.broker(id).admin_addr))
            .await
            .expect("admin service reachable")
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn create(
    c: &mut Client,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> (i16, Option<String>) {
    let request = Client::create_topics_request(name, partitions, -1, configs);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &request).await;
    (
        r.topics[0].error_code,
        r.topics[0].error_message.as_ref().map(|m| m.to_string()),
    )
}

async fn alter_topic(c: &mut Client, name: &str, key: &str, value: &str) -> (i16, Option<String>) {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(name))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s(key))
                .with_config_operation(0)
                .with_value(Some(s(value)))]),
    ]);
    let r: IncrementalAlterConfigsResponse =
        c.call(ApiKey::IncrementalAlterConfigs, 1, &request).await;
    (
        r.responses[0].error_code,
        r.responses[0].error_message.as_ref().map(|m| m.to_string()),
    )
}

fn partitions_in_metadata(m: &MetadataResponse, topic: &str) -> Option<usize> {
    m.topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic) && t.error_code == 0)
        .map(|t| t.partitions.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_requests_to_a_non_controller_are_answered_as_the_controller_answers() {
    let Some(cluster) = Cluster::start("forwarding", 3, &[]).await else {
        return;
    };
    let controller = cluster.controller();
    let other = cluster.other_than_controller();
    let mut at_controller = cluster.kafka(controller).await;
    let mut at_other = cluster.kafka(other).await;

    // Created through the non-controller, and visible there the moment it answers.
    let (code, message) = create(&mut at_other, "fwd", 6, &[]).await;
    assert_eq!((code, message), (0, None));
    let m = at_other.metadata(Some(&["fwd"])).await;
    assert_eq!(
        partitions_in_metadata(&m, "fwd"),
        Some(6),
        "read-your-writes"
    );

    // Each refusal: the same code and message through either broker.
    type Case<'a> = (&'a str, i32, Vec<(&'a str, &'a str)>, i16);
    let cases: [Case<'_>; 4] = [
        ("fwd", 1, vec![], 36),                               // TOPIC_ALREADY_EXISTS
        ("no-partitions", 0, vec![], 37),                     // INVALID_PARTITIONS
        ("bad-config", 1, vec![("cleanup.policy", "x")], 40), // INVALID_CONFIG
        ("bad/name", 1, vec![], 17),                          // INVALID_TOPIC_EXCEPTION
    ];
    for (name, partitions, configs, expected) in cases {
        let here = create(&mut at_other, name, partitions, &configs).await;
        let there = create(&mut at_controller, name, partitions, &configs).await;
        assert_eq!(
            here.0, expected,
            "{name} through the non-controller: {here:?}"
        );
        assert_eq!(here, there, "{name}: same answer through either broker");
    }

    let here = alter_topic(&mut at_other, "fwd", "retention.ms", "not-a-number").await;
    let there = alter_topic(&mut at_controller, "fwd", "retention.ms", "not-a-number").await;
    assert_eq!(here.0, 40, "{here:?}");
    assert_eq!(here, there);
    assert_eq!(
        alter_topic(&mut at_other, "fwd", "retention.ms", "12345")
            .await
            .0,
        0
    );
    let image = cluster.broker(other).cache.image();
    assert_eq!(
        image
            .topic("fwd")
            .unwrap()
            .configs
            .get("retention.ms")
            .map(String::as_str),
        Some("12345"),
        "the change is visible on the broker that took it"
    );

    assert_eq!(at_other.delete_topic("never-was").await, 3);
    assert_eq!(at_controller.delete_topic("never-was").await, 3);
    assert_eq!(at_other.delete_topic("fwd").await, 0);
    let m = at_other.metadata(Some(&["fwd"])).await;
    assert_eq!(
        partitions_in_metadata(&m, "fwd"),
        None,
        "gone on the broker that took it"
    );

    let other_metrics = metrics(cluster.broker(other).http_addr).await;
    let forwarded = metric(&other_metrics, "runnel_admin_forwarded_total");
    println!("admin requests forwarded by broker {other}: {forwarded}");
    assert!(
        forwarded >= 8.0,
        "the non-controller forwarded ({forwarded})"
    );
    let controller_metrics = metrics(cluster.broker(controller).http_addr).await;
    assert_eq!(
        metric(&controller_metrics, "runnel_admin_forwarded_total"),
        0.0
    );
}

/// The partitions `broker` leads in `event`'s states.
fn led_by(states: &[proto::Partition], broker: i32) -> Vec<(String, i32)> {
    states
        .iter()
        .filter(|p| p.leader == broker && !p.offline)
        .map(|p| (p.topic.clone(), p.partition))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_stream_shows_a_snapshot_then_every_leader_change_in_revision_order() {
    let Some(mut cluster) = Cluster::start("watch", 3, &[]).await else {
        return;
    };
    let controller = cluster.controller();
    let victim = cluster.other_than_controller();
    let watcher = (0..3).find(|i| *i != victim).unwrap();
    let mut c = cluster.kafka(watcher).await;
    assert_eq!(create(&mut c, "watched", 6, &[]).await.0, 0);

    let mut admin = cluster.admin(watcher).await;
    let mut stream = admin
        .watch(proto::WatchRequest {})
        .await
        .unwrap()
        .into_inner();
    let snapshot = stream.message().await.unwrap().unwrap();
    assert!(snapshot.snapshot);
    assert_eq!(snapshot.brokers.len(), 3);
    assert_eq!(snapshot.controller_id, i32::try_from(controller).unwrap());
    let watched: Vec<proto::Partition> = snapshot
        .partitions
        .iter()
        .filter(|p| p.topic == "watched")
        .cloned()
        .collect();
    assert_eq!(watched.len(), 6);
    let victim_id = i32::try_from(victim).unwrap();
    let victims = led_by(&watched, victim_id);
    assert_eq!(
        victims.len(),
        2,
        "6 partitions over 3 brokers: 2 each ({watched:?})"
    );

    // Kill the victim (its lease is left to expire, as after kill -9).
    let killed_at = Instant::now();
    cluster.brokers[victim].take().unwrap().abort();
    let mut revision = snapshot.revision;
    let mut offline: Vec<(String, i32)> = Vec::new();
    let mut gone = false;
    while !(gone && offline.len() == victims.len()) {
        let event = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("a change within 20 s")
            .unwrap()
            .unwrap();
        assert!(!event.snapshot);
        assert!(
            event.revision > revision,
            "revisions increase: {} then {}",
            revision,
            event.revision
        );
        revision = event.revision;
        gone |= event.brokers_gone.contains(&victim_id);
        for p in &event.partitions {
            let key = (p.topic.clone(), p.partition);
            if victims.contains(&key) && p.offline && !offline.contains(&key) {
                offline.push(key);
            }
        }
    }
    println!(
        "watch: broker {victim} gone and its {} partitions offline after {:?}",
        offline.len(),
        killed_at.elapsed()
    );

    // The stream shows the partitions offline as soon as the broker is gone; the
    // controller's rewrite of their records follows.
    let mut text = String::new();
    for _ in 0..100 {
        text = metrics(cluster.broker(controller).http_addr).await;
        if metric(&text, "runnel_controller_leader_changes_total") >= 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metric(&text, "runnel_controller_elections_total"), 1.0);
    assert!(
        metric(&text, "runnel_controller_leader_changes_total") >= 2.0,
        "the controller wrote the victim's partitions offline"
    );
    assert!(metric(&text, "runnel_controller_transaction_seconds_count") >= 1.0);

    // It comes back: its partitions are led by it again, seen as changes.
    let restarted_at = Instant::now();
    let broker = cluster.launch(victim).await;
    cluster.brokers[victim] = Some(broker);
    let mut back: Vec<(String, i32)> = Vec::new();
    let mut registered = false;
    while !(registered && back.len() == victims.len()) {
        let event = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("a change within 20 s")
            .unwrap()
            .unwrap();
        assert!(
            event.revision > revision,
            "revisions increase: {} then {}",
            revision,
            event.revision
        );
        revision = event.revision;
        registered |= event.brokers.iter().any(|b| b.id == victim_id);
        for key in led_by(&event.partitions, victim_id) {
            if victims.contains(&key) && !back.contains(&key) {
                back.push(key);
            }
        }
    }
    println!(
        "watch: broker {victim} leads its partitions again after {:?}",
        restarted_at.elapsed()
    );
}

fn refused(text: &str, reason: &str) -> f64 {
    metric(
        text,
        &format!("runnel_admin_refused_total{{reason=\"{reason}\"}}"),
    )
}

async fn topic_exists(admin: &mut AdminClient<Channel>, name: &str) -> bool {
    let r = admin
        .describe_topics(proto::DescribeTopicsRequest {
            names: vec![name.to_string()],
        })
        .await
        .unwrap()
        .into_inner();
    !r.topics.is_empty()
}

fn spec(name: &str) -> proto::TopicSpec {
    proto::TopicSpec {
        name: name.to_string(),
        partitions: 1,
        replication_factor: 1,
        ..Default::default()
    }
}

/// A newer caller's CreateTopics, with a field this version does not know.
#[derive(Clone, PartialEq, prost::Message)]
struct CreateTopicsFromANewerVersion {
    #[prost(message, repeated, tag = "1")]
    topics: Vec<proto::TopicSpec>,
    #[prost(bool, tag = "2")]
    validate_only: bool,
    #[prost(string, tag = "99")]
    placement_policy: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_oversized_and_unknown_grpc_requests_are_refused_and_write_nothing() {
    let Some(cluster) =
        Cluster::start("hostile grpc", 2, &[("admin.max.message.bytes", "65536")]).await
    else {
        return;
    };
    let controller = cluster.controller();
    let other = cluster.other_than_controller();
    let image = cluster.broker(controller).cache.image();
    let (_, controller_epoch) = image.controller.unwrap();
    let other_epoch = image.brokers[&i32::try_from(other).unwrap()].epoch;
    let mut admin = cluster.admin(controller).await;
    let mut c = cluster.kafka(controller).await;
    assert_eq!(create(&mut c, "keep", 1, &[]).await.0, 0);
    let stamp = |broker_epoch: i64, controller_epoch: i64| Forwarded {
        broker_id: i32::try_from(other).unwrap(),
        broker_epoch,
        controller_epoch,
    };

    // A sender epoch that is not a live registration.
    let status = admin
        .create_topics(proto::CreateTopicsRequest {
            topics: vec![spec("stale-sender")],
            validate_only: false,
            forwarded: Some(stamp(other_epoch - 1, controller_epoch)),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    // Addressed to an earlier controller term.
    let status = admin
        .delete_topics(proto::DeleteTopicsRequest {
            names: vec!["keep".into()],
            forwarded: Some(stamp(other_epoch, controller_epoch - 1)),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    // A forward sent to a broker that is not the controller.
    let mut not_controller = cluster.admin(other).await;
    let status = not_controller
        .create_topics(proto::CreateTopicsRequest {
            topics: vec![spec("wrong-door")],
            validate_only: false,
            forwarded: Some(stamp(other_epoch, controller_epoch)),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");

    // Larger than admin.max.message.bytes.
    let mut big = spec("oversized");
    big.configs.insert("x".into(), "y".repeat(100_000));
    let status = admin
        .create_topics(proto::CreateTopicsRequest {
            topics: vec![big],
            validate_only: false,
            forwarded: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");

    // A field from a newer version.
    let channel = Channel::from_shared(format!("http://{}", cluster.broker(controller).admin_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let newer = CreateTopicsFromANewerVersion {
        topics: vec![spec("from-the-future")],
        validate_only: false,
        placement_policy: "spread".into(),
    };
    let status = grpc
        .unary::<_, proto::CreateTopicsResponse, _>(
            tonic::Request::new(newer),
            tonic::codegen::http::uri::PathAndQuery::from_static("/runnel.v1.Admin/CreateTopics"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    for name in ["stale-sender", "wrong-door", "oversized", "from-the-future"] {
        assert!(
            !topic_exists(&mut admin, name).await,
            "{name} was not created"
        );
    }
    assert!(
        topic_exists(&mut admin, "keep").await,
        "the stale delete deleted nothing"
    );
    let controller_metrics = metrics(cluster.broker(controller).http_addr).await;
    let other_metrics = metrics(cluster.broker(other).http_addr).await;
    assert_eq!(refused(&controller_metrics, "stale_broker_epoch"), 1.0);
    assert_eq!(refused(&controller_metrics, "stale_controller_epoch"), 1.0);
    assert_eq!(refused(&other_metrics, "stale_controller_epoch"), 1.0);
    assert_eq!(refused(&controller_metrics, "oversized"), 1.0);
    // The codec's counter is per process (every broker of these tests runs in this one).
    assert!(refused(&controller_metrics, "unknown_fields") >= 1.0);

    // The same service, used properly, works: created through the non-controller's
    // admin service (forwarded) and described there at once (read-your-writes holds on
    // the broker that took the request).
    let r = not_controller
        .create_topics(proto::CreateTopicsRequest {
            topics: vec![spec("proper")],
            validate_only: false,
            forwarded: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.topics[0].outcome.as_ref().unwrap().error_code, 0, "{r:?}");
    assert!(topic_exists(&mut not_controller, "proper").await);
}

/// The lease is kept alive on a thread and runtime of its own: a request runtime whose
/// workers are all blocked for longer than the TTL does not cost the broker its
/// registration (before, the keep-alive ran on that runtime and the lease expired).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starved_request_runtime_does_not_lose_the_registration() {
    let Some(cluster) = Cluster::start("starved runtime", 1, &[]).await else {
        return;
    };
    let broker = cluster.broker(0);
    let epoch = broker.replicas.broker_epoch();
    // Block every worker of this runtime for 2.5 × the TTL.
    let blockers: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(async {
                std::thread::sleep(Duration::from_millis(5000));
            })
        })
        .collect();
    for blocker in blockers {
        blocker.await.unwrap();
    }
    // Give a lost registration time to show: the re-registration would follow at once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        broker.replicas.broker_epoch(),
        epoch,
        "registered in the same epoch"
    );
    let image = broker.cache.image();
    assert_eq!(image.brokers[&0].epoch, epoch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_refuses_produce_and_fetch_and_says_where_the_leader_is() {
    let Some(cluster) = Cluster::start("leader hints", 3, &[]).await else {
        return;
    };
    let mut any = cluster.kafka(0).await;
    let request = Client::create_topics_request("hinted", 1, 3, &[]);
    let created: CreateTopicsResponse = any.call(ApiKey::CreateTopics, 7, &request).await;
    assert_eq!(created.topics[0].error_code, 0);
    let m = any.metadata(Some(&["hinted"])).await;
    let p = &m.topics[0].partitions[0];
    let (leader, epoch) = (p.leader_id.0, p.leader_epoch);
    let follower = (0..3).find(|id| *id != leader as usize).unwrap();
    let leader_port = i32::from(cluster.broker(leader as usize).kafka_addrs[0].port());
    let mut at_follower = cluster.kafka(follower).await;

    let produce = Client::produce_request(
        "hinted",
        0,
        common::batch(&[b"x"], proto_kafka::records::Compression::None),
        -1,
    );
    for version in [9, 10, 11] {
        let r: ProduceResponse = at_follower.call(ApiKey::Produce, version, &produce).await;
        let answer = &r.responses[0].partition_responses[0];
        assert_eq!(answer.error_code, 6, "v{version}: NOT_LEADER_OR_FOLLOWER");
        if version >= 10 {
            assert_eq!(
                (
                    answer.current_leader.leader_id.0,
                    answer.current_leader.leader_epoch
                ),
                (leader, epoch),
                "v{version}: the current leader (KIP-951)"
            );
            assert_eq!(r.node_endpoints.len(), 1);
            assert_eq!(r.node_endpoints[0].node_id.0, leader);
            assert_eq!(r.node_endpoints[0].port, leader_port);
        } else {
            assert_eq!(
                answer.current_leader,
                Default::default(),
                "v9 has no such field"
            );
        }
    }
    let fetch = Client::fetch_request("hinted", 0, 0, 0);
    let r: FetchResponse = at_follower.call(ApiKey::Fetch, 12, &fetch).await;
    let answer = &r.responses[0].partitions[0];
    assert_eq!(answer.error_code, 6);
    assert_eq!(
        (
            answer.current_leader.leader_id.0,
            answer.current_leader.leader_epoch
        ),
        (leader, epoch)
    );
    // ListOffsets is refused by followers as Kafka refuses it (no fetch from followers).
    assert_eq!(
        at_follower.list_offsets("hinted", 0, -1).await.error_code,
        6
    );
}
