//! The storage layer: segmented partition logs with sparse indexes, checkpoints,
//! recovery and the broker-wide flusher, over the I/O seam in [`crate::fsio`].
//! It knows nothing of requests, clusters or protocol types.

pub mod checkpoint;
pub mod cleaner;
pub mod epochs;
pub mod flusher;
pub mod index;
pub mod manager;
pub mod partition_log;
pub mod producer_state;
pub mod segment;
