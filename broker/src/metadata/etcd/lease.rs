//! Lease keep-alives over etcd's keep-alive streams.
//!
//! etcd has no unary keep-alive: `LeaseKeepAlive` is a bidirectional stream on which each
//! request for a lease id is answered with the lease's TTL, and a TTL of 0 means the
//! lease is gone (expired or revoked). The trait's `keep_alive` is one refresh, so each
//! lease keeps its stream here between calls and every call is one round trip on it.
//! A stream that broke (etcd restarted, the connection dropped) is opened again once in
//! the same call, so a keep-alive after an etcd restart reaches the new server.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use etcd_client::{Client, LeaseKeepAliveStream, LeaseKeeper};
use tracing::debug;

use crate::metadata::store::LeaseId;

/// What one keep-alive attempt found.
#[derive(Debug)]
pub(super) enum Renewal {
    /// The lease lives on for this long.
    Alive(Duration),
    /// etcd answered with TTL 0: the lease expired or was revoked.
    Gone,
}

/// An open keep-alive stream of one lease.
#[derive(Debug)]
struct Stream {
    keeper: LeaseKeeper,
    responses: LeaseKeepAliveStream,
}

impl Stream {
    /// One request and its answer; `Err` when the stream is broken.
    async fn round_trip(&mut self) -> Result<Renewal, etcd_client::Error> {
        self.keeper.keep_alive().await?;
        match self.responses.message().await? {
            Some(response) => Ok(renewal(response.ttl())),
            None => Err(etcd_client::Error::LeaseKeepAliveError(
                "the keep-alive stream ended".into(),
            )),
        }
    }
}

fn renewal(ttl: i64) -> Renewal {
    if ttl <= 0 {
        Renewal::Gone
    } else {
        Renewal::Alive(Duration::from_secs(ttl as u64))
    }
}

/// The keep-alive streams of the leases this store refreshes, one per lease.
#[derive(Debug, Default)]
pub(super) struct KeepAlives {
    /// NB: a stream is taken out while in use, so no lock is held across a round trip;
    /// two concurrent refreshes of one lease each use a stream of their own.
    streams: Mutex<HashMap<LeaseId, Stream>>,
}

impl KeepAlives {
    fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<LeaseId, Stream>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refreshes `lease` once: on its open stream, or on a new one if it has none or the
    /// old one broke. The caller bounds the time it takes.
    pub(super) async fn refresh(
        &self,
        client: &Client,
        lease: LeaseId,
    ) -> Result<Renewal, etcd_client::Error> {
        let open = self.streams().remove(&lease);
        if let Some(mut stream) = open {
            match stream.round_trip().await {
                Ok(Renewal::Alive(ttl)) => {
                    self.streams().insert(lease, stream);
                    return Ok(Renewal::Alive(ttl));
                }
                Ok(Renewal::Gone) => return Ok(Renewal::Gone),
                Err(err) => {
                    debug!(lease, error = %err, "lease keep-alive stream broke; opening a new one");
                }
            }
        }
        let mut leases = client.lease_client();
        match leases.keep_alive(lease).await {
            Ok((keeper, responses)) => {
                // etcd-client read the first answer: the lease was alive. Its TTL comes
                // with the next round trip; until then the granted TTL is unknown here,
                // so this refresh asks once more to report it.
                let mut stream = Stream { keeper, responses };
                let renewed = stream.round_trip().await?;
                if matches!(renewed, Renewal::Alive(_)) {
                    self.streams().insert(lease, stream);
                }
                Ok(renewed)
            }
            // etcd-client's answer when the first response has TTL 0.
            Err(etcd_client::Error::LeaseKeepAliveError(_)) => Ok(Renewal::Gone),
            Err(err) => Err(err),
        }
    }

    /// Drops the stream of a lease that is gone or revoked.
    pub(super) fn forget(&self, lease: LeaseId) {
        self.streams().remove(&lease);
    }

    /// Drops every stream (the store closed).
    pub(super) fn clear(&self) {
        self.streams().clear();
    }
}
