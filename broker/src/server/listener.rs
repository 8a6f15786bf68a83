//! The accept loop of one Kafka listener: one task per connection under a connection
//! limit, exponential backoff on accept errors, and a drain on shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{error, info};

use super::connection::serve;
use crate::handlers::{Connection, Context};

/// A bound listener, ready to run.
#[derive(Debug)]
pub struct KafkaListener {
    pub tcp: TcpListener,
    pub name: String,
}

/// Accepts until `shutdown` turns true, then waits up to `drain` for connections to
/// finish their in-flight requests.
pub async fn run(
    listener: KafkaListener,
    ctx: Arc<Context>,
    memory: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let limit = Arc::new(Semaphore::new(ctx.config.max_connections));
    let mut connections = JoinSet::new();
    let mut backoff = Duration::from_millis(10);
    let connection = Connection {
        listener: listener.name.clone(),
        peer: None,
    };
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.tcp.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        while connections.try_join_next().is_some() {}
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(10);
                let ctx = ctx.clone();
                let memory = memory.clone();
                let shutdown = shutdown.clone();
                let connection = Connection {
                    peer: Some(peer),
                    ..connection.clone()
                };
                connections.spawn(async move {
                    ctx.metrics.connections.inc();
                    serve(stream, peer, ctx.clone(), connection, memory, shutdown).await;
                    ctx.metrics.connections.dec();
                    drop(permit);
                });
            }
            Err(err) => {
                error!(error = %err, backoff_ms = backoff.as_millis() as u64, "failed to accept a connection");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    info!(listener = %listener.name, open = connections.len(), "listener stopped; draining connections");
    let _ = tokio::time::timeout(drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.shutdown().await;
}
