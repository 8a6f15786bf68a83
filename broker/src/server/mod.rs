//! The Kafka listener: accept loop and per-connection framing and ordering.

pub mod connection;
pub mod listener;
