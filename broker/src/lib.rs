//! Runnel: a Kafka-compatible message broker.
//!
//! # Layout
//! - [`server`] accepts connections, frames requests and answers them in order;
//!   [`protocol`] holds the ApiVersions table, framing and error-code mapping;
//!   [`handlers`] has one module per Kafka API.
//! - [`partition`] is the replica state machine (leader epoch, high watermark, ISR) over
//!   [`log`], the durable segmented log behind an I/O seam; [`records`] is Kafka's batch
//!   format.
//! - [`metadata`] is the etcd-level store (etcd for a cluster, embedded for standalone),
//!   its schema and the broker's cached view; [`controller`] assigns partitions and elects
//!   leaders through it.
//! - [`broker`] wires everything; [`http`] serves health and metrics; [`console`] is the
//!   web console on its own listener; [`config`] reads `server.properties`, flags and the
//!   environment.

pub mod blocking;
pub mod broker;
pub mod clock;
pub mod config;
pub mod console;
pub mod controller;
pub mod error;
pub mod fsio;
pub mod group;
pub mod handlers;
pub mod http;
pub mod ids;
pub mod log;
pub mod metadata;
pub mod metrics;
pub mod partition;
pub mod protocol;
pub mod records;
pub mod replication;
pub mod rpc;
pub mod server;
pub mod telemetry;
#[cfg(feature = "test-support")]
pub mod test_support;
