//! The API versions Runnel advertises, written by hand (not the protocol crate's table).
//!
//! Minimums are Kafka's own, because librdkafka enables features only when the broker's
//! range overlaps old versions (see docs/ARCHITECTURE.md). Maximums stop at what is
//! implemented. Produce is advertised from v0 although v0–v2 are refused when sent:
//! librdkafka (KAFKA-18659) disables compression unless Produce v0 is advertised.

use proto_kafka::messages::api_versions_response::ApiVersion;
use proto_kafka::messages::ApiKey;

/// One API: advertised range and the lowest version actually accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSupport {
    pub key: ApiKey,
    pub min_advertised: i16,
    pub min_accepted: i16,
    pub max: i16,
}

#[rustfmt::skip]
pub const SUPPORTED: &[ApiSupport] = &[
    ApiSupport { key: ApiKey::Produce, min_advertised: 0, min_accepted: 3, max: 11 },
    ApiSupport { key: ApiKey::Fetch, min_advertised: 4, min_accepted: 4, max: 12 },
    ApiSupport { key: ApiKey::ListOffsets, min_advertised: 1, min_accepted: 1, max: 7 },
    ApiSupport { key: ApiKey::OffsetForLeaderEpoch, min_advertised: 2, min_accepted: 2, max: 4 },
    ApiSupport { key: ApiKey::Metadata, min_advertised: 0, min_accepted: 0, max: 12 },
    ApiSupport { key: ApiKey::ApiVersions, min_advertised: 0, min_accepted: 0, max: 4 },
    ApiSupport { key: ApiKey::CreateTopics, min_advertised: 2, min_accepted: 2, max: 7 },
    // v6 is KIP-939 two-phase commit.
    ApiSupport { key: ApiKey::InitProducerId, min_advertised: 0, min_accepted: 0, max: 5 },
    ApiSupport { key: ApiKey::DeleteTopics, min_advertised: 1, min_accepted: 1, max: 6 },
    ApiSupport { key: ApiKey::DeleteRecords, min_advertised: 0, min_accepted: 0, max: 2 },
    ApiSupport { key: ApiKey::DescribeConfigs, min_advertised: 1, min_accepted: 1, max: 4 },
    ApiSupport { key: ApiKey::AlterConfigs, min_advertised: 0, min_accepted: 0, max: 2 },
    ApiSupport { key: ApiKey::DescribeLogDirs, min_advertised: 1, min_accepted: 1, max: 4 },
    ApiSupport { key: ApiKey::CreatePartitions, min_advertised: 0, min_accepted: 0, max: 3 },
    ApiSupport { key: ApiKey::IncrementalAlterConfigs, min_advertised: 0, min_accepted: 0, max: 1 },
    ApiSupport { key: ApiKey::DescribeCluster, min_advertised: 0, min_accepted: 0, max: 2 },
    // Groups: maxima stop below KIP-848 member epochs (OffsetCommit 9, OffsetFetch 9)
    // and FindCoordinator 5+ (share groups); DescribeGroups 6 adds GROUP_ID_NOT_FOUND.
    ApiSupport { key: ApiKey::OffsetCommit, min_advertised: 2, min_accepted: 2, max: 8 },
    ApiSupport { key: ApiKey::OffsetFetch, min_advertised: 1, min_accepted: 1, max: 8 },
    ApiSupport { key: ApiKey::FindCoordinator, min_advertised: 0, min_accepted: 0, max: 4 },
    ApiSupport { key: ApiKey::JoinGroup, min_advertised: 0, min_accepted: 0, max: 9 },
    ApiSupport { key: ApiKey::Heartbeat, min_advertised: 0, min_accepted: 0, max: 4 },
    ApiSupport { key: ApiKey::LeaveGroup, min_advertised: 0, min_accepted: 0, max: 5 },
    ApiSupport { key: ApiKey::SyncGroup, min_advertised: 0, min_accepted: 0, max: 5 },
    ApiSupport { key: ApiKey::DescribeGroups, min_advertised: 0, min_accepted: 0, max: 5 },
    ApiSupport { key: ApiKey::ListGroups, min_advertised: 0, min_accepted: 0, max: 5 },
    ApiSupport { key: ApiKey::DeleteGroups, min_advertised: 0, min_accepted: 0, max: 2 },
    ApiSupport { key: ApiKey::OffsetDelete, min_advertised: 0, min_accepted: 0, max: 0 },
];

/// The support entry for an API key, if Runnel implements it.
pub fn support(api_key: i16) -> Option<&'static ApiSupport> {
    SUPPORTED.iter().find(|s| s.key as i16 == api_key)
}

/// The `api_keys` array of an ApiVersions response.
pub fn advertised() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|s| {
            ApiVersion::default()
                .with_api_key(s.key as i16)
                .with_min_version(s.min_advertised)
                .with_max_version(s.max)
        })
        .collect()
}

/// The name of an API key for logs and metric labels.
pub fn api_name(api_key: i16) -> &'static str {
    match ApiKey::try_from(api_key) {
        Ok(ApiKey::Produce) => "Produce",
        Ok(ApiKey::Fetch) => "Fetch",
        Ok(ApiKey::ListOffsets) => "ListOffsets",
        Ok(ApiKey::OffsetForLeaderEpoch) => "OffsetForLeaderEpoch",
        Ok(ApiKey::Metadata) => "Metadata",
        Ok(ApiKey::ApiVersions) => "ApiVersions",
        Ok(ApiKey::CreateTopics) => "CreateTopics",
        Ok(ApiKey::InitProducerId) => "InitProducerId",
        Ok(ApiKey::DeleteTopics) => "DeleteTopics",
        Ok(ApiKey::DeleteRecords) => "DeleteRecords",
        Ok(ApiKey::DescribeConfigs) => "DescribeConfigs",
        Ok(ApiKey::AlterConfigs) => "AlterConfigs",
        Ok(ApiKey::DescribeLogDirs) => "DescribeLogDirs",
        Ok(ApiKey::CreatePartitions) => "CreatePartitions",
        Ok(ApiKey::IncrementalAlterConfigs) => "IncrementalAlterConfigs",
        Ok(ApiKey::DescribeCluster) => "DescribeCluster",
        Ok(ApiKey::OffsetCommit) => "OffsetCommit",
        Ok(ApiKey::OffsetFetch) => "OffsetFetch",
        Ok(ApiKey::FindCoordinator) => "FindCoordinator",
        Ok(ApiKey::JoinGroup) => "JoinGroup",
        Ok(ApiKey::Heartbeat) => "Heartbeat",
        Ok(ApiKey::LeaveGroup) => "LeaveGroup",
        Ok(ApiKey::SyncGroup) => "SyncGroup",
        Ok(ApiKey::DescribeGroups) => "DescribeGroups",
        Ok(ApiKey::ListGroups) => "ListGroups",
        Ok(ApiKey::DeleteGroups) => "DeleteGroups",
        Ok(ApiKey::OffsetDelete) => "OffsetDelete",
        Ok(_) => "Unsupported",
        Err(()) => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_maxima_never_exceed_what_the_protocol_crate_can_encode() {
        for s in SUPPORTED {
            let range = s.key.valid_versions();
            assert!(s.max <= range.max, "{:?}", s.key);
            assert!(s.min_accepted >= range.min, "{:?}", s.key);
            assert!(s.min_advertised <= s.min_accepted);
        }
    }

    #[test]
    fn librdkafka_feature_probes_overlap() {
        // MsgVer2 needs Produce 3 and Fetch 4; compression needs Produce 0 advertised.
        let produce = support(ApiKey::Produce as i16).unwrap();
        assert_eq!(produce.min_advertised, 0);
        assert!(produce.max >= 7, "ZSTD needs Produce 7");
        let fetch = support(ApiKey::Fetch as i16).unwrap();
        assert!(
            fetch.min_advertised <= 4 && fetch.max >= 10,
            "ZSTD needs Fetch 10"
        );
        assert_eq!(
            support(ApiKey::ListOffsets as i16).unwrap().min_advertised,
            1
        );
    }
}
