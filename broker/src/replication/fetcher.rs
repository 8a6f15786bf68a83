//! The follower's side: one fetch session per partition this broker follows, started and
//! stopped as the partitions' states change. A session sends a fetch, applies the answer
//! (append, truncate by epoch, or restart at the leader's log start), and in durable mode
//! syncs what it appended before it asks again, so the durable offset it reports is what
//! the leader's high watermark may count.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto_kafka::error::ResponseError;
use tokio::sync::{mpsc, watch as signal};
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tracing::{debug, info, warn};

use super::ReplicationStats;
use crate::config::{Config, FlushMode};
use crate::metadata::cache::MetadataCache;
use crate::partition::manager::ReplicaManager;
use crate::partition::{Partition, Role};
use crate::rpc::channels::Channels;
use crate::rpc::proto::replication_client::ReplicationClient;
use crate::rpc::proto::{ReplicaFetchRequest, ReplicaFetchResponse};

/// How long a follower waits before trying a leader again after a failure.
const RETRY: Duration = Duration::from_millis(200);
/// How long a follower waits for its own fsync before asking again anyway.
const SYNC_WAIT: Duration = Duration::from_secs(30);

/// What a session follows: the leader and its epoch, for this incarnation of the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    leader: i32,
    leader_epoch: i32,
}

#[derive(Debug)]
struct Session {
    target: Target,
    partition: Arc<Partition>,
    task: JoinHandle<()>,
}

/// The follower fetch sessions of this broker.
#[derive(Debug)]
pub struct Fetchers {
    config: Arc<Config>,
    replicas: Arc<ReplicaManager>,
    cache: Arc<MetadataCache>,
    stats: Arc<ReplicationStats>,
    sessions: Mutex<HashMap<(Arc<str>, i32), Session>>,
    /// One channel per leader's admin endpoint.
    channels: Channels,
}

impl Fetchers {
    pub fn new(
        config: Arc<Config>,
        replicas: Arc<ReplicaManager>,
        cache: Arc<MetadataCache>,
        stats: Arc<ReplicationStats>,
    ) -> Arc<Fetchers> {
        Arc::new(Fetchers {
            config,
            replicas,
            cache,
            stats,
            sessions: Mutex::new(HashMap::new()),
            channels: Channels::default(),
        })
    }

    /// Keeps the sessions in step with the partitions' states until `shutdown`: on every
    /// applied metadata image, and every second (a lost lease changes roles without one).
    pub async fn run(self: Arc<Self>, mut shutdown: signal::Receiver<bool>) {
        let mut changes = self.cache.subscribe();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            self.reconcile();
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        self.stop_all();
    }

    /// How many fetch sessions run (one per followed partition).
    pub fn session_count(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    fn stop_all(&self) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        for (_, session) in sessions.drain() {
            session.task.abort();
        }
    }

    fn reconcile(self: &Arc<Self>) {
        let me = self.config.broker_id;
        let mut wanted: HashMap<(Arc<str>, i32), (Target, Arc<Partition>)> = HashMap::new();
        for partition in self.replicas.all() {
            let state = partition.state();
            if state.role == Role::Follower && state.leader >= 0 && state.leader != me {
                let target = Target {
                    leader: state.leader,
                    leader_epoch: state.leader_epoch,
                };
                wanted.insert(
                    (partition.topic.clone(), partition.index),
                    (target, partition),
                );
            }
        }
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|key, session| {
            let keep = !session.task.is_finished()
                && wanted.get(key).is_some_and(|(target, partition)| {
                    *target == session.target && Arc::ptr_eq(partition, &session.partition)
                });
            if !keep {
                session.task.abort();
            }
            keep
        });
        for (key, (target, partition)) in wanted {
            if sessions.contains_key(&key) {
                continue;
            }
            debug!(partition = %format!("{}-{}", key.0, key.1), leader = target.leader, leader_epoch = target.leader_epoch, "following");
            let task = tokio::spawn(self.clone().follow(partition.clone(), target));
            sessions.insert(
                key,
                Session {
                    target,
                    partition,
                    task,
                },
            );
        }
    }

    fn still_following(&self, partition: &Arc<Partition>, target: Target) -> bool {
        let state = partition.state();
        state.role == Role::Follower
            && state.leader == target.leader
            && state.leader_epoch == target.leader_epoch
            && self
                .replicas
                .get(&partition.topic, partition.index)
                .is_some_and(|p| Arc::ptr_eq(&p, partition))
    }

    /// A channel to `leader`'s replication service, as the store shows it now.
    fn channel(&self, leader: i32) -> Option<Channel> {
        let image = self.cache.raw_image();
        let address = image
            .brokers
            .get(&leader)?
            .registration
            .admin_endpoint
            .clone()?;
        self.channels
            .get(&address, |e| {
                e.connect_timeout(Duration::from_secs(3))
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(5))
                    .keep_alive_timeout(Duration::from_secs(5))
            })
            .ok()
    }

    /// One partition's fetch sessions with `target`, reopened after failures, until the
    /// partition stops following it.
    async fn follow(self: Arc<Self>, partition: Arc<Partition>, target: Target) {
        let name = format!("{}-{}", partition.topic, partition.index);
        let mut first = true;
        while self.still_following(&partition, target) {
            if !first {
                self.stats
                    .follower_reconnects
                    .fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(RETRY).await;
            }
            first = false;
            let Some(channel) = self.channel(target.leader) else {
                debug!(partition = %name, leader = target.leader, "the leader has no admin endpoint yet");
                continue;
            };
            if let Err(reason) = self.session(&partition, target, channel).await {
                debug!(partition = %name, leader = target.leader, %reason, "fetch session ended");
            }
        }
    }

    async fn session(
        &self,
        partition: &Arc<Partition>,
        target: Target,
        channel: Channel,
    ) -> Result<(), String> {
        let mut client = ReplicationClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let (tx, rx) = mpsc::channel::<ReplicaFetchRequest>(1);
        let outbound = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|request| (request, rx))
        });
        let first = self.request(partition, target);
        tx.send(first)
            .await
            .map_err(|_| "session closed".to_string())?;
        let mut inbound = client
            .fetch(outbound)
            .await
            .map_err(|status| format!("open: {}", status.message()))?
            .into_inner();
        let answer_within = self.config.replica_fetch_wait_max + Duration::from_secs(15);
        loop {
            let answer = match tokio::time::timeout(answer_within, inbound.message()).await {
                Err(_) => return Err("the leader did not answer in time".into()),
                Ok(Err(status)) => return Err(status.message().to_string()),
                Ok(Ok(None)) => return Err("the leader closed the session".into()),
                Ok(Ok(Some(answer))) => answer,
            };
            if !self.still_following(partition, target) {
                return Ok(());
            }
            if !self.apply(partition, answer).await? {
                // Refused for now (epochs, metadata in flux): ask again after a pause.
                tokio::time::sleep(RETRY).await;
                if !self.still_following(partition, target) {
                    return Ok(());
                }
            }
            tx.send(self.request(partition, target))
                .await
                .map_err(|_| "session closed".to_string())?;
        }
    }

    fn request(&self, partition: &Partition, target: Target) -> ReplicaFetchRequest {
        let (fetch_offset, last_fetched_epoch, durable) = partition.follower_position();
        ReplicaFetchRequest {
            topic: partition.topic.to_string(),
            topic_id: partition.topic_id().as_bytes().to_vec(),
            partition: partition.index,
            broker_id: self.config.broker_id,
            broker_epoch: self.replicas.broker_epoch(),
            current_leader_epoch: target.leader_epoch,
            fetch_offset,
            last_fetched_epoch,
            durable_offset: durable,
            high_watermark: partition.offsets().high_watermark,
            max_bytes: i32::try_from(self.config.replica_fetch_max_bytes).unwrap_or(i32::MAX),
            max_wait_ms: i32::try_from(self.config.replica_fetch_wait_max.as_millis())
                .unwrap_or(i32::MAX),
        }
    }

    /// Applies the leader's answer. `Ok(false)`: refused for now, ask again later;
    /// `Err`: this partition's log cannot go on (offline), the session ends.
    async fn apply(
        &self,
        partition: &Arc<Partition>,
        answer: ReplicaFetchResponse,
    ) -> Result<bool, String> {
        let name = format!("{}-{}", partition.topic, partition.index);
        if let Some(diverging) = answer.diverging {
            let offsets = partition.offsets();
            let log_start = offsets.log_start;
            if diverging.epoch < 0 && offsets.log_end <= diverging.end_offset {
                // The leader holds no epoch this old, and everything here is below its
                // log start: start again there (truncating would change nothing).
                return self
                    .truncate(partition, diverging.end_offset, true)
                    .await
                    .map(|()| true);
            }
            let target = if diverging.epoch < 0 {
                diverging.end_offset
            } else {
                match partition.end_offset_for(diverging.epoch) {
                    Some((epoch, end)) if epoch == diverging.epoch => end.min(diverging.end_offset),
                    Some((_, end)) => end.min(diverging.end_offset),
                    None => log_start.min(diverging.end_offset),
                }
            };
            info!(partition = %name, leader_epoch = diverging.epoch, leader_end = diverging.end_offset, truncate_to = target, "the log diverged from the leader's");
            return self.truncate(partition, target, false).await.map(|()| true);
        }
        if answer.error_code != 0 {
            let error = i16::try_from(answer.error_code)
                .ok()
                .and_then(ResponseError::try_from_code);
            if error == Some(ResponseError::OffsetOutOfRange) {
                let (fetch_offset, _, _) = partition.follower_position();
                if fetch_offset < answer.log_start_offset {
                    info!(partition = %name, fetch_offset, leader_log_start = answer.log_start_offset, "the leader's log starts past this copy; restarting it there");
                    return self
                        .truncate(partition, answer.log_start_offset, true)
                        .await
                        .map(|()| true);
                }
                if fetch_offset > answer.log_end_offset {
                    return self
                        .truncate(partition, answer.log_end_offset, false)
                        .await
                        .map(|()| true);
                }
            }
            debug!(partition = %name, code = answer.error_code, message = %answer.error_message, "the leader refused the fetch");
            return Ok(false);
        }
        self.stats
            .follower_fetch_bytes
            .fetch_add(answer.records.len() as u64, Ordering::Relaxed);
        let appended = partition
            .append_from_leader(
                &answer.records,
                answer.high_watermark,
                answer.log_start_offset,
                crate::clock::now_ms(),
            )
            .map_err(|e| format!("append failed: {e:?}"))?;
        if appended.batches > 0 && self.config.flush_mode == FlushMode::Durable {
            let end = partition.offsets().log_end;
            let mut offsets = partition.subscribe();
            let synced = tokio::time::timeout(
                SYNC_WAIT,
                offsets.wait_for(|o| o.durable >= end || o.offline),
            )
            .await
            .map(|r| r.map(|o| o.offline));
            match synced {
                Ok(Ok(true)) => return Err("the log went offline".into()),
                Ok(_) => {}
                Err(_) => {
                    warn!(partition = %name, "the follower's fsync took longer than {SYNC_WAIT:?}")
                }
            }
        }
        Ok(true)
    }

    /// Truncates (or with `restart`, empties and restarts) the log at `offset` on a
    /// blocking thread, then writes checkpoints so no recovery point past the cut stays.
    async fn truncate(
        &self,
        partition: &Arc<Partition>,
        offset: i64,
        restart: bool,
    ) -> Result<(), String> {
        let partition = partition.clone();
        let replicas = self.replicas.clone();
        tokio::task::spawn_blocking(move || {
            let cut = if restart {
                partition.restart_at(offset)
            } else {
                partition.truncate_to(offset)
            };
            cut.map_err(|e| format!("truncation failed: {e:?}"))?;
            replicas
                .write_checkpoints()
                .map_err(|e| format!("checkpoints after truncation: {e}"))
        })
        .await
        .map_err(|e| format!("truncation task: {e}"))?
    }
}
