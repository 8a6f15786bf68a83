//! Request dispatch: run the handler of a decoded request, encode the response.
//!
//! Dispatch runs on the connection's reader in request order and returns a future for
//! the response; the connection answers those futures in the same order. Work that must
//! follow request order (appending a Produce batch) happens in dispatch itself; waiting
//! (for fsync, replication, a Fetch long poll) happens in the future, so a pipelined
//! request can be appended while an earlier one waits for its acknowledgement.

pub mod api_versions;
pub mod cluster;
pub mod configs;
pub mod create_topics;
pub mod errors;
pub mod fetch;
pub mod groups;
pub mod init_producer_id;
pub mod leader_hint;
pub mod list_offsets;
pub mod log_dirs;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod offsets;
pub mod produce;
pub mod records;
pub mod topics;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use proto_kafka::messages::{ApiKey, RequestHeader};
use proto_kafka::protocol::{Encodable, SegmentedBuf, StrBytes};
use tokio::sync::watch;

use crate::config::Config;
use crate::controller::service::ControllerService;
use crate::error::Result;
use crate::group::GroupCoordinator;
use crate::metadata::cache::MetadataCache;
use crate::metadata::producer_ids::ProducerIds;
use crate::metadata::store::MetadataStore;
use crate::metrics::{Metrics, RequestLabels};
use crate::partition::manager::ReplicaManager;
use crate::protocol::api_versions::api_name;
use crate::protocol::frame::encode_response;
use crate::protocol::request::Request;

/// Everything handlers use.
#[derive(Debug)]
pub struct Context {
    pub config: Arc<Config>,
    pub cache: Arc<MetadataCache>,
    pub replicas: Arc<ReplicaManager>,
    /// Admin operations, done by the controller wherever it runs.
    pub admin: Arc<dyn ControllerService>,
    pub metrics: Arc<Metrics>,
    pub store: Arc<dyn MetadataStore>,
    pub producer_ids: Arc<ProducerIds>,
    pub groups: Arc<GroupCoordinator>,
    /// Turns true when the broker is shutting down (long polls return early).
    pub shutdown: watch::Receiver<bool>,
}

/// What a handler knows of the connection a request came on.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The listener's name, to pick the advertised endpoints clients should use.
    pub listener: String,
    /// The client's address, shown as a group member's host.
    pub peer: Option<std::net::SocketAddr>,
}

impl Connection {
    /// The host as Kafka shows it for group members: `/127.0.0.1`.
    pub fn client_host(&self) -> String {
        self.peer
            .map(|p| format!("/{}", p.ip()))
            .unwrap_or_default()
    }
}

/// The response to one request, or `None` for none (Produce with acks=0).
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<Option<SegmentedBuf>>> + Send>>;

/// Encodes a response and records how long the request took.
fn finish<R: Encodable>(
    ctx: &Context,
    api: ApiKey,
    header: &RequestHeader,
    started: Instant,
    response: &R,
) -> Result<Option<SegmentedBuf>> {
    ctx.metrics.observe(api_name(api as i16), started.elapsed());
    encode_response(
        api,
        header.request_api_version,
        header.correlation_id,
        response,
    )
    .map(Some)
}

fn ready(result: Result<Option<SegmentedBuf>>) -> ResponseFuture {
    Box::pin(std::future::ready(result))
}

/// Starts one decoded request.
pub fn dispatch(
    ctx: &Arc<Context>,
    connection: &Connection,
    header: RequestHeader,
    request: Request,
) -> ResponseFuture {
    let started = Instant::now();
    let name = api_name(header.request_api_key);
    ctx.metrics
        .requests
        .get_or_create(&RequestLabels { request: name })
        .inc();
    let ctx = ctx.clone();
    match request {
        Request::ApiVersions(request) => {
            let response = api_versions::handle(&request, &header);
            ready(finish(
                &ctx,
                ApiKey::ApiVersions,
                &header,
                started,
                &response,
            ))
        }
        Request::Metadata(request) => {
            let connection = connection.clone();
            Box::pin(async move {
                let response =
                    metadata::handle(&ctx, &connection, request, header.request_api_version).await;
                finish(&ctx, ApiKey::Metadata, &header, started, &response)
            })
        }
        Request::Produce(request) => {
            let pending = produce::append(&ctx, request, header.request_api_version);
            let listener = connection.listener.clone();
            Box::pin(async move {
                match produce::complete(&ctx, pending, &listener).await {
                    Some(response) => finish(&ctx, ApiKey::Produce, &header, started, &response),
                    None => Ok(None),
                }
            })
        }
        Request::Fetch(request) => Box::pin(async move {
            let response = fetch::handle(&ctx, request, header.request_api_version).await;
            finish(&ctx, ApiKey::Fetch, &header, started, &response)
        }),
        Request::ListOffsets(request) => {
            let response = list_offsets::handle(&ctx, request, header.request_api_version);
            ready(finish(
                &ctx,
                ApiKey::ListOffsets,
                &header,
                started,
                &response,
            ))
        }
        Request::OffsetForLeaderEpoch(request) => {
            let response = offset_for_leader_epoch::handle(&ctx, request);
            ready(finish(
                &ctx,
                ApiKey::OffsetForLeaderEpoch,
                &header,
                started,
                &response,
            ))
        }
        Request::InitProducerId(request) => Box::pin(async move {
            let response = init_producer_id::handle(&ctx, request).await;
            finish(&ctx, ApiKey::InitProducerId, &header, started, &response)
        }),
        Request::DeleteTopics(request) => Box::pin(async move {
            let response = topics::delete_topics(&ctx, request, header.request_api_version).await;
            finish(&ctx, ApiKey::DeleteTopics, &header, started, &response)
        }),
        Request::CreatePartitions(request) => Box::pin(async move {
            let response = topics::create_partitions(&ctx, request).await;
            finish(&ctx, ApiKey::CreatePartitions, &header, started, &response)
        }),
        Request::DescribeConfigs(request) => {
            let response = configs::describe(&ctx, request, header.request_api_version);
            ready(finish(
                &ctx,
                ApiKey::DescribeConfigs,
                &header,
                started,
                &response,
            ))
        }
        Request::AlterConfigs(request) => Box::pin(async move {
            let response = configs::alter_configs(&ctx, request).await;
            finish(&ctx, ApiKey::AlterConfigs, &header, started, &response)
        }),
        Request::IncrementalAlterConfigs(request) => Box::pin(async move {
            let response = configs::incremental_alter_configs(&ctx, request).await;
            finish(
                &ctx,
                ApiKey::IncrementalAlterConfigs,
                &header,
                started,
                &response,
            )
        }),
        Request::DescribeCluster(request) => {
            let response =
                cluster::describe_cluster(&ctx, connection, request, header.request_api_version);
            ready(finish(
                &ctx,
                ApiKey::DescribeCluster,
                &header,
                started,
                &response,
            ))
        }
        Request::DeleteRecords(request) => Box::pin(async move {
            let response = records::delete_records(&ctx, request).await;
            finish(&ctx, ApiKey::DeleteRecords, &header, started, &response)
        }),
        Request::DescribeLogDirs(request) => {
            let response = log_dirs::describe_log_dirs(&ctx, request, header.request_api_version);
            ready(finish(
                &ctx,
                ApiKey::DescribeLogDirs,
                &header,
                started,
                &response,
            ))
        }
        Request::FindCoordinator(request) => {
            let connection = connection.clone();
            Box::pin(async move {
                let response = groups::find_coordinator(
                    &ctx,
                    &connection,
                    request,
                    header.request_api_version,
                )
                .await;
                finish(&ctx, ApiKey::FindCoordinator, &header, started, &response)
            })
        }
        Request::JoinGroup(request) => {
            let connection = connection.clone();
            Box::pin(async move {
                let client_id = header.client_id.as_ref().map(|c| c.to_string());
                let response = groups::join_group(
                    &ctx,
                    &connection,
                    client_id.as_deref(),
                    request,
                    header.request_api_version,
                )
                .await;
                finish(&ctx, ApiKey::JoinGroup, &header, started, &response)
            })
        }
        Request::SyncGroup(request) => Box::pin(async move {
            let response = groups::sync_group(&ctx, request, header.request_api_version).await;
            finish(&ctx, ApiKey::SyncGroup, &header, started, &response)
        }),
        Request::Heartbeat(request) => {
            let response = groups::heartbeat(&ctx, request);
            ready(finish(&ctx, ApiKey::Heartbeat, &header, started, &response))
        }
        Request::LeaveGroup(request) => {
            let response = groups::leave_group(&ctx, request, header.request_api_version);
            ready(finish(
                &ctx,
                ApiKey::LeaveGroup,
                &header,
                started,
                &response,
            ))
        }
        Request::OffsetCommit(request) => Box::pin(async move {
            let response = offsets::offset_commit(&ctx, request, header.request_api_version).await;
            finish(&ctx, ApiKey::OffsetCommit, &header, started, &response)
        }),
        Request::OffsetFetch(request) => {
            let response = offsets::offset_fetch(&ctx, request, header.request_api_version);
            ready(finish(
                &ctx,
                ApiKey::OffsetFetch,
                &header,
                started,
                &response,
            ))
        }
        Request::OffsetDelete(request) => Box::pin(async move {
            let response = offsets::offset_delete(&ctx, request).await;
            finish(&ctx, ApiKey::OffsetDelete, &header, started, &response)
        }),
        Request::ListGroups(request) => {
            let response = groups::list_groups(&ctx, request, header.request_api_version);
            ready(finish(
                &ctx,
                ApiKey::ListGroups,
                &header,
                started,
                &response,
            ))
        }
        Request::DescribeGroups(request) => {
            let response = groups::describe_groups(&ctx, request);
            ready(finish(
                &ctx,
                ApiKey::DescribeGroups,
                &header,
                started,
                &response,
            ))
        }
        Request::DeleteGroups(request) => Box::pin(async move {
            let response = groups::delete_groups(&ctx, request).await;
            finish(&ctx, ApiKey::DeleteGroups, &header, started, &response)
        }),
        Request::CreateTopics(request) => Box::pin(async move {
            let response = create_topics::handle(&ctx, request, header.request_api_version).await;
            finish(&ctx, ApiKey::CreateTopics, &header, started, &response)
        }),
    }
}

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub use crate::clock::now_ms;
