//! The storage layer: segmented partition logs with sparse indexes, checkpoints,
//! recovery, the broker-wide flusher and the I/O seam every byte passes through.
//! It knows nothing of requests, clusters or protocol types.

pub mod checkpoint;
pub mod cleaner;
pub mod epochs;
pub mod flusher;
pub mod index;
pub mod io;
pub mod manager;
pub mod partition_log;
pub mod producer_state;
pub mod segment;
pub mod sim;
