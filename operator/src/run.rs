//! `runnel-operator run`: wait for the leader lease, then reconcile every KafkaCluster
//! until SIGTERM (which hands the lease over at once) or until the lease is lost (which
//! ends the process: Kubernetes restarts it as a standby).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::build::names::{Names, MANAGED_BY};
use crate::crd::{KafkaCluster, Topic};
use crate::lease::{Election, LeaseError};
use crate::metrics::{ClusterLabels, Metrics};
use crate::reconcile::{error_policy, reconcile, Context};
use crate::topic_reconcile::{self, TopicContext};
use crate::watch::{Triggers, Watches};

#[derive(Debug, Clone)]
pub struct RunArgs {
    pub metrics_address: SocketAddr,
    /// The Kubernetes cluster's DNS domain.
    pub domain: String,
    /// None: no leader election (one replica only, or development).
    pub election: Option<Election>,
    /// This replica's name in Events.
    pub identity: String,
    /// How often a settled Topic is compared with the cluster (config drift).
    pub topic_resync: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("failed to connect to the Kubernetes API: {0}")]
    Connect(#[from] crate::kubeclient::ConnectError),
    #[error("the CRD {0} is not installed: install the chart, or `kubectl apply -f crds/`")]
    CrdMissing(&'static str),
    #[error("failed to list Runnel resources: {0}")]
    List(#[source] kube::Error),
    #[error("failed to serve metrics on {address}: {source}")]
    Http {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lease(#[from] LeaseError),
}

pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let client = crate::kubeclient::connect().await?;
    check_crds(&client).await?;
    let metrics = Arc::new(Metrics::new());
    let listener = tokio::net::TcpListener::bind(args.metrics_address)
        .await
        .map_err(|source| RunError::Http {
            address: args.metrics_address,
            source,
        })?;
    tokio::spawn(crate::http::serve(listener, metrics.clone()));
    let stop = stop_signal();

    if let Some(election) = &args.election {
        let mut stopping = stop.clone();
        tokio::select! {
            () = election.acquire(&client) => {}
            _ = stopping.wait_for(|s| *s) => return Ok(()),
        }
    }
    metrics.leader.set(1);
    info!(identity = %args.identity, "reconciling KafkaClusters and Topics");

    let (trigger, triggers) = mpsc::unbounded_channel::<ObjectRef<KafkaCluster>>();
    let (topic_trigger, topic_triggers) = mpsc::unbounded_channel::<ObjectRef<KafkaCluster>>();
    let ctx = Arc::new(Context::new(
        client.clone(),
        args.domain.clone(),
        Watches::new(Triggers {
            cluster: trigger,
            topics: topic_trigger,
        }),
        Recorder::new(
            client.clone(),
            Reporter {
                controller: MANAGED_BY.to_string(),
                instance: Some(args.identity.clone()),
            },
        ),
        metrics.clone(),
    ));
    let triggers = futures_util::stream::unfold(triggers, |mut rx| async move {
        rx.recv().await.map(|target| (target, rx))
    });
    let managed = format!("app.kubernetes.io/managed-by={MANAGED_BY}");
    let controller = Controller::new(
        Api::<KafkaCluster>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(
        Api::<StatefulSet>::all(client.clone()),
        watcher::Config::default().labels(&managed),
    )
    // Pod readiness and restarts drive the roll and the rack map.
    .watches(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default()
            .labels("app.kubernetes.io/name=runnel,app.kubernetes.io/component=broker"),
        |pod| {
            let namespace = pod.namespace().unwrap_or_default();
            pod.labels()
                .get("app.kubernetes.io/instance")
                .map(|name| ObjectRef::new(name).within(&namespace))
        },
    )
    .reconcile_on(triggers);
    let store = controller.store();
    let mut stopping = stop.clone();
    let running = controller
        .graceful_shutdown_on(async move {
            let _ = stopping.wait_for(|s| *s).await;
        })
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});

    // Topics: reconciled on their own changes, their cluster's, and every change in their
    // cluster's watch view (leadership, ISR), which the view's debounce paces.
    let topics = Controller::new(
        Api::<Topic>::all(client.clone()),
        watcher::Config::default(),
    );
    let topic_store = topics.store();
    let of_cluster = {
        let topic_store = topic_store.clone();
        move |cluster: &ObjectRef<KafkaCluster>| -> Vec<ObjectRef<Topic>> {
            topic_store
                .state()
                .iter()
                .filter(|t| {
                    t.namespace() == cluster.namespace && t.spec.cluster_ref == cluster.name
                })
                .map(|t| ObjectRef::from_obj(t.as_ref()))
                .collect()
        }
    };
    let view_changes = {
        let of_cluster = of_cluster.clone();
        futures_util::stream::unfold(topic_triggers, |mut rx| async move {
            rx.recv().await.map(|target| (target, rx))
        })
        .flat_map(move |cluster| futures_util::stream::iter(of_cluster(&cluster)))
    };
    let topic_ctx = Arc::new(TopicContext::new(
        ctx.clone(),
        topic_store,
        store.clone(),
        args.topic_resync,
    ));
    let mut stopping = stop.clone();
    let topics_running = topics
        .watches(
            Api::<KafkaCluster>::all(client.clone()),
            watcher::Config::default(),
            move |cluster| of_cluster(&ObjectRef::from_obj(&cluster)),
        )
        .reconcile_on(view_changes)
        .graceful_shutdown_on(async move {
            let _ = stopping.wait_for(|s| *s).await;
        })
        .run(
            topic_reconcile::reconcile,
            topic_reconcile::error_policy,
            topic_ctx.clone(),
        )
        .for_each(|_| async {});

    // Streams and series of deleted clusters (reconcile never sees a deleted object).
    let sweeper = {
        let ctx = ctx.clone();
        let topic_ctx = topic_ctx.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                let gone = ctx.watches.retain(|namespace, name| {
                    store.get(&ObjectRef::new(name).within(namespace)).is_some()
                });
                for (namespace, name) in gone {
                    info!(%namespace, %name, "cluster deleted; its watch stream stops");
                    let names = Names::new(&name, &namespace, &ctx.domain);
                    topic_ctx.admin.forget(&names.admin_url());
                    ctx.metrics
                        .forget_cluster(&ClusterLabels { namespace, name });
                }
            }
        }
    };

    let lost = async {
        match &args.election {
            Some(election) => Some(election.hold(&client).await),
            None => std::future::pending().await,
        }
    };
    // The two controllers run side by side and both shut down gracefully on SIGTERM:
    // neither is dropped in the middle of a reconcile (a roll step) when the other ends.
    let running = async {
        futures_util::future::join(running, topics_running).await;
    };
    let outcome = tokio::select! {
        () = running => Ok(()),
        () = sweeper => Ok(()),
        Some(err) = lost => Err(err),
    };
    metrics.leader.set(0);
    match outcome {
        Ok(()) => {
            if let Some(election) = &args.election {
                election.release(&client).await;
            }
            info!("stopped");
            Ok(())
        }
        Err(err) => {
            error!(error = %err, "leadership lost; exiting so a standby takes over");
            Err(err.into())
        }
    }
}

async fn check_crds(client: &Client) -> Result<(), RunError> {
    let found = |result: Result<(), kube::Error>, crd: &'static str| match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(RunError::CrdMissing(crd)),
        Err(err) => Err(RunError::List(err)),
    };
    let first = ListParams::default().limit(1);
    found(
        Api::<KafkaCluster>::all(client.clone())
            .list(&first)
            .await
            .map(|_| ()),
        "kafkaclusters.runnel.dev",
    )?;
    found(
        Api::<Topic>::all(client.clone())
            .list(&first)
            .await
            .map(|_| ()),
        "topics.runnel.dev",
    )
}

/// Turns true at SIGTERM or SIGINT.
fn stop_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(err) => {
                    warn!(error = %err, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        info!("stopping");
        let _ = tx.send(true);
    });
    rx
}
