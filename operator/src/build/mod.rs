//! Pure builders: one function per Kubernetes object, from the KafkaCluster and what
//! reconcile decided. Nothing here talks to the API, so every object is unit-tested.

pub mod claims;
pub mod config;
pub mod console;
pub mod etcd;
pub mod names;
pub mod pdb;
pub mod rack;
pub mod services;
pub mod statefulset;

#[cfg(test)]
pub(crate) mod testing;
