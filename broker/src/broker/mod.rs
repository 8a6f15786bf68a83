//! Wiring: starts a broker from its configuration and a file system, and stops it
//! gracefully or (for fault tests) abruptly.
//!
//! Start-up order: bind the listeners (fail fast on a taken port), lock and check the log
//! directories, open the metadata store (etcd with `etcd.endpoints`, else embedded; or the
//! one the caller passes in), agree on the cluster id, register under a lease,
//! then load metadata (opening and recovering the logs assigned here) and campaign for
//! controller. The broker is ready once it has registered, applied the metadata, a
//! controller is known, and no partition still names it leader in a previous incarnation.

pub mod keeper;
pub mod registration;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::config::{Config, FlushMode};
use crate::console::{Console, ConsoleParts};
use crate::controller::service::{ControllerService, Controllers};
use crate::controller::{Controller, Defaults, Incarnation};
use crate::error::{Error, Result};
use crate::fsio::FileSystem;
use crate::group::coordinator::CoordinatorConfig;
use crate::group::state::GroupLimits;
use crate::group::GroupCoordinator;
use crate::handlers::Context;
use crate::log::flusher::{Flusher, FlusherThreads};
use crate::log::manager::LogManager;
use crate::metadata::cache::{run_loader, MetadataCache, MetadataImage};
use crate::metadata::open::open_store;
use crate::metadata::producer_ids::ProducerIds;
use crate::metadata::schema::{
    kafka_uuid_string, new_id, BrokerRegistration, Endpoint, Keys, SCHEMA_VERSION,
};
use crate::metadata::store::{Compare, MetadataStore, Op, OpResult, Txn};
use crate::metrics::Metrics;
use crate::partition::manager::ReplicaManager;
use crate::replication::fetcher::Fetchers;
use crate::replication::isr::IsrWriter;
use crate::replication::ReplicationStats;
use crate::rpc::about::BrokerAbout;
use crate::rpc::admin::AdminService;
use crate::rpc::forward::GrpcForward;
use crate::rpc::replication::ReplicationService;
use crate::server::listener::{self, KafkaListener};
use keeper::{Keeper, KeeperSpec};
use registration::{announce_shutdown, register_at_start, Registered};

/// The most protocol metadata one group member may send (Kafka has no limit; a group's
/// members are stored in one record, so one member must not be able to make it huge).
const MAX_PROTOCOL_METADATA_BYTES: usize = 1 << 20;

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    /// Bound Kafka listener addresses, in `listeners` order.
    pub kafka_addrs: Vec<SocketAddr>,
    pub http_addr: SocketAddr,
    /// Bound address of the admin gRPC service.
    pub admin_addr: SocketAddr,
    /// Bound address of the web console (None with `console.enable=false`).
    pub console_addr: Option<SocketAddr>,
    pub metrics: Arc<Metrics>,
    pub replicas: Arc<ReplicaManager>,
    pub cache: Arc<MetadataCache>,
    shutdown: watch::Sender<bool>,
    ready: watch::Receiver<bool>,
    listeners: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
    flusher_threads: Option<FlusherThreads>,
    keeper: Option<Keeper>,
    store: Arc<dyn MetadataStore>,
    /// Whether this broker opened the store (and so closes it when it stops); a store
    /// passed in by the caller may serve other brokers too.
    owns_store: bool,
    registration: watch::Receiver<Option<Registered>>,
    /// What this broker registered (controlled shutdown marks it as shutting down).
    broker_registration: BrokerRegistration,
    keys: Keys,
    drain: Duration,
}

async fn bind(addr: &str, what: &'static str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::BindListener {
            what,
            addr: addr.to_string(),
            source,
        })
}

/// Agrees on the cluster id: created once, read ever after.
async fn cluster_id(store: &dyn MetadataStore, keys: &Keys) -> Result<String> {
    let id = kafka_uuid_string(new_id());
    let txn = Txn::when(vec![Compare::absent(keys.cluster_id())])
        .and_then(vec![
            Op::put(keys.cluster_id(), id.as_bytes().to_vec()),
            Op::put(keys.schema_version(), SCHEMA_VERSION.as_bytes().to_vec()),
        ])
        .or_else(vec![
            Op::Get {
                key: keys.cluster_id(),
            },
            Op::Get {
                key: keys.schema_version(),
            },
        ]);
    let response = store.txn(txn).await?;
    if response.succeeded {
        info!(cluster_id = %id, "created a new cluster");
        return Ok(id);
    }
    let value = |i: usize| match response.results.get(i) {
        Some(OpResult::Got(kvs)) => kvs
            .first()
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
        _ => None,
    };
    let version = value(1).unwrap_or_default();
    if version != SCHEMA_VERSION {
        return Err(Error::Startup {
            reason: format!("the metadata store holds schema version {version:?}; this broker knows {SCHEMA_VERSION}"),
        });
    }
    value(0).ok_or_else(|| Error::Startup {
        reason: "the metadata store has no cluster id".into(),
    })
}

/// Whether this broker has caught up: registered in the image, a controller is known
/// (standalone, itself), and no partition names it leader with an ISR entry from a
/// previous incarnation.
fn caught_up(image: &MetadataImage, broker: i32, epoch: i64) -> bool {
    if image.brokers.get(&broker).is_none_or(|b| b.epoch != epoch) || image.controller.is_none() {
        return false;
    }
    image
        .partitions
        .values()
        .flat_map(|ps| ps.values())
        .all(|p| {
            let p = &p.value;
            p.leader != broker
                || p.isr
                    .iter()
                    .any(|m| m.broker == broker && m.broker_epoch == epoch)
        })
}

impl Broker {
    /// Starts a broker. `fs` is the I/O seam for logs and the embedded metadata store;
    /// `store`, when given, is the metadata store to use instead of the one the
    /// configuration names (in-process clusters share one this way).
    pub async fn start(
        config: Config,
        fs: Arc<dyn FileSystem>,
        store: Option<Arc<dyn MetadataStore>>,
    ) -> Result<Broker> {
        let started = Instant::now();
        let mut kafka = Vec::new();
        for l in &config.listeners {
            kafka.push(KafkaListener {
                tcp: bind(&l.bind_address(), "Kafka").await?,
                name: l.name.clone(),
            });
        }
        let http = bind(&config.http_listener, "HTTP").await?;
        let admin_tcp = bind(&config.admin_listener, "admin gRPC").await?;
        // The console is not worth the broker: a taken port (another broker on this host
        // from before the console existed) leaves it off, loudly, not the broker down.
        let console_tcp = if config.console.enable {
            match bind(&config.console.listener, "console").await {
                Ok(tcp) => Some(tcp),
                Err(err) => {
                    error!(error = %err, "the web console is off: its listener could not be bound (set console.listener, or console.enable=false)");
                    None
                }
            }
        } else {
            None
        };
        let console_addr = console_tcp
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()
            .map_err(|source| Error::BindListener {
                what: "console",
                addr: config.console.listener.clone(),
                source,
            })?;
        let kafka_addrs: Vec<SocketAddr> = kafka
            .iter()
            .map(|l| l.tcp.local_addr())
            .collect::<std::io::Result<_>>()
            .map_err(|source| Error::BindListener {
                what: "Kafka",
                addr: "local address".into(),
                source,
            })?;
        let http_addr = http.local_addr().map_err(|source| Error::BindListener {
            what: "HTTP",
            addr: config.http_listener.clone(),
            source,
        })?;
        let admin_addr = admin_tcp
            .local_addr()
            .map_err(|source| Error::BindListener {
                what: "admin gRPC",
                addr: config.admin_listener.clone(),
                source,
            })?;
        // An advertised port of 0 means "the port the listener got" (tests bind port 0).
        let endpoints: Vec<Endpoint> = config
            .advertised_listeners
            .iter()
            .map(|l| {
                let bound = config
                    .listeners
                    .iter()
                    .position(|b| b.name == l.name)
                    .map(|i| kafka_addrs[i].port());
                Endpoint {
                    name: l.name.clone(),
                    host: l.host.clone(),
                    port: if l.port == 0 {
                        bound.unwrap_or(0)
                    } else {
                        l.port
                    },
                }
            })
            .collect();

        let config = Arc::new(config);
        let logs = LogManager::open(fs.clone(), &config.log_dirs, config.broker_id)?;
        let metrics = Arc::new(Metrics::new());
        let (store, owns_store) = match store {
            Some(store) => (store, false),
            None => (open_store(&config, fs.clone(), &metrics.store).await?, true),
        };
        let keys = Keys::new(config.metadata_prefix.clone());
        let cluster_id = cluster_id(store.as_ref(), &keys).await?;
        logs.ensure_cluster_id(&cluster_id)?;

        let (flusher, flusher_threads) = Flusher::start(
            fs.clone(),
            config.flush_threads,
            &config.log_dirs,
            config.flush_bulk_threshold,
        )?;
        let replicas = Arc::new(ReplicaManager::new(config.clone(), logs, flusher)?);
        metrics.attach(replicas.clone());

        let admin_endpoint = crate::rpc::advertised_admin(
            config.admin_advertised_listener.as_deref(),
            admin_addr,
            endpoints.first().map_or("localhost", |e| e.host.as_str()),
        );
        let broker_registration = BrokerRegistration {
            id: config.broker_id,
            endpoints,
            rack: config.rack.clone(),
            admin_endpoint: Some(admin_endpoint),
            shutting_down: false,
        };
        let registered = register_at_start(
            store.as_ref(),
            &keys,
            &broker_registration,
            config.lease_ttl,
        )
        .await?;
        replicas.set_broker_epoch(registered.epoch);
        let (registration_tx, registration) = watch::channel(Some(registered));

        let (shutdown_tx, shutdown) = watch::channel(false);
        let (ready_tx, ready) = watch::channel(false);
        let cache = Arc::new(MetadataCache::default());
        metrics.attach_cluster(cache.clone(), config.broker_id);
        let mut background = Vec::new();
        background.push(tokio::spawn(run_loader(
            store.clone(),
            keys.clone(),
            cache.clone(),
            replicas.clone(),
        )));
        let keeper = Keeper::spawn(
            KeeperSpec {
                store: store.clone(),
                // A store passed in is shared (in-process tests); only one the broker
                // opened from its configuration gets a second connection.
                etcd_endpoints: if owns_store {
                    config.etcd_endpoints.clone()
                } else {
                    Vec::new()
                },
                store_metrics: metrics.store.clone(),
                keys: keys.clone(),
                registration: broker_registration.clone(),
                ttl: config.lease_ttl,
            },
            registration_tx,
        )?;

        let controller = Arc::new(Controller::new(
            config.clone(),
            store.clone(),
            keys.clone(),
            cache.clone(),
            config.broker_id,
            Defaults {
                num_partitions: config.num_partitions,
                replication_factor: config.default_replication_factor,
                unclean_leader_election: config.value("unclean.leader.election.enable")
                    == Some("true"),
            },
        ));
        let (lease_tx, lease_rx) = watch::channel(Some(Incarnation {
            lease: registered.lease,
            broker_epoch: registered.epoch,
        }));
        background.push(tokio::spawn(follow_registration(
            registration.clone(),
            replicas.clone(),
            lease_tx,
        )));
        background.push(tokio::spawn(controller.clone().run(lease_rx)));
        // Forwarding exists in both modes: standalone, the controller is this process.
        let forward = Arc::new(GrpcForward::new(
            config.broker_id,
            cache.clone(),
            replicas.clone(),
        ));
        let controllers = Arc::new(Controllers::new(
            controller.clone(),
            cache.clone(),
            Some(forward.clone()),
        ));
        let admin: Arc<dyn ControllerService> = controllers.clone();
        let admin_service = AdminService::new(
            cache.clone(),
            controller.clone(),
            admin.clone(),
            Arc::new(BrokerAbout {
                broker_id: config.broker_id,
                started_at_ms: crate::clock::now_ms(),
                replicas: replicas.clone(),
            }),
            shutdown.clone(),
        );
        metrics.attach_controller(controller.clone());
        metrics.attach_admin(controllers, forward, admin_service.refused.clone());
        let oversized = admin_service.refused.oversized.clone();
        let replication = Arc::new(ReplicationStats::default());
        let replication_service = ReplicationService::new(
            replicas.clone(),
            cache.clone(),
            replication.clone(),
            shutdown.clone(),
        );
        let fetchers = Fetchers::new(
            config.clone(),
            replicas.clone(),
            cache.clone(),
            replication.clone(),
        );
        metrics.attach_replication(replication.clone(), fetchers.clone());
        background.push(tokio::spawn(fetchers.run(shutdown.clone())));
        background.push(tokio::spawn(
            IsrWriter::new(
                config.clone(),
                replicas.clone(),
                cache.clone(),
                store.clone(),
                keys.clone(),
                replication,
            )
            .run(shutdown.clone()),
        ));
        background.push(tokio::spawn(crate::rpc::serve(
            admin_tcp,
            admin_service,
            replication_service,
            config.admin_max_message_bytes,
            oversized,
            shutdown.clone(),
        )));
        background.push(tokio::spawn(track_readiness(
            cache.clone(),
            registration.clone(),
            controller.subscribe(),
            config.broker_id,
            ready_tx,
            started,
        )));
        background.push(tokio::spawn(periodically(
            config.checkpoint_interval,
            replicas.clone(),
            write_checkpoints,
        )));
        background.push(tokio::spawn(periodically(
            config.retention_check_interval,
            replicas.clone(),
            enforce_retention,
        )));
        background.push(tokio::spawn(periodically(
            config.producer_expiration_check_interval,
            replicas.clone(),
            expire_producers,
        )));
        if config.cleaner_enable {
            background.push(tokio::spawn(periodically(
                config.cleaner_backoff.max(Duration::from_millis(10)),
                replicas.clone(),
                clean_logs,
            )));
        }
        if config.flush_mode == FlushMode::Interval {
            background.push(tokio::spawn(periodically(
                Duration::from_millis(100),
                replicas.clone(),
                ReplicaManager::flush_due,
            )));
        }

        let groups = Arc::new(GroupCoordinator::new(
            CoordinatorConfig {
                limits: GroupLimits {
                    min_session_timeout_ms: config.group_min_session_timeout_ms,
                    max_session_timeout_ms: config.group_max_session_timeout_ms,
                    initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
                    max_size: config.group_max_size,
                    max_protocol_metadata_bytes: MAX_PROTOCOL_METADATA_BYTES,
                },
                offsets_partitions: config.offsets_partitions,
                offsets_replication_factor: config.offsets_replication_factor,
                offsets_segment_bytes: config.offsets_segment_bytes,
                offsets_max_message_bytes: config.socket_request_max_bytes,
                offsets_retention_ms: config.offsets_retention_ms,
                offsets_retention_check: config.offsets_retention_check_interval,
                offset_metadata_max_bytes: config.offset_metadata_max_bytes,
            },
            replicas.clone(),
            cache.clone(),
            admin.clone(),
        ));
        metrics.attach_groups(groups.clone());
        background.push(tokio::spawn(groups.clone().run(shutdown.clone())));
        let ctx = Arc::new(Context {
            config: config.clone(),
            cache: cache.clone(),
            replicas: replicas.clone(),
            admin: admin.clone(),
            metrics: metrics.clone(),
            store: store.clone(),
            producer_ids: Arc::new(ProducerIds::new(keys.clone())),
            groups: groups.clone(),
            shutdown: shutdown.clone(),
        });
        let memory = Arc::new(Semaphore::new(config.queued_max_request_bytes));
        let listeners = kafka
            .into_iter()
            .map(|l| {
                tokio::spawn(listener::run(
                    l,
                    ctx.clone(),
                    memory.clone(),
                    shutdown.clone(),
                    config.shutdown_timeout,
                ))
            })
            .collect();
        background.push(tokio::spawn(crate::http::serve(
            http,
            metrics.clone(),
            ready.clone(),
            shutdown.clone(),
        )));
        if let Some(tcp) = console_tcp {
            let console = Console::new(ConsoleParts {
                config: config.console.clone(),
                broker_id: config.broker_id,
                cache: cache.clone(),
                listener: config
                    .advertised_listeners
                    .first()
                    .or(config.listeners.first())
                    .map(|l| l.name.clone())
                    .unwrap_or_default(),
                store: store.clone(),
                store_kind: if config.etcd_endpoints.is_empty() {
                    "embedded"
                } else {
                    "etcd"
                },
                probe_key: keys.cluster_id(),
            });
            background.push(tokio::spawn(crate::console::serve(
                tcp,
                console,
                shutdown.clone(),
            )));
        }
        info!(
            broker = config.broker_id,
            kafka = ?kafka_addrs,
            http = %http_addr,
            admin = %admin_addr,
            console = ?console_addr,
            cluster_id = %cluster_id,
            flush_mode = ?config.flush_mode,
            "broker started"
        );
        Ok(Broker {
            kafka_addrs,
            http_addr,
            admin_addr,
            console_addr,
            metrics,
            replicas,
            cache,
            shutdown: shutdown_tx,
            ready,
            listeners,
            background,
            flusher_threads: Some(flusher_threads),
            keeper: Some(keeper),
            store,
            owns_store,
            registration,
            broker_registration,
            keys,
            drain: config.shutdown_timeout,
        })
    }

    /// Waits until the broker is ready; false on timeout.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut ready = self.ready.clone();
        tokio::time::timeout(timeout, ready.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Stops gracefully: drains connections, deregisters, syncs every log and writes the
    /// clean-shutdown marker.
    pub async fn shutdown(mut self) -> Result<()> {
        info!("shutting down");
        self.move_leadership_away().await;
        self.shutdown.send_replace(true);
        for listener in self.listeners.drain(..) {
            let _ = tokio::time::timeout(self.drain + Duration::from_secs(1), listener).await;
        }
        for task in self.background.drain(..) {
            task.abort();
        }
        if let Some(keeper) = self.keeper.take() {
            let _ = tokio::task::spawn_blocking(move || keeper.join()).await;
        }
        // Read once the keeper has stopped: it may have registered again just before.
        let lease = (*self.registration.borrow()).map(|r| r.lease);
        if let Some(lease) = lease {
            if let Err(err) = self.store.revoke_lease(lease).await {
                warn!(error = %err, "failed to deregister");
            }
        }
        // The flusher finishes what it has and stops before the logs close: a flush and
        // a close must not both replace a log's small files (they share temporary names).
        self.replicas.flusher().stop();
        if let Some(threads) = self.flusher_threads.take() {
            let _ = tokio::task::spawn_blocking(move || threads.join()).await;
        }
        let replicas = self.replicas.clone();
        let closed = tokio::task::spawn_blocking(move || replicas.shutdown())
            .await
            .map_err(|e| Error::Startup {
                reason: format!("log shutdown task failed: {e}"),
            })?;
        if self.owns_store {
            self.store.close();
        }
        if let Err(err) = &closed {
            error!(error = %err, "logs did not close cleanly; the next start recovers them");
        }
        closed
    }

    /// Controlled shutdown, while everything still serves: asks the controller (through
    /// the registration) to move this broker's leaderships to in-sync followers and take
    /// it out of the ISRs, and waits until the metadata shows it did, at most the
    /// shutdown timeout. Producers then stall for one leader move, not a lease TTL.
    async fn move_leadership_away(&self) {
        let Some(registered) = *self.registration.borrow() else {
            return;
        };
        match announce_shutdown(
            self.store.as_ref(),
            &self.keys,
            &self.broker_registration,
            registered,
        )
        .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                warn!(error = %err, "failed to announce the shutdown; leaderships move when the lease goes");
                return;
            }
        }
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.drain;
        let mut changes = self.cache.subscribe();
        let me = self.broker_registration.id;
        loop {
            let waiting = still_to_move(&self.cache.image(), me);
            if waiting == 0 {
                info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "controlled shutdown: leaderships moved and ISRs left"
                );
                return;
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                warn!(
                    partitions = waiting,
                    "controlled shutdown: the controller did not move everything in time; going anyway"
                );
                return;
            }
        }
    }

    /// Stops at once, as a crash would: no flush, no checkpoint, no marker. For fault
    /// tests, after the file system has been cut or to model kill -9 in process.
    pub fn abort(mut self) {
        for task in self.listeners.drain(..).chain(self.background.drain(..)) {
            task.abort();
        }
        if let Some(keeper) = self.keeper.take() {
            keeper.stop();
        }
        self.replicas.flusher().stop();
        if self.owns_store {
            self.store.close();
        }
    }
}

/// Partitions the controller has still to take from broker `me` before it stops: led
/// here while another live, in-sync broker could lead them, or followed here from the
/// ISR of a live leader.
fn still_to_move(image: &MetadataImage, me: i32) -> usize {
    let eligible = |broker: i32, epoch: i64| {
        broker != me
            && image
                .brokers
                .get(&broker)
                .is_some_and(|b| b.epoch == epoch && !b.registration.shutting_down)
    };
    image
        .partitions
        .values()
        .flat_map(|ps| ps.values())
        .filter(|p| {
            let record = &p.value;
            let in_isr = record.isr.iter().any(|m| m.broker == me);
            if record.leader == me {
                record
                    .isr
                    .iter()
                    .any(|m| eligible(m.broker, m.broker_epoch))
            } else {
                in_isr && record.leader >= 0 && image.brokers.contains_key(&record.leader)
            }
        })
        .count()
}

async fn follow_registration(
    mut registration: watch::Receiver<Option<Registered>>,
    replicas: Arc<ReplicaManager>,
    lease: watch::Sender<Option<Incarnation>>,
) {
    let mut last: Option<Registered> = None;
    loop {
        let current = *registration.borrow_and_update();
        if current != last {
            // A lost lease or a new epoch: step down from everything the old incarnation
            // led, now, not when the controller gets round to it.
            crate::blocking::run(|| replicas.change_incarnation(current.map(|r| r.epoch)));
            last = current;
        }
        lease.send_replace(current.map(|r| Incarnation {
            lease: r.lease,
            broker_epoch: r.epoch,
        }));
        if registration.changed().await.is_err() {
            return;
        }
    }
}

async fn track_readiness(
    cache: Arc<MetadataCache>,
    mut registration: watch::Receiver<Option<Registered>>,
    mut acting: watch::Receiver<Option<i64>>,
    broker: i32,
    ready: watch::Sender<bool>,
    started: Instant,
) {
    let mut changes = cache.subscribe();
    let mut announced = false;
    loop {
        let image = cache.image();
        // The election is visible in the image a moment before the local controller
        // takes office; until it has, admin requests here would get NOT_CONTROLLER.
        let controller_acting =
            image.controller.is_none_or(|(id, _)| id != broker) || acting.borrow().is_some();
        let now_ready = controller_acting
            && (*registration.borrow_and_update())
                .is_some_and(|r| image.revision >= r.epoch && caught_up(&image, broker, r.epoch));
        ready.send_replace(now_ready);
        if now_ready && !announced {
            announced = true;
            info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "broker ready"
            );
        }
        // A re-registration can reach the image (through the watch) before the keeper
        // publishes it here: wake on either, or readiness would wait for an unrelated
        // metadata change.
        let ended = tokio::select! {
            changed = changes.changed() => changed.is_err(),
            changed = acting.changed() => changed.is_err(),
            changed = registration.changed() => changed.is_err(),
        };
        if ended {
            // Whatever stopped (the keeper, the loader, the controller), this broker can
            // no longer tell that it is ready: say it is not.
            ready.send_replace(false);
            return;
        }
    }
}

/// Runs `work` on a blocking thread every `every` (the first run after one period).
async fn periodically(every: Duration, replicas: Arc<ReplicaManager>, work: fn(&ReplicaManager)) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let replicas = replicas.clone();
        let _ = tokio::task::spawn_blocking(move || work(&replicas)).await;
    }
}

fn write_checkpoints(replicas: &ReplicaManager) {
    if let Err(err) = replicas.write_checkpoints() {
        warn!(error = %err, "failed to write checkpoints");
    }
}

fn expire_producers(replicas: &ReplicaManager) {
    replicas.expire_producers(crate::clock::now_ms());
}

fn clean_logs(replicas: &ReplicaManager) {
    replicas.clean_logs(crate::clock::now_ms());
}

fn enforce_retention(replicas: &ReplicaManager) {
    replicas.enforce_retention(crate::clock::now_ms());
}
