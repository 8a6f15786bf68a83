//! The web console: every broker serves it on `console.listener` (docs/ARCHITECTURE.md,
//! "Console"). It reads the cluster's layout from this broker's metadata image and asks
//! leaders and coordinators the rest over the Kafka protocol, as an admin client would,
//! so the browser-facing process holds no etcd access and no credentials.
//!
//! One job per file: `model` (what pages show), `calls`/`kafka` (the Kafka client),
//! `traffic` (per-broker counters over the admin service), `history`/`sampler` (the
//! ring buffers behind the charts), `gather` (model from image and calls), `pages`,
//! `html`, `chart` (pure renderers), `routes` (HTTP), `actions` (the changes), `csrf`,
//! `hosts` (request guards), `events` (server-sent refreshes).

pub mod actions;
pub mod calls;
pub mod chart;
pub mod csrf;
pub mod events;
pub mod gather;
pub mod history;
pub mod hosts;
pub mod html;
pub mod kafka;
pub mod model;
pub mod pages;
pub mod routes;
pub mod sampler;
pub mod timestamp;
pub mod traffic;

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::config::ConsoleConfig;
use crate::metadata::cache::MetadataCache;
use crate::metadata::store::MetadataStore;

/// How long one call to another broker may take before the page shows "unknown".
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Pages built at once: each may ask every broker, so a burst of reloads must not turn
/// into a burst of requests across the cluster.
const PAGE_SLOTS: usize = 4;

/// Everything the console's handlers share.
#[derive(Debug)]
pub struct Console {
    pub config: ConsoleConfig,
    pub broker_id: i32,
    pub cache: Arc<MetadataCache>,
    /// The Kafka listener whose advertised endpoints the console dials and shows.
    pub listener: String,
    pub calls: calls::Calls,
    pub traffic: traffic::Traffic,
    pub history: Mutex<history::History>,
    pub store: Arc<dyn MetadataStore>,
    /// "etcd" or "embedded".
    pub store_kind: &'static str,
    /// A key every healthy store can read (the cluster id).
    pub probe_key: String,
    pub hosts: hosts::AllowedHosts,
    pub events: broadcast::Sender<events::Refresh>,
    /// Live streams open now (at most `events::MAX_STREAMS`).
    pub streams: Arc<AtomicUsize>,
    pub page_slots: Semaphore,
}

/// What the console needs from the broker that serves it.
#[derive(Debug)]
pub struct ConsoleParts {
    pub config: ConsoleConfig,
    pub broker_id: i32,
    pub cache: Arc<MetadataCache>,
    /// The Kafka listener whose advertised endpoints the console dials.
    pub listener: String,
    pub store: Arc<dyn MetadataStore>,
    pub store_kind: &'static str,
    pub probe_key: String,
}

impl Console {
    pub fn new(parts: ConsoleParts) -> Arc<Console> {
        let ConsoleParts {
            config,
            broker_id,
            cache,
            listener,
            store,
            store_kind,
            probe_key,
        } = parts;
        let (events, _) = broadcast::channel(16);
        Arc::new(Console {
            hosts: hosts::AllowedHosts::new(&config.listener, &config.allowed_hosts),
            history: Mutex::new(history::History::new(config.history_points)),
            calls: calls::Calls::new(cache.clone(), listener.clone(), CALL_TIMEOUT)
                .with_local_broker(broker_id),
            listener,
            traffic: traffic::Traffic::new(cache.clone(), CALL_TIMEOUT),
            config,
            broker_id,
            cache,
            store,
            store_kind,
            probe_key,
            events,
            streams: Arc::new(AtomicUsize::new(0)),
            page_slots: Semaphore::new(PAGE_SLOTS),
        })
    }

    /// The history, also after a panic elsewhere poisoned the lock (it holds only data).
    pub fn history(&self) -> MutexGuard<'_, history::History> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves the console, samples its history and sends refreshes until `shutdown`.
pub async fn serve(listener: TcpListener, console: Arc<Console>, shutdown: watch::Receiver<bool>) {
    // Aborted however this ends, also when the broker aborts this task on shutdown: a
    // sample in progress must not go on dialling brokers after the broker stopped.
    let _tasks = AbortOnDrop(vec![
        tokio::spawn(sampler::run(console.clone(), shutdown.clone())),
        tokio::spawn(events::forward_metadata_changes(
            console.clone(),
            shutdown.clone(),
        )),
    ]);
    routes::serve(listener, console, shutdown).await;
}

struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
