//! Live updates: a `refresh` server-sent event whenever this broker applies a metadata
//! change or the sampler takes a point; console.js then fetches the page again. Pages
//! stay plain HTML, and a browser without JavaScript just reloads.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use super::Console;

/// Live streams one broker serves at once: each holds a connection, and the console
/// listener must not become a way to use up the broker's file descriptors.
pub const MAX_STREAMS: usize = 64;

/// Counts a live stream while it exists.
#[derive(Debug)]
pub struct StreamSlot(Arc<AtomicUsize>);

impl StreamSlot {
    /// A slot, unless MAX_STREAMS are open.
    pub fn take(open: &Arc<AtomicUsize>) -> Option<StreamSlot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_STREAMS).then_some(n + 1)
        })
        .ok()
        .map(|_| StreamSlot(open.clone()))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

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
    slot: StreamSlot,
    shutdown: watch::Receiver<bool>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = console.events.subscribe();
    let events = futures_util::stream::unfold(
        (receiver, shutdown, slot),
        |(mut receiver, mut shutdown, slot)| async move {
            loop {
                let received = tokio::select! {
                    r = receiver.recv() => r,
                    _ = shutdown.wait_for(|s| *s) => return None,
                };
                match received {
                    Ok(refresh) => {
                        let data = serde_json::to_string(&refresh).unwrap_or_default();
                        let event = Event::default().event("refresh").data(data);
                        return Some((Ok(event), (receiver, shutdown, slot)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_slots_are_bounded_and_given_back() {
        let open = Arc::new(AtomicUsize::new(0));
        let slots: Vec<StreamSlot> = (0..MAX_STREAMS)
            .filter_map(|_| StreamSlot::take(&open))
            .collect();
        assert_eq!(slots.len(), MAX_STREAMS);
        assert!(StreamSlot::take(&open).is_none());
        drop(slots);
        assert_eq!(open.load(Ordering::Acquire), 0);
        assert!(StreamSlot::take(&open).is_some());
    }
}
