//! Kafka protocol glue: the advertised API table, request framing and response encoding
//! (through the proto-kafka crate), and the mapping of outcomes to error codes.

pub mod api_versions;
pub mod error_code;
pub mod frame;
pub mod request;
