//! The group coordinator at protocol level: the classic protocol's fencing and error
//! codes, committed offsets, the internal topic's guards, and hostile group requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{batch, metric, metrics, start, test_config, topic_name, Client};
use proto_kafka::messages::join_group_request::JoinGroupRequestProtocol;
use proto_kafka::messages::leave_group_request::MemberIdentity;
use proto_kafka::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use proto_kafka::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use proto_kafka::messages::sync_group_request::SyncGroupRequestAssignment;
use proto_kafka::messages::*;
use proto_kafka::protocol::StrBytes;
use proto_kafka::records::Compression;
use runnel_broker::broker::Broker;
use runnel_broker::fsio::RealFs;

const MEMBER_ID_REQUIRED: i16 = 79;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const REBALANCE_IN_PROGRESS: i16 = 27;
const INVALID_REQUEST: i16 = 42;
const FENCED_INSTANCE_ID: i16 = 82;
const INVALID_GROUP_ID: i16 = 24;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OFFSET_METADATA_TOO_LARGE: i16 = 12;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;

async fn broker(dir: &std::path::Path) -> Broker {
    let config = test_config(
        dir,
        &[
            ("group.initial.rebalance.delay.ms", "0"),
            ("group.min.session.timeout.ms", "100"),
            ("offsets.topic.num.partitions", "5"),
        ],
    );
    start(config, Arc::new(RealFs)).await
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn join_request(member: &str, instance: Option<&str>, metadata: Bytes) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_protocol_type(s("consumer"))
        .with_reason(None)
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(metadata)])
}

const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;

/// JoinGroup, retried while the coordinator is still loading its partition (as clients do).
async fn join(client: &mut Client, request: &JoinGroupRequest) -> JoinGroupResponse {
    for _ in 0..100 {
        let response: JoinGroupResponse = client.call(ApiKey::JoinGroup, 9, request).await;
        if response.error_code != COORDINATOR_LOAD_IN_PROGRESS {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the coordinator never finished loading");
}

/// Finds the coordinator (creating the offsets topic), then joins as the only member
/// and completes generation 1: returns the member id.
async fn form_group(client: &mut Client) -> String {
    let found: FindCoordinatorResponse = client
        .call(
            ApiKey::FindCoordinator,
            4,
            &FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g")]),
        )
        .await;
    assert_eq!(found.coordinators[0].error_code, 0);
    let first = join(client, &join_request("", None, Bytes::from_static(b"m"))).await;
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let member = first.member_id.to_string();
    let joined = join(
        client,
        &join_request(&member, None, Bytes::from_static(b"m")),
    )
    .await;
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader.as_str(), member);
    assert_eq!(joined.members.len(), 1);
    let synced: SyncGroupResponse = client
        .call(ApiKey::SyncGroup, 5, &sync_request(&member, 1))
        .await;
    assert_eq!(synced.error_code, 0);
    assert_eq!(synced.assignment.as_ref(), b"assigned");
    member
}

fn sync_request(member: &str, generation: i32) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_group_instance_id(None)
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(s(member))
            .with_assignment(Bytes::from_static(b"assigned"))])
}

fn heartbeat(member: &str, generation: i32, instance: Option<&str>) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
}

fn commit_request(
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    offset: i64,
    metadata: &str,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_group_instance_id(None)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(3)
                .with_committed_metadata(Some(s(metadata)))])])
}

async fn commit(client: &mut Client, request: &OffsetCommitRequest) -> i16 {
    let response: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, request).await;
    response.topics[0].partitions[0].error_code
}

#[tokio::test]
async fn generations_fence_stale_members_and_commits() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addrs[0]).await;
    assert_eq!(client.create_topic("data", 1).await, 0);
    let member = form_group(&mut client).await;

    let hb = |m: &str, g: i32| heartbeat(m, g, None);
    let r: HeartbeatResponse = client.call(ApiKey::Heartbeat, 4, &hb(&member, 1)).await;
    assert_eq!(r.error_code, 0);
    let r: HeartbeatResponse = client.call(ApiKey::Heartbeat, 4, &hb(&member, 0)).await;
    assert_eq!(r.error_code, ILLEGAL_GENERATION);
    let r: HeartbeatResponse = client.call(ApiKey::Heartbeat, 4, &hb("stranger", 1)).await;
    assert_eq!(r.error_code, UNKNOWN_MEMBER_ID);
    let r: SyncGroupResponse = client
        .call(ApiKey::SyncGroup, 5, &sync_request(&member, 7))
        .await;
    assert_eq!(r.error_code, ILLEGAL_GENERATION);
    let r: SyncGroupResponse = client
        .call(ApiKey::SyncGroup, 5, &sync_request("stranger", 1))
        .await;
    assert_eq!(r.error_code, UNKNOWN_MEMBER_ID);

    // Commits: the current generation is stored; a stale one and an admin commit into a
    // group with members are refused; the offsets, epoch and metadata read back.
    assert_eq!(
        commit(
            &mut client,
            &commit_request("g", 1, &member, "data", 42, "meta")
        )
        .await,
        0
    );
    assert_eq!(
        commit(&mut client, &commit_request("g", 0, &member, "data", 1, "")).await,
        ILLEGAL_GENERATION
    );
    assert_eq!(
        commit(&mut client, &commit_request("g", -1, "", "data", 1, "")).await,
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        commit(&mut client, &commit_request("g", 1, &member, "nope", 1, "")).await,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        commit(
            &mut client,
            &commit_request("g", 1, &member, "data", 1, &"x".repeat(5000))
        )
        .await,
        OFFSET_METADATA_TOO_LARGE
    );
    assert_eq!(
        commit(&mut client, &commit_request("other", 3, "m", "data", 1, "")).await,
        ILLEGAL_GENERATION,
        "a generation for a group that does not exist"
    );
    assert_eq!(
        commit(&mut client, &commit_request("admin", -1, "", "data", 9, "")).await,
        0,
        "a standalone commit creates its group"
    );
    let fetched: OffsetFetchResponse = client
        .call(
            ApiKey::OffsetFetch,
            8,
            &OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s("g")))
                    .with_member_id(None)
                    .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                        .with_name(topic_name("data"))
                        .with_partition_indexes(vec![0])])),
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s("admin")))
                    .with_member_id(None)
                    .with_topics(None),
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s("never")))
                    .with_member_id(None)
                    .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                        .with_name(topic_name("data"))
                        .with_partition_indexes(vec![0])])),
            ]),
        )
        .await;
    let p = &fetched.groups[0].topics[0].partitions[0];
    assert_eq!(
        (
            p.committed_offset,
            p.committed_leader_epoch,
            p.metadata.as_ref().unwrap().as_str()
        ),
        (42, 3, "meta")
    );
    assert_eq!(
        fetched.groups[1].topics[0].partitions[0].committed_offset,
        9
    );
    assert_eq!(
        fetched.groups[2].topics[0].partitions[0].committed_offset,
        -1
    );

    // A second member makes the group rebalance: the first learns it by heartbeat.
    let second = join(
        &mut client,
        &join_request("", None, Bytes::from_static(b"m")),
    )
    .await;
    assert_eq!(second.error_code, MEMBER_ID_REQUIRED);
    let mut other = Client::connect(broker.kafka_addrs[0]).await;
    let pending = tokio::spawn(async move {
        join(
            &mut other,
            &join_request(&second.member_id, None, Bytes::from_static(b"m")),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r: HeartbeatResponse = client.call(ApiKey::Heartbeat, 4, &hb(&member, 1)).await;
    assert_eq!(r.error_code, REBALANCE_IN_PROGRESS);
    let rejoined = join(
        &mut client,
        &join_request(&member, None, Bytes::from_static(b"m")),
    )
    .await;
    let second = pending.await.unwrap();
    assert_eq!((rejoined.error_code, second.error_code), (0, 0));
    assert_eq!(rejoined.generation_id, 2);
    assert_eq!(second.generation_id, 2);
    assert_eq!(
        rejoined.members.len() + second.members.len(),
        2,
        "only the leader gets the members"
    );

    // Deleting a group with members is refused; after both leave it can be deleted.
    let deleted: DeleteGroupsResponse = client
        .call(
            ApiKey::DeleteGroups,
            2,
            &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g"))]),
        )
        .await;
    assert_eq!(deleted.results[0].error_code, NON_EMPTY_GROUP);
    let left: LeaveGroupResponse = client
        .call(
            ApiKey::LeaveGroup,
            5,
            &LeaveGroupRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_members(vec![
                    MemberIdentity::default()
                        .with_member_id(s(&member))
                        .with_group_instance_id(None)
                        .with_reason(None),
                    MemberIdentity::default()
                        .with_member_id(s(&second.member_id))
                        .with_group_instance_id(None)
                        .with_reason(None),
                    MemberIdentity::default()
                        .with_member_id(s("stranger"))
                        .with_group_instance_id(None)
                        .with_reason(None),
                ]),
        )
        .await;
    let codes: Vec<i16> = left.members.iter().map(|m| m.error_code).collect();
    assert_eq!(codes, vec![0, 0, UNKNOWN_MEMBER_ID]);
    let deleted: DeleteGroupsResponse = client
        .call(
            ApiKey::DeleteGroups,
            2,
            &DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(s("g")), GroupId(s("never"))]),
        )
        .await;
    let codes: Vec<i16> = deleted.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![0, GROUP_ID_NOT_FOUND]);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn static_members_are_fenced_by_instance_id() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addrs[0]).await;
    let _ = form_group(&mut client).await;
    let a = join(
        &mut client,
        &join_request("", Some("i-1"), Bytes::from_static(b"m")),
    )
    .await;
    // The existing member rejoins so the rebalance completes.
    assert!(a.error_code == 0 || a.error_code == REBALANCE_IN_PROGRESS);
    let b = join(
        &mut client,
        &join_request("", Some("i-1"), Bytes::from_static(b"m")),
    )
    .await;
    assert_ne!(
        a.member_id, b.member_id,
        "a restarted static member gets a new id"
    );
    let r: HeartbeatResponse = client
        .call(
            ApiKey::Heartbeat,
            4,
            &heartbeat(&a.member_id, b.generation_id.max(1), Some("i-1")),
        )
        .await;
    assert_eq!(r.error_code, FENCED_INSTANCE_ID);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn hostile_group_requests_get_their_errors_and_the_broker_stays_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addrs[0]).await;
    assert_eq!(client.create_topic("data", 1).await, 0);
    let _ = form_group(&mut client).await;

    // Transactional coordinators: a clear, non-retriable error.
    let found: FindCoordinatorResponse = client
        .call(
            ApiKey::FindCoordinator,
            4,
            &FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![s("txn")]),
        )
        .await;
    assert_eq!(
        found.coordinators[0].error_code,
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );
    let found: FindCoordinatorResponse = client
        .call(
            ApiKey::FindCoordinator,
            0,
            &FindCoordinatorRequest::default().with_key(s("g")),
        )
        .await;
    assert_eq!(found.error_code, 0);
    assert_eq!(found.port, i32::from(broker.kafka_addrs[0].port()));

    // Huge protocol metadata, bad timeouts, an empty group id.
    let huge = join(
        &mut client,
        &join_request("", None, Bytes::from(vec![7u8; 2 << 20])),
    )
    .await;
    assert_eq!(huge.error_code, INVALID_REQUEST);
    let short = join(
        &mut client,
        &join_request("", None, Bytes::new()).with_session_timeout_ms(10),
    )
    .await;
    assert_eq!(short.error_code, INVALID_SESSION_TIMEOUT);
    let nameless = join(
        &mut client,
        &join_request("", None, Bytes::new()).with_group_id(GroupId(s(""))),
    )
    .await;
    assert_eq!(nameless.error_code, INVALID_GROUP_ID);

    // A join storm: thousands of first joins each get a member id and nothing else.
    for _ in 0..3000 {
        let r = join(
            &mut client,
            &join_request("", None, Bytes::from_static(b"m")),
        )
        .await;
        assert_eq!(r.error_code, MEMBER_ID_REQUIRED);
    }

    // The internal topic: not writable, not creatable, shown as internal.
    let produced = client
        .produce(
            "__consumer_offsets",
            0,
            batch(&[b"x"], Compression::None),
            1,
        )
        .await;
    assert_eq!(produced.error_code, INVALID_TOPIC_EXCEPTION);
    assert_ne!(client.create_topic("__consumer_offsets", 1).await, 0);
    let md = client.metadata(Some(&["__consumer_offsets"])).await;
    assert!(md.topics[0].is_internal);
    assert_eq!(md.topics[0].partitions.len(), 5);

    // Another client still produces and reads.
    let mut fresh = Client::connect(broker.kafka_addrs[0]).await;
    let produced = fresh
        .produce("data", 0, batch(&[b"still-fine"], Compression::None), -1)
        .await;
    assert_eq!(produced.error_code, 0);
    assert_eq!(fresh.read_all("data", 0, 0).await.len(), 1);
    let text = metrics(broker.http_addr).await;
    assert!(metric(&text, "kafka_network_requests_total{request=\"JoinGroup\"}") >= 3000.0);
    broker.shutdown().await.unwrap();
}
