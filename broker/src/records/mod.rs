//! Kafka's record format: the v2 batch header, walking records inside a batch, the
//! validation of produced batches, and (for compaction only) decoding and re-encoding.
//! Batches are stored and served as received.

pub mod batch;
pub mod codec;
pub mod validate;
pub mod walk;
