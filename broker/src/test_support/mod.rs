//! Helpers for tests outside this crate (the `test-support` feature): a throwaway etcd
//! process and a TCP proxy that cuts connections. The metadata store conformance suite
//! comes with the same feature, as `metadata::conformance`.

pub mod etcd;
pub mod proxy;
