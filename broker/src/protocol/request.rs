//! Decoding a request frame into a typed request, with no broker state: the same
//! function the connection uses, the fuzz target drives and the property tests check.

use bytes::{Buf, Bytes};
use proto_kafka::messages::{
    AlterConfigsRequest, ApiKey, ApiVersionsRequest, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, DescribeLogDirsRequest, FetchRequest,
    FindCoordinatorRequest, HeartbeatRequest, IncrementalAlterConfigsRequest,
    InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest,
    ListOffsetsRequest, MetadataRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, OffsetForLeaderEpochRequest, ProduceRequest, RequestHeader,
    SyncGroupRequest,
};
use proto_kafka::protocol::Decodable;
use tracing::debug;

use super::frame::{classify, Inbound, Rejection};

/// A request Runnel implements, decoded.
#[derive(Debug, Clone)]
pub enum Request {
    ApiVersions(ApiVersionsRequest),
    Metadata(MetadataRequest),
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    OffsetForLeaderEpoch(OffsetForLeaderEpochRequest),
    CreateTopics(CreateTopicsRequest),
    InitProducerId(InitProducerIdRequest),
    DeleteTopics(DeleteTopicsRequest),
    CreatePartitions(CreatePartitionsRequest),
    DescribeConfigs(DescribeConfigsRequest),
    AlterConfigs(AlterConfigsRequest),
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
    DescribeCluster(DescribeClusterRequest),
    DeleteRecords(DeleteRecordsRequest),
    DescribeLogDirs(DescribeLogDirsRequest),
    FindCoordinator(FindCoordinatorRequest),
    JoinGroup(JoinGroupRequest),
    SyncGroup(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    OffsetDelete(OffsetDeleteRequest),
    ListGroups(ListGroupsRequest),
    DescribeGroups(DescribeGroupsRequest),
    DeleteGroups(DeleteGroupsRequest),
}

/// A decoded frame: a request with its header, or the ApiVersions fallback.
// Built once per frame and consumed at once: moving it is cheaper than boxing it.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Decoded {
    Request {
        header: RequestHeader,
        request: Request,
    },
    ApiVersionsFallback {
        correlation_id: i32,
    },
}

/// Decodes a body, refusing bytes left over after it.
fn body<R: Decodable>(mut body: Bytes, header: &RequestHeader) -> Result<R, Rejection> {
    let bad = |reason: String| Rejection::BadBody {
        api: header.request_api_key,
        version: header.request_api_version,
        reason,
    };
    let request =
        R::decode(&mut body, header.request_api_version).map_err(|e| bad(e.to_string()))?;
    if body.has_remaining() {
        // Kafka ignores bytes after a request's fields, and clients rely on it:
        // librdkafka 2.16 sends three stray bytes after an all-topics Metadata v12 (the
        // rest of a four-byte array-count placeholder). The body itself was bounded
        // and decoded, so nothing is allocated for them.
        debug!(
            api = header.request_api_key,
            version = header.request_api_version,
            trailing = body.remaining(),
            "ignoring bytes after the request body, as Kafka does"
        );
    }
    Ok(request)
}

/// Decodes one frame (without its length prefix).
pub fn decode(frame: Bytes) -> Result<Decoded, Rejection> {
    let (header, raw) = match classify(frame)? {
        Inbound::ApiVersionsFallback { correlation_id } => {
            return Ok(Decoded::ApiVersionsFallback { correlation_id })
        }
        Inbound::Request { header, body } => (header, body),
    };
    let api = ApiKey::try_from(header.request_api_key)
        .map_err(|()| Rejection::UnknownApi(header.request_api_key))?;
    let request = match api {
        ApiKey::ApiVersions => Request::ApiVersions(body(raw, &header)?),
        ApiKey::Metadata => Request::Metadata(body(raw, &header)?),
        ApiKey::Produce => Request::Produce(body(raw, &header)?),
        ApiKey::Fetch => Request::Fetch(body(raw, &header)?),
        ApiKey::ListOffsets => Request::ListOffsets(body(raw, &header)?),
        ApiKey::OffsetForLeaderEpoch => Request::OffsetForLeaderEpoch(body(raw, &header)?),
        ApiKey::CreateTopics => Request::CreateTopics(body(raw, &header)?),
        ApiKey::InitProducerId => Request::InitProducerId(body(raw, &header)?),
        ApiKey::DeleteTopics => Request::DeleteTopics(body(raw, &header)?),
        ApiKey::CreatePartitions => Request::CreatePartitions(body(raw, &header)?),
        ApiKey::DescribeConfigs => Request::DescribeConfigs(body(raw, &header)?),
        ApiKey::AlterConfigs => Request::AlterConfigs(body(raw, &header)?),
        ApiKey::IncrementalAlterConfigs => Request::IncrementalAlterConfigs(body(raw, &header)?),
        ApiKey::DescribeCluster => Request::DescribeCluster(body(raw, &header)?),
        ApiKey::DeleteRecords => Request::DeleteRecords(body(raw, &header)?),
        ApiKey::DescribeLogDirs => Request::DescribeLogDirs(body(raw, &header)?),
        ApiKey::FindCoordinator => Request::FindCoordinator(body(raw, &header)?),
        ApiKey::JoinGroup => Request::JoinGroup(body(raw, &header)?),
        ApiKey::SyncGroup => Request::SyncGroup(body(raw, &header)?),
        ApiKey::Heartbeat => Request::Heartbeat(body(raw, &header)?),
        ApiKey::LeaveGroup => Request::LeaveGroup(body(raw, &header)?),
        ApiKey::OffsetCommit => Request::OffsetCommit(body(raw, &header)?),
        ApiKey::OffsetFetch => Request::OffsetFetch(body(raw, &header)?),
        ApiKey::OffsetDelete => Request::OffsetDelete(body(raw, &header)?),
        ApiKey::ListGroups => Request::ListGroups(body(raw, &header)?),
        ApiKey::DescribeGroups => Request::DescribeGroups(body(raw, &header)?),
        ApiKey::DeleteGroups => Request::DeleteGroups(body(raw, &header)?),
        _ => return Err(Rejection::UnknownApi(header.request_api_key)),
    };
    Ok(Decoded::Request { header, request })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// librdkafka 2.16's "list every topic" request: topics null, then the unused rest
    /// of its array-count placeholder before the remaining fields. Kafka answers it.
    #[test]
    fn librdkafka_2_16s_all_topics_metadata_request_is_answered() {
        let frame = Bytes::from_static(&[
            0x00, 0x03, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x03, 0x00, 0x07, b'r', b'd', b'k', b'a',
            b'f', b'k', b'a', 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
        ]);
        let Ok(Decoded::Request {
            request: Request::Metadata(request),
            ..
        }) = decode(frame)
        else {
            panic!("not decoded as Metadata");
        };
        assert_eq!(request.topics, None, "null: every topic");
    }
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_frames_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(Bytes::from(frame));
        }

        #[test]
        fn frames_with_a_known_api_and_random_bodies_never_panic(
            api in prop::sample::select(vec![0i16, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22, 32, 33, 35, 37, 42, 44, 47, 60]),
            version in 0i16..14,
            flexible in any::<bool>(),
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut frame = Vec::new();
            frame.extend_from_slice(&api.to_be_bytes());
            frame.extend_from_slice(&version.to_be_bytes());
            frame.extend_from_slice(&1i32.to_be_bytes());
            frame.extend_from_slice(&(-1i16).to_be_bytes());
            if flexible {
                frame.push(0);
            }
            frame.extend_from_slice(&body);
            let _ = decode(Bytes::from(frame));
        }
    }
}
