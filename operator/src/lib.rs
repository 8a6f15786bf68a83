//! Runnel's Kubernetes operator: `KafkaCluster` resources to running clusters, their
//! health and partition leadership back into status. It talks to a cluster only through
//! the brokers' gRPC admin/watch service (`broker/proto/runnel.proto`), never to etcd.

pub mod admin;
pub mod backoff;
pub mod build;
pub mod crd;
pub mod http;
pub mod kubeclient;
pub mod lease;
pub mod metrics;
pub mod quantity;
pub mod rack_init;
pub mod reconcile;
pub mod roll;
pub mod run;
pub mod status;
pub mod tidy;
pub mod topic_plan;
pub mod topic_reconcile;
pub mod topic_status;
pub mod view;
pub mod watch;

/// The broker's gRPC contract (client side).
#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub mod proto {
    tonic::include_proto!("runnel.v1");
}
