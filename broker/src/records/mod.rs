//! Kafka's record format: the v2 batch header, walking records inside a batch, and the
//! validation of produced batches. Batches are stored and served as received; nothing
//! here re-encodes user data.

pub mod batch;
pub mod validate;
pub mod walk;
