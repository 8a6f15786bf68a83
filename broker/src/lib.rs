//! Runnel: a Kafka-compatible message broker.
//!
//! # Layout
//! - [`server`] accepts connections, frames requests and answers them in order;
//!   [`protocol`] holds the ApiVersions table and error-code mapping; [`handlers`] has one
//!   module per Kafka API family.
//! - [`partition`] is the replica state machine (leader epoch, high watermark, ISR) over
//!   [`log`], the durable segmented log behind an I/O seam.
//! - [`metadata`] is the etcd-level store (embedded for standalone), its schema and the
//!   broker's cached view; [`controller`] assigns partitions and elects leaders through it.
//! - [`broker`] wires everything; [`http`] serves health and metrics.

pub mod config;
pub mod error;
pub mod log;
pub mod metadata;
pub mod records;
