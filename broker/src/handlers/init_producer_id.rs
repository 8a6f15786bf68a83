//! InitProducerId for idempotent producers: a producer id never used before, epoch 0.
//! As in Kafka, a request without a transactional id always gets a new id, even when it
//! names its current one (KIP-360). Transactional ids are refused with a non-retriable
//! error until transactions exist.

use proto_kafka::error::ResponseError;
use proto_kafka::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use tracing::warn;

use super::Context;
use crate::protocol::error_code::code;

pub async fn handle(ctx: &Context, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if request
        .transactional_id
        .as_ref()
        .is_some_and(|t| t.is_empty())
    {
        let error = code(ResponseError::InvalidRequest);
        ctx.metrics.error("InitProducerId", error);
        return response.with_error_code(error);
    }
    if request.transactional_id.is_some() {
        // Not COORDINATOR_NOT_AVAILABLE, which clients retry for a minute.
        let error = code(ResponseError::TransactionalIdAuthorizationFailed);
        ctx.metrics.error("InitProducerId", error);
        return response.with_error_code(error);
    }
    match ctx.producer_ids.next(ctx.store.as_ref()).await {
        Ok(id) => {
            ctx.metrics.producer_ids.inc();
            response
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0)
        }
        Err(err) => {
            warn!(error = %err, "failed to allocate a producer id");
            // Retriable: the store may be back in a moment.
            let error = code(ResponseError::CoordinatorNotAvailable);
            ctx.metrics.error("InitProducerId", error);
            response.with_error_code(error)
        }
    }
}
