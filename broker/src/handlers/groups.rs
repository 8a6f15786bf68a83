//! The classic group protocol (FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup) and group administration (ListGroups, DescribeGroups, DeleteGroups),
//! translated to and from the coordinator.

use bytes::Bytes;
use proto_kafka::error::ResponseError;
use proto_kafka::messages::delete_groups_response::DeletableGroupResult;
use proto_kafka::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use proto_kafka::messages::find_coordinator_response::Coordinator;
use proto_kafka::messages::join_group_response::JoinGroupResponseMember;
use proto_kafka::messages::leave_group_response::MemberResponse;
use proto_kafka::messages::list_groups_response::ListedGroup;
use proto_kafka::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, SyncGroupRequest, SyncGroupResponse,
};
use proto_kafka::protocol::StrBytes;

use super::metadata::advertised_host;
use super::{str_bytes, Connection, Context};
use crate::group::state::JoinRequest;
use crate::protocol::error_code::code;

/// The coordinator for one key: (node, host, port) or an error with a message.
async fn locate(
    ctx: &Context,
    connection: &Connection,
    key: &str,
    key_type: i8,
) -> Result<(i32, String, i32), (i16, String)> {
    match key_type {
        0 => {}
        1 => {
            // Non-retriable: clients give up at once instead of retrying for a minute.
            return Err((
                code(ResponseError::TransactionalIdAuthorizationFailed),
                "transactions are not supported by this broker yet".into(),
            ));
        }
        other => {
            return Err((
                code(ResponseError::InvalidRequest),
                format!("unknown coordinator key type {other}"),
            ))
        }
    }
    let node = ctx
        .groups
        .find(key)
        .await
        .map_err(|e| (code(e), e.to_string()))?;
    let image = ctx.cache.image();
    let endpoint = image
        .brokers
        .get(&node)
        .and_then(|b| b.endpoint(&connection.listener));
    match endpoint {
        Some(e) => Ok((node, advertised_host(e), i32::from(e.port))),
        None => Err((
            code(ResponseError::CoordinatorNotAvailable),
            format!("broker {node} has no endpoint"),
        )),
    }
}

/// The coordinator entry for one key (v4's array element; earlier versions copy it).
async fn coordinator(
    ctx: &Context,
    connection: &Connection,
    key: &StrBytes,
    key_type: i8,
) -> Coordinator {
    let c = Coordinator::default().with_key(key.clone());
    match locate(ctx, connection, key.as_str(), key_type).await {
        Ok((node, host, port)) => c
            .with_node_id(BrokerId(node))
            .with_host(str_bytes(host))
            .with_port(port)
            .with_error_message(None),
        Err((error, message)) => {
            ctx.metrics.error("FindCoordinator", error);
            c.with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(error)
                .with_error_message(Some(str_bytes(message)))
        }
    }
}

pub async fn find_coordinator(
    ctx: &Context,
    connection: &Connection,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let response = FindCoordinatorResponse::default();
    if version >= 4 {
        let mut coordinators = Vec::with_capacity(request.coordinator_keys.len());
        for key in &request.coordinator_keys {
            coordinators.push(coordinator(ctx, connection, key, request.key_type).await);
        }
        return response.with_coordinators(coordinators);
    }
    let c = coordinator(ctx, connection, &request.key, request.key_type).await;
    response
        .with_error_code(c.error_code)
        .with_error_message(c.error_message)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}

fn opt(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

pub async fn join_group(
    ctx: &Context,
    connection: &Connection,
    client_id: Option<&str>,
    request: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let join = JoinRequest {
        member_id: request.member_id.to_string(),
        instance_id: opt(&request.group_instance_id).filter(|_| version >= 5),
        client_id: client_id.unwrap_or_default().to_string(),
        client_host: connection.client_host(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: it is the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let outcome = ctx.groups.join(request.group_id.as_str(), join).await;
    if outcome.error != 0 {
        ctx.metrics.error("JoinGroup", outcome.error);
    }
    let nullable = |s: Option<String>| -> Option<StrBytes> {
        match (s, version >= 7) {
            (Some(s), _) => Some(str_bytes(s)),
            (None, true) => None,
            (None, false) => Some(str_bytes("")),
        }
    };
    JoinGroupResponse::default()
        .with_error_code(outcome.error)
        .with_generation_id(outcome.generation)
        .with_protocol_type(nullable(outcome.protocol_type))
        .with_protocol_name(nullable(outcome.protocol_name))
        .with_leader(str_bytes(outcome.leader))
        .with_member_id(str_bytes(outcome.member_id))
        .with_members(
            outcome
                .members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(id))
                        .with_group_instance_id(instance.map(str_bytes))
                        .with_metadata(metadata)
                })
                .collect(),
        )
}

pub async fn sync_group(
    ctx: &Context,
    request: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let assignments: Vec<(String, Bytes)> = request
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let protocol_type = opt(&request.protocol_type).filter(|_| version >= 5);
    let protocol_name = opt(&request.protocol_name).filter(|_| version >= 5);
    let outcome = ctx
        .groups
        .sync(
            request.group_id.as_str(),
            request.member_id.as_str(),
            opt(&request.group_instance_id).as_deref(),
            request.generation_id,
            protocol_type.as_deref(),
            protocol_name.as_deref(),
            assignments,
        )
        .await;
    if outcome.error != 0 {
        ctx.metrics.error("SyncGroup", outcome.error);
    }
    SyncGroupResponse::default()
        .with_error_code(outcome.error)
        .with_protocol_type(outcome.protocol_type.map(str_bytes))
        .with_protocol_name(outcome.protocol_name.map(str_bytes))
        .with_assignment(outcome.assignment)
}

pub fn heartbeat(ctx: &Context, request: HeartbeatRequest) -> HeartbeatResponse {
    let error = ctx.groups.heartbeat(
        request.group_id.as_str(),
        request.member_id.as_str(),
        opt(&request.group_instance_id).as_deref(),
        request.generation_id,
    );
    if error != 0 {
        ctx.metrics.error("Heartbeat", error);
    }
    HeartbeatResponse::default().with_error_code(error)
}

pub fn leave_group(ctx: &Context, request: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| (m.member_id.to_string(), opt(&m.group_instance_id)))
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    match ctx.groups.leave(request.group_id.as_str(), &members) {
        Err(error) => {
            ctx.metrics.error("LeaveGroup", error);
            LeaveGroupResponse::default().with_error_code(error)
        }
        Ok(results) if version >= 3 => LeaveGroupResponse::default().with_members(
            members
                .into_iter()
                .zip(results)
                .map(|((id, instance), error)| {
                    if error != 0 {
                        ctx.metrics.error("LeaveGroup", error);
                    }
                    MemberResponse::default()
                        .with_member_id(str_bytes(id))
                        .with_group_instance_id(instance.map(str_bytes))
                        .with_error_code(error)
                })
                .collect(),
        ),
        Ok(results) => {
            let error = results.first().copied().unwrap_or(0);
            if error != 0 {
                ctx.metrics.error("LeaveGroup", error);
            }
            LeaveGroupResponse::default().with_error_code(error)
        }
    }
}

pub fn list_groups(ctx: &Context, request: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_string())
        .collect();
    // Only classic groups exist here: a filter asking for other types matches none.
    let classic_wanted = version < 5
        || request.types_filter.is_empty()
        || request
            .types_filter
            .iter()
            .any(|t| t.as_str().eq_ignore_ascii_case("classic"));
    match ctx.groups.list(&states) {
        Err(error) => {
            ctx.metrics.error("ListGroups", error);
            ListGroupsResponse::default().with_error_code(error)
        }
        Ok(groups) => ListGroupsResponse::default().with_groups(
            groups
                .into_iter()
                .filter(|_| classic_wanted)
                .map(|(id, protocol_type, state)| {
                    ListedGroup::default()
                        .with_group_id(GroupId(str_bytes(id)))
                        .with_protocol_type(str_bytes(protocol_type))
                        .with_group_state(str_bytes(state))
                        .with_group_type(str_bytes("classic"))
                })
                .collect(),
        ),
    }
}

pub fn describe_groups(ctx: &Context, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .iter()
        .map(|id| {
            let described = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_error_message(None)
                .with_authorized_operations(i32::MIN);
            match ctx.groups.describe(id.as_str()) {
                Err(error) => {
                    ctx.metrics.error("DescribeGroups", error);
                    described.with_error_code(error)
                }
                Ok(summary) => described
                    .with_group_state(str_bytes(summary.state))
                    .with_protocol_type(str_bytes(summary.protocol_type))
                    .with_protocol_data(str_bytes(summary.protocol))
                    .with_members(
                        summary
                            .members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(m.member_id))
                                    .with_group_instance_id(m.instance_id.map(str_bytes))
                                    .with_client_id(str_bytes(m.client_id))
                                    .with_client_host(str_bytes(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn delete_groups(ctx: &Context, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for id in &request.groups_names {
        let error = ctx.groups.delete_group(id.as_str()).await;
        if error != 0 {
            ctx.metrics.error("DeleteGroups", error);
        }
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id.clone())
                .with_error_code(error),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
