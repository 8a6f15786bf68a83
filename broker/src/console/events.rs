//! Live updates: a `refresh` server-sent event whenever this broker applies a metadata
//! change or the sampler takes a point; console.js then fetches the page again. Pages
//! stay plain HTML, and a browser without JavaScript just reloads.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use super::Console;

/// Metadata changes closer together than this make one refresh (a leader election
/// changes many partitions one after another).
const DEBOUNCE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Serialize)]
pub struct Refresh {
    /// "metadata" or "sample".
    pub reason: &'static str,
    /// The metadata revision this broker has applied.
    pub revision: i64,
}

/// Sends a refresh for every applied metadata change (at most one per DEBOUNCE).
pub async fn forward_metadata_changes(console: Arc<Console>, mut shutdown: watch::Receiver<bool>) {
    let mut revisions = console.cache.subscribe();
    loop {
        tokio::select! {
            changed = revisions.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|s| *s) => return,
        }
        tokio::time::sleep(DEBOUNCE).await;
        let revision = *revisions.borrow_and_update();
        // No receiver (no browser open) is not an error.
        let _ = console.events.send(Refresh {
            reason: "metadata",
            revision,
        });
    }
}

/// The `/ui/events` stream of one browser tab; it ends when the broker stops (else the
/// open stream would hold up the listener's graceful shutdown).
pub fn stream(
    console: &Console,
    shutdown: watch::Receiver<bool>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = console.events.subscribe();
    let events = futures_util::stream::unfold(
        (receiver, shutdown),
        |(mut receiver, mut shutdown)| async move {
            loop {
                let received = tokio::select! {
                    r = receiver.recv() => r,
                    _ = shutdown.wait_for(|s| *s) => return None,
                };
                match received {
                    Ok(refresh) => {
                        let data = serde_json::to_string(&refresh).unwrap_or_default();
                        let event = Event::default().event("refresh").data(data);
                        return Some((Ok(event), (receiver, shutdown)));
                    }
                    // A slow tab missed some: one refresh covers them all.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(events).keep_alive(KeepAlive::default())
}
