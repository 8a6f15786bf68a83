//! Consumer groups (the classic protocol) and their committed offsets, stored in the
//! internal compacted topic `__consumer_offsets`.
//!
//! - [`hash`]: which offsets partition holds a group (Kafka's function).
//! - [`codec`]: the topic's records, in Kafka's layout.
//! - [`state`]: one group's state machine, free of I/O.
//! - [`coordinator`]: the shards this broker leads, loading, writing, timers.

pub mod codec;
pub mod coordinator;
pub mod hash;
pub mod state;

pub use coordinator::{GroupCoordinator, OFFSETS_TOPIC};

/// Whether a topic is internal: clients read it but neither create, write nor delete it.
pub fn is_internal(topic: &str) -> bool {
    topic == OFFSETS_TOPIC
}
