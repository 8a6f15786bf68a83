//! DescribeCluster: the brokers, the controller and the cluster id.

use proto_kafka::error::ResponseError;
use proto_kafka::messages::describe_cluster_response::DescribeClusterBroker;
use proto_kafka::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::metadata::{advertised_host, CLUSTER_OPERATIONS, NOT_REQUESTED};
use super::{str_bytes, Connection, Context};
use crate::protocol::error_code::code;

/// `endpoint_type` 1: brokers (2 asks for controller endpoints, which Runnel's
/// controllers share with brokers).
const BROKERS: i8 = 1;

pub fn describe_cluster(
    ctx: &Context,
    connection: &Connection,
    request: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let image = ctx.cache.image();
    let mut response = DescribeClusterResponse::default()
        .with_error_message(None)
        .with_cluster_id(str_bytes(image.cluster_id.clone().unwrap_or_default()))
        .with_controller_id(BrokerId(image.controller.map_or(-1, |c| c.0)))
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS
        } else {
            NOT_REQUESTED
        });
    if version >= 1 {
        response = response.with_endpoint_type(request.endpoint_type);
        if request.endpoint_type != BROKERS && request.endpoint_type != 2 {
            let error = code(ResponseError::UnsupportedEndpointType);
            ctx.metrics.error("DescribeCluster", error);
            return response.with_error_code(error);
        }
    }
    let brokers = image
        .brokers
        .values()
        .filter_map(|b| {
            let endpoint = b.endpoint(&connection.listener)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.registration.id))
                    .with_host(str_bytes(advertised_host(endpoint)))
                    .with_port(i32::from(endpoint.port))
                    .with_rack(b.registration.rack.clone().map(str_bytes)),
            )
        })
        .collect();
    response.with_brokers(brokers)
}
