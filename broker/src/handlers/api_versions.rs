//! ApiVersions: the table of what Runnel implements. (A version above the table is
//! answered in `protocol::frame` before decoding.)

use proto_kafka::messages::{ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use tracing::debug;

use crate::protocol::api_versions::advertised;

pub fn handle(request: &ApiVersionsRequest, header: &RequestHeader) -> ApiVersionsResponse {
    if header.request_api_version >= 3 {
        debug!(
            client = request.client_software_name.as_str(),
            version = request.client_software_version.as_str(),
            "client software"
        );
    }
    ApiVersionsResponse::default().with_api_keys(advertised())
}
