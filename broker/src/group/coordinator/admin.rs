//! Read-only views of the groups for admin requests and metrics: ListGroups,
//! DescribeGroups, consumer lag and group counts by state.

use std::collections::BTreeMap;

use bytes::Bytes;
use proto_kafka::error::ResponseError;

use super::GroupCoordinator;
use crate::group::state::GroupState;
use crate::protocol::error_code::code;

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, Default)]
pub struct GroupSummary {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

#[derive(Debug, Clone, Default)]
pub struct MemberSummary {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

impl GroupCoordinator {
    pub fn list(&self, states: &[String]) -> Result<Vec<(String, String, &'static str)>, i16> {
        let mut out = Vec::new();
        for shard in self.all_shards() {
            let state = shard.lock();
            if !state.loaded {
                return Err(code(ResponseError::CoordinatorLoadInProgress));
            }
            for g in state.groups.values() {
                let name = g.state.name();
                if states.is_empty() || states.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                    out.push((
                        g.id.clone(),
                        g.protocol_type.clone().unwrap_or_default(),
                        name,
                    ));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// DescribeGroups for one group: Dead when it does not exist, as Kafka answers.
    pub fn describe(&self, group: &str) -> Result<GroupSummary, i16> {
        let shard = self.shard(group).map_err(code)?;
        let state = shard.lock();
        let Some(g) = state.groups.get(group) else {
            return Ok(GroupSummary {
                state: GroupState::Dead.name(),
                ..GroupSummary::default()
            });
        };
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol.clone().unwrap_or_default();
        Ok(GroupSummary {
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .values()
                .map(|m| MemberSummary {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.protocols
                            .iter()
                            .find(|(n, _)| *n == protocol)
                            .map(|(_, b)| b.clone())
                            .unwrap_or_default()
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        })
    }

    /// (group, topic, partition, lag) for every committed offset of a partition this
    /// broker leads: the high watermark minus the committed offset.
    pub fn lag(&self) -> Vec<(String, String, i32, i64)> {
        let mut out = Vec::new();
        for shard in self.all_shards() {
            let state = shard.lock();
            for g in state.groups.values() {
                for ((topic, partition), c) in &g.offsets {
                    if let Some(p) = self.replicas.get(topic, *partition) {
                        let hw = p.offsets().high_watermark;
                        out.push((
                            g.id.clone(),
                            topic.clone(),
                            *partition,
                            (hw - c.value.offset).max(0),
                        ));
                    }
                }
            }
        }
        out
    }

    /// How many groups this broker coordinates, by state name.
    pub fn group_counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for shard in self.all_shards() {
            for g in shard.lock().groups.values() {
                *counts.entry(g.state.name()).or_default() += 1;
            }
        }
        counts
    }
}
