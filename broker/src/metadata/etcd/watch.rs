//! Prefix watches over etcd's watch streams, as the trait's [`WatchStream`]: one batch per
//! revision, in order, resumed across broken streams.
//!
//! What etcd sends and how it is mapped:
//! - a `created` response first (its header revision is "now" for a watch from 0);
//! - event responses that may carry several revisions: events are regrouped into one
//!   [`WatchBatch`] per revision (etcd never splits a revision across responses unless
//!   fragmenting, which is not asked for);
//! - progress notifications (no events): everything up to their header revision was
//!   sent, so a resume may start after it;
//! - a non-zero `compact_revision` (with `canceled`): history from the next revision is
//!   gone, mapped to `WatchCompacted`, which makes the reader reload;
//! - a broken stream (etcd restarted, connection lost) or any other cancel: the watch is
//!   opened again from the last delivered revision + 1, so nothing is lost or repeated;
//!   only when that revision is compacted does the reader get `WatchCompacted`.

use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, WatchOptions, WatchResponse};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::convert::{header_revision, is_compacted, is_future_revision, key_value, prefix_end};
use super::REQUEST_TIMEOUT;
use crate::error::{Error, Result};
use crate::metadata::store::{Revision, WatchBatch, WatchEvent, WatchStream};
use crate::metrics::store::StoreMetrics;

/// Batches a watch may buffer before etcd's stream is no longer read (then etcd buffers).
const CHANNEL_BATCHES: usize = 256;
/// Waits between attempts to reopen a broken watch.
const RESUME_BACKOFF_MIN: Duration = Duration::from_millis(100);
const RESUME_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// One open etcd watch stream.
type Stream = etcd_client::WatchStream;

/// What a watch needs to reopen itself.
pub(super) struct Watch {
    pub(super) client: Client,
    pub(super) prefix: String,
    pub(super) metrics: StoreMetrics,
    /// Becomes true when the store closes.
    pub(super) shutdown: watch::Receiver<bool>,
}

/// How an etcd stream ended.
enum Ended {
    /// The reader went away or the store closed: stop.
    Stop,
    /// History from `requested` is compacted (etcd keeps `oldest` on).
    Compacted {
        requested: Revision,
        oldest: Revision,
    },
    /// Broken or cancelled for another reason: reopen from the next revision.
    Broken(String),
}

impl Watch {
    /// Opens the watch from `from_revision` (0: from the next revision) and starts the
    /// task that feeds the returned stream. Fails at once when the start is compacted.
    pub(super) async fn start(self, from_revision: Revision) -> Result<WatchStream> {
        // etcd accepts a watch from a compacted revision and cancels it a moment later
        // (its unsynced watchers are checked every 100 ms). A read at that revision tells
        // at once, so a compacted start fails here, as the trait says, rather than as the
        // stream's first item. Compaction after this point arrives on the stream.
        if from_revision > 0 && self.compacted_at(from_revision).await? {
            let oldest = self.oldest_kept(from_revision).await;
            self.metrics.watch_reloads.inc();
            return Err(Error::WatchCompacted {
                requested: from_revision,
                oldest,
            });
        }
        let (stream, created_at) = self.open(from_revision).await?;
        // A watch from 0 starts after the revision current when etcd created it.
        let next = if from_revision > 0 {
            from_revision
        } else {
            created_at + 1
        };
        let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
        tokio::spawn(self.run(stream, next, tx));
        Ok(rx)
    }

    /// Whether history at `revision` is compacted (a revision etcd has not reached yet
    /// is not: a watch may start in the future).
    async fn compacted_at(&self, revision: Revision) -> Result<bool> {
        let mut kv = self.client.kv_client();
        let options = GetOptions::new().with_revision(revision).with_count_only();
        match tokio::time::timeout(
            REQUEST_TIMEOUT,
            kv.get(self.prefix.as_bytes(), Some(options)),
        )
        .await
        {
            Ok(Ok(_)) => Ok(false),
            Ok(Err(err)) if is_compacted(&err) => Ok(true),
            Ok(Err(err)) if is_future_revision(&err) => Ok(false),
            Ok(Err(source)) => Err(Error::EtcdRequest {
                operation: "watch",
                source,
            }),
            Err(_) => Err(Error::EtcdTimeout {
                operation: "watch",
                after: REQUEST_TIMEOUT,
            }),
        }
    }

    /// The oldest revision etcd still has, as the cancel of a watch from the compacted
    /// `revision` reports it; `revision + 1` if that does not come in time.
    async fn oldest_kept(&self, revision: Revision) -> Revision {
        let fallback = revision + 1;
        let mut stream = match self.open(revision).await {
            Ok((stream, _)) => stream,
            Err(Error::WatchCompacted { oldest, .. }) => return oldest,
            Err(_) => return fallback,
        };
        let cancel = async {
            while let Ok(Some(response)) = stream.message().await {
                if response.compact_revision() > 0 {
                    return response.compact_revision();
                }
            }
            fallback
        };
        tokio::time::timeout(Duration::from_secs(1), cancel)
            .await
            .unwrap_or(fallback)
    }

    /// Opens an etcd watch from `start` (0: now) and waits for its `created` answer;
    /// returns the stream and the revision etcd was at.
    async fn open(&self, start: Revision) -> Result<(Stream, Revision)> {
        let options = WatchOptions::new()
            .with_range(prefix_end(&self.prefix))
            .with_start_revision(start)
            .with_progress_notify();
        let mut client = self.client.watch_client();
        let opening = async {
            let mut stream = client.watch(self.prefix.as_bytes(), Some(options)).await?;
            loop {
                match stream.message().await? {
                    Some(response) if response.created() => return Ok((stream, response)),
                    Some(_) => continue,
                    None => {
                        return Err(etcd_client::Error::WatchError(
                            "the watch stream ended before it was created".into(),
                        ))
                    }
                }
            }
        };
        let (stream, created) = match tokio::time::timeout(REQUEST_TIMEOUT, opening).await {
            Ok(Ok(opened)) => opened,
            Ok(Err(source)) => {
                return Err(Error::EtcdRequest {
                    operation: "watch",
                    source,
                })
            }
            Err(_) => {
                return Err(Error::EtcdTimeout {
                    operation: "watch",
                    after: REQUEST_TIMEOUT,
                })
            }
        };
        if created.canceled() && created.compact_revision() > 0 {
            return Err(Error::WatchCompacted {
                requested: start,
                oldest: created.compact_revision(),
            });
        }
        Ok((stream, header_revision(created.header(), "watch")?))
    }

    /// Feeds `tx` from etcd until the reader goes away, the store closes or history is
    /// compacted; reopens broken streams from `next`.
    async fn run(
        mut self,
        mut stream: Stream,
        mut next: Revision,
        tx: mpsc::Sender<Result<WatchBatch>>,
    ) {
        let (requested, oldest) = loop {
            match self.follow(&mut stream, &mut next, &tx).await {
                Ended::Stop => return,
                Ended::Compacted { requested, oldest } => break (requested, oldest),
                Ended::Broken(reason) => {
                    debug!(prefix = %self.prefix, next, reason, "etcd watch stream broke; resuming");
                }
            }
            match self.reopen(next, &tx).await {
                Ok(reopened) => stream = reopened,
                Err(Ended::Compacted { requested, oldest }) => break (requested, oldest),
                Err(_) => return,
            }
        };
        info!(prefix = %self.prefix, requested, oldest, "etcd watch history was compacted; the reader reloads");
        self.metrics.watch_reloads.inc();
        // The reader may be gone already; then nobody needs to know.
        let _ = tx
            .send(Err(Error::WatchCompacted { requested, oldest }))
            .await;
    }

    /// Opens the watch again from `next`, retrying with backoff until it works, its
    /// history is gone (`Compacted`) or there is nobody left to feed (`Stop`).
    async fn reopen(
        &mut self,
        next: Revision,
        tx: &mpsc::Sender<Result<WatchBatch>>,
    ) -> std::result::Result<Stream, Ended> {
        let mut backoff = RESUME_BACKOFF_MIN;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.shutdown.wait_for(|closed| *closed) => return Err(Ended::Stop),
                _ = tx.closed() => return Err(Ended::Stop),
            }
            match self.open(next).await {
                Ok((stream, _)) => {
                    info!(prefix = %self.prefix, next, "etcd watch resumed");
                    self.metrics.watch_resumes.inc();
                    return Ok(stream);
                }
                Err(Error::WatchCompacted { requested, oldest }) => {
                    return Err(Ended::Compacted { requested, oldest })
                }
                Err(err) => {
                    warn!(prefix = %self.prefix, next, error = %err, "failed to resume an etcd watch; retrying");
                    backoff = (backoff * 2).min(RESUME_BACKOFF_MAX);
                }
            }
        }
    }

    /// Delivers one stream's responses until it ends.
    async fn follow(
        &mut self,
        stream: &mut Stream,
        next: &mut Revision,
        tx: &mpsc::Sender<Result<WatchBatch>>,
    ) -> Ended {
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                _ = self.shutdown.wait_for(|closed| *closed) => return Ended::Stop,
                _ = tx.closed() => return Ended::Stop,
            };
            let response = match message {
                Ok(Some(response)) => response,
                Ok(None) => return Ended::Broken("etcd ended the stream".into()),
                Err(err) => return Ended::Broken(err.to_string()),
            };
            if response.compact_revision() > 0 {
                return Ended::Compacted {
                    requested: *next,
                    oldest: response.compact_revision(),
                };
            }
            if response.canceled() {
                return Ended::Broken(format!(
                    "etcd cancelled the watch: {}",
                    response.cancel_reason()
                ));
            }
            if response.events().is_empty() {
                // A progress notification: every change up to its revision was sent.
                if !response.created() {
                    if let Some(header) = response.header() {
                        *next = (*next).max(header.revision() + 1);
                    }
                }
                continue;
            }
            for batch in batches(&response) {
                // After a resume etcd starts at `next`; anything older was delivered.
                if batch.revision < *next {
                    continue;
                }
                let revision = batch.revision;
                if tx.send(Ok(batch)).await.is_err() {
                    return Ended::Stop;
                }
                *next = revision + 1;
            }
        }
    }
}

/// The response's events regrouped into one batch per revision, in order.
fn batches(response: &WatchResponse) -> Vec<WatchBatch> {
    let mut out: Vec<WatchBatch> = Vec::new();
    for event in response.events() {
        let Some(kv) = event.kv() else {
            continue;
        };
        let kv = key_value(kv);
        let revision = kv.mod_revision;
        let event = match event.event_type() {
            EventType::Put => WatchEvent::Put(kv),
            EventType::Delete => WatchEvent::Delete(kv),
        };
        match out.last_mut() {
            Some(batch) if batch.revision == revision => batch.events.push(event),
            _ => out.push(WatchBatch {
                revision,
                events: vec![event],
            }),
        }
    }
    out
}
