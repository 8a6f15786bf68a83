//! One watch stream per cluster from its admin/watch gRPC service (never etcd): each
//! event is folded into the cluster's view, and reconcile is triggered at most once per
//! second per cluster, however fast leadership or ISRs change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kube::runtime::reflector::ObjectRef;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::crd::KafkaCluster;
use crate::proto::admin_client::AdminClient;
use crate::proto::WatchRequest;
use crate::view::ClusterView;

/// The least time between two reconciles a watch stream triggers for one cluster.
pub const DEBOUNCE: Duration = Duration::from_secs(1);
/// How long a broken stream's last view still counts for status (a roll restarts the
/// broker the stream came from; reconnecting takes a moment).
const STALE_AFTER: Duration = Duration::from_secs(10);
/// The largest watch message accepted (a snapshot of many partitions is large).
const MAX_MESSAGE_BYTES: usize = 64 << 20;

#[derive(Debug, Default)]
struct Shared {
    /// Shared with the reconciles reading it (every Topic of the cluster reads it on each
    /// change): an update copies it only while one of them still holds the old one.
    view: Option<Arc<ClusterView>>,
    connected: bool,
    /// When the stream last broke (None while connected or never connected).
    broken_since: Option<Instant>,
    /// The highest metadata revision any stream has shown: after a reconnect to a broker
    /// whose metadata lags, the view is not current until it is back there.
    max_revision: i64,
}

#[derive(Debug)]
struct Stream {
    url: String,
    shared: Arc<Mutex<Shared>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Where a change in a cluster's view is announced: its own reconcile, and its Topics'.
#[derive(Debug, Clone)]
pub struct Triggers {
    pub cluster: mpsc::UnboundedSender<ObjectRef<KafkaCluster>>,
    pub topics: mpsc::UnboundedSender<ObjectRef<KafkaCluster>>,
}

/// The watch streams of every cluster this operator reconciles.
#[derive(Debug)]
pub struct Watches {
    streams: Mutex<HashMap<(String, String), Stream>>,
    trigger: Triggers,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep using it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Watches {
    pub fn new(trigger: Triggers) -> Watches {
        Watches {
            streams: Mutex::new(HashMap::new()),
            trigger,
        }
    }

    /// Starts the stream of `namespace/name` from `url` unless it runs already.
    pub fn ensure(&self, namespace: &str, name: &str, url: &str) {
        let key = (namespace.to_string(), name.to_string());
        let mut streams = lock(&self.streams);
        if streams.get(&key).is_some_and(|s| s.url == url) {
            return;
        }
        let shared = Arc::new(Mutex::new(Shared::default()));
        let changed = Arc::new(Notify::new());
        let target = ObjectRef::new(name).within(namespace);
        let tasks = vec![
            tokio::spawn(follow(
                url.to_string(),
                shared.clone(),
                changed.clone(),
                target.clone(),
            )),
            tokio::spawn(debounce(changed, self.trigger.clone(), target)),
        ];
        streams.insert(
            key,
            Stream {
                url: url.to_string(),
                shared,
                tasks,
            },
        );
    }

    /// Stops the stream of a cluster that is gone.
    pub fn forget(&self, namespace: &str, name: &str) {
        lock(&self.streams).remove(&(namespace.to_string(), name.to_string()));
    }

    /// Stops the streams of clusters `keep` rejects (deleted ones), returning them.
    pub fn retain(&self, keep: impl Fn(&str, &str) -> bool) -> Vec<(String, String)> {
        let mut streams = lock(&self.streams);
        let gone: Vec<(String, String)> = streams
            .keys()
            .filter(|(namespace, name)| !keep(namespace, name))
            .cloned()
            .collect();
        for key in &gone {
            streams.remove(key);
        }
        gone
    }

    /// The view for status: the last one received, unless the stream has been broken
    /// for a while.
    pub fn view_for_status(&self, namespace: &str, name: &str) -> Option<Arc<ClusterView>> {
        let shared = self.shared(namespace, name)?;
        let shared = lock(&shared);
        match shared.broken_since {
            Some(since) if since.elapsed() > STALE_AFTER => None,
            _ => shared.view.clone(),
        }
    }

    /// The view for decisions that must not act on old news (the roll): only while the
    /// stream is connected and shows the newest revision seen. (A broker cut off from
    /// etcd can still serve a stream that looks live; the roll's other checks, a restarted
    /// broker's new epoch and every pod ready, do not rest on this view alone.)
    pub fn current_view(&self, namespace: &str, name: &str) -> Option<Arc<ClusterView>> {
        let shared = self.shared(namespace, name)?;
        let shared = lock(&shared);
        shared
            .view
            .clone()
            .filter(|v| shared.connected && v.revision >= shared.max_revision)
    }

    fn shared(&self, namespace: &str, name: &str) -> Option<Arc<Mutex<Shared>>> {
        lock(&self.streams)
            .get(&(namespace.to_string(), name.to_string()))
            .map(|s| s.shared.clone())
    }
}

/// Keeps one stream open, reconnecting with a growing pause (200 ms up to 5 s).
async fn follow(
    url: String,
    shared: Arc<Mutex<Shared>>,
    changed: Arc<Notify>,
    target: ObjectRef<KafkaCluster>,
) {
    let mut pause = Duration::from_millis(200);
    loop {
        match stream_once(&url, &shared, &changed).await {
            Ok(()) => debug!(cluster = %target, "watch stream ended"),
            Err(err) => debug!(cluster = %target, %url, error = %err, "watch stream failed"),
        }
        let was_connected = {
            let mut s = lock(&shared);
            let was = s.connected;
            s.connected = false;
            if s.broken_since.is_none() {
                s.broken_since = Some(Instant::now());
            }
            was
        };
        if was_connected {
            info!(cluster = %target, "watch stream lost; reconnecting");
            pause = Duration::from_millis(200);
            changed.notify_one();
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

async fn stream_once(
    url: &str,
    shared: &Mutex<Shared>,
    changed: &Notify,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10))
        .connect()
        .await?;
    let mut client = AdminClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let mut events = client.watch(WatchRequest {}).await?.into_inner();
    while let Some(event) = events.message().await? {
        {
            let mut s = lock(shared);
            if event.snapshot {
                s.connected = true;
                s.broken_since = None;
            }
            let view = Arc::make_mut(s.view.get_or_insert_with(Default::default));
            view.apply(&event);
            let revision = view.revision;
            s.max_revision = s.max_revision.max(revision);
        }
        changed.notify_one();
    }
    Ok(())
}

/// Turns change notifications into reconcile triggers, at most one per DEBOUNCE.
async fn debounce(changed: Arc<Notify>, trigger: Triggers, target: ObjectRef<KafkaCluster>) {
    loop {
        changed.notified().await;
        if trigger.cluster.send(target.clone()).is_err() {
            warn!(cluster = %target, "the controller stopped; watch triggers end");
            return;
        }
        // The Topic controller may have stopped first during shutdown; nothing to do then.
        let _ = trigger.topics.send(target.clone());
        // Changes during the pause leave one stored permit: one trigger after it.
        tokio::time::sleep(DEBOUNCE).await;
    }
}
