//! The broker's gRPC side (broker/proto/runnel.proto, package `runnel.v1`): the admin and
//! watch service every broker serves on `admin.listener`, and the client brokers use to
//! forward admin requests to the controller.

pub mod about;
pub mod admin;
pub mod channels;
pub mod codec;
pub mod convert;
pub mod forward;
pub mod refusals;
pub mod replication;
pub mod watch;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch as signal;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tracing::{error, info};

use admin::AdminService;
use proto::admin_server::AdminServer;

/// The generated messages, client and server.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("runnel.v1");
}

/// The address other brokers and clients reach the admin service at: the advertised one
/// when configured, else the bound address (with a wildcard host replaced by `host`, the
/// broker's first advertised Kafka host).
pub fn advertised_admin(advertised: Option<&str>, bound: SocketAddr, host: &str) -> String {
    if let Some(address) = advertised {
        return address.to_string();
    }
    if bound.ip().is_unspecified() {
        format!("{host}:{}", bound.port())
    } else {
        bound.to_string()
    }
}

/// Serves the admin and replication services until `shutdown` turns true. Admin messages
/// above `max_message` bytes are refused with OUT_OF_RANGE and counted in `oversized`.
pub async fn serve(
    listener: TcpListener,
    service: AdminService,
    replication: replication::ReplicationService,
    max_message: usize,
    oversized: Arc<AtomicU64>,
    mut shutdown: signal::Receiver<bool>,
) {
    let address = listener.local_addr().ok();
    let server = AdminServer::new(service).max_decoding_message_size(max_message);
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    info!(address = ?address, "admin gRPC service listening");
    let stopped = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    if let Err(err) = Server::builder()
        .layer(refusals::CountOversizedLayer { counter: oversized })
        .add_service(server)
        .add_service(replication::server(replication, max_message))
        .serve_with_incoming_shutdown(incoming, stopped)
        .await
    {
        error!(error = %err, "admin gRPC service stopped");
    }
}
