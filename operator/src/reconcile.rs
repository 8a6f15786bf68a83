//! Reconcile of one KafkaCluster: decide from the spec and what runs (config valid?
//! scale-down? storage growth?), apply the builders' objects with server-side apply,
//! expand claims, keep the rack map, take one roll step, and write the status when it
//! changed. Every decision is re-made from observed state, so a restarted operator
//! carries on where the last one stopped.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, Node, PersistentVolumeClaim, Pod, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::build::names::{Component, Names, POD_INDEX_LABEL};
use crate::build::statefulset::BrokerSet;
use crate::build::{config, console, etcd, pdb, rack, services, statefulset};
use crate::crd::{KafkaCluster, RollStatus};
use crate::metrics::{ClusterLabels, KindLabels, Metrics, OutcomeLabels};
use crate::quantity::milli_bytes;
use crate::roll::{self, LastRestart, PodState, Step};
use crate::status::{self, Observed};
use crate::tidy;
use crate::watch::Watches;

/// The field manager of every server-side apply.
pub const MANAGER: &str = "runnel-operator";
const REVISION_LABEL: &str = "controller-revision-hash";

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    /// The Kubernetes cluster's DNS domain.
    pub domain: String,
    pub watches: Watches,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    backoff: Backoff,
    /// Per cluster, the broker the roll restarted last, until it is back.
    restarts: Mutex<HashMap<(String, String), LastRestart>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// kube's Client and Recorder have no Debug of their own.
impl Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("domain", &self.domain)
            .field("watches", &self.watches)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub fn new(
        client: Client,
        domain: String,
        watches: Watches,
        recorder: Recorder,
        metrics: Arc<Metrics>,
    ) -> Context {
        Context {
            client,
            domain,
            watches,
            recorder,
            metrics,
            backoff: Backoff::default(),
            restarts: Mutex::new(HashMap::new()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("the KafkaCluster has no namespace")]
    NoNamespace,
    #[error("failed to {action} {kind} {name}: {source}")]
    Api {
        action: &'static str,
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

pub(crate) fn api_error<K: Resource<DynamicType = ()>>(
    action: &'static str,
    name: &str,
) -> impl FnOnce(kube::Error) -> ReconcileError {
    let name = name.to_string();
    move |source| ReconcileError::Api {
        action,
        kind: K::kind(&()).to_string(),
        name,
        source,
    }
}

/// Server-side apply under the operator's field manager. An unchanged object is a no-op
/// for the API (nothing is written, its resourceVersion stays).
async fn apply<K>(api: &Api<K>, object: &K) -> Result<K, ReconcileError>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(api_error::<K>("apply", &name))
}

pub async fn reconcile(
    cluster: Arc<KafkaCluster>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let result = reconcile_cluster(&cluster, &ctx).await;
    let kind = KindLabels {
        kind: "KafkaCluster",
    };
    ctx.metrics
        .reconcile_seconds
        .get_or_create(&kind)
        .observe(started.elapsed().as_secs_f64());
    let outcome = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics
        .reconciles
        .get_or_create(&OutcomeLabels {
            kind: "KafkaCluster",
            outcome,
        })
        .inc();
    let key = (cluster.namespace().unwrap_or_default(), cluster.name_any());
    ctx.backoff.record(key, result.is_ok());
    result
}

/// Transient errors retry after 1 s, doubling per consecutive failure up to 5 minutes.
pub fn error_policy(
    cluster: Arc<KafkaCluster>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    let key = (cluster.namespace().unwrap_or_default(), cluster.name_any());
    let delay = ctx.backoff.delay(&key);
    warn!(cluster = %format!("{}/{}", key.0, key.1), error = %error, retry_in_s = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}

async fn reconcile_cluster(kc: &KafkaCluster, ctx: &Context) -> Result<Action, ReconcileError> {
    let namespace = kc.namespace().ok_or(ReconcileError::NoNamespace)?;
    let name = kc.name_any();
    let labels = ClusterLabels {
        namespace: namespace.clone(),
        name: name.clone(),
    };
    let names = Names::new(&name, &namespace, &ctx.domain);
    let client = &ctx.client;
    if kc.metadata.deletion_timestamp.is_some() {
        // Owner references take everything with it; only our own state goes here, and
        // the claims' owner is settled by storage.deleteClaim as it is now.
        ctx.watches.forget(&namespace, &name);
        ctx.metrics.forget_cluster(&labels);
        if tidy::has_finalizer(kc) {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
            let listed = tidy::list_claims(&claims, &names).await?;
            let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), &namespace);
            let delete_claim = kc.spec.storage.delete_claim;
            let settled =
                tidy::own_claims(&claims, &clusters, kc, &names, &listed, delete_claim, true)
                    .await?;
            if !settled {
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
            tidy::set_finalizer(&clusters, kc, false).await?;
        }
        return Ok(Action::await_change());
    }
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);

    let existing = statefulsets
        .get_opt(&names.statefulset())
        .await
        .map_err(api_error::<StatefulSet>("read", &names.statefulset()))?;
    let existing_spec = existing.as_ref().and_then(|s| s.spec.as_ref());

    // --- decide -------------------------------------------------------------------------
    let mut refused: Vec<(&str, String)> = Vec::new();
    let problems = config::check(&kc.spec.config);
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        refused.push(("InvalidConfig", list.join("; ")));
    }
    let console_problems = console::check(&kc.spec.console);
    if !console_problems.is_empty() {
        let list: Vec<String> = console_problems.iter().map(ToString::to_string).collect();
        refused.push(("InvalidConsole", list.join("; ")));
    }

    // How many brokers exist: never judged by the StatefulSet alone (deleted with
    // --cascade=orphan and recreated, it would otherwise be made smaller than the pods,
    // claims and registered brokers show).
    let pod_list = pods
        .list(&ListParams::default().labels(&names.selector_string(Component::Broker)))
        .await
        .map_err(api_error::<Pod>("list", &names.statefulset()))?;
    let pod_states: Vec<PodState> = pod_list.items.iter().filter_map(pod_state).collect();
    // Brokers' and managed etcd's claims: the latter only for their owner (tidy.rs).
    let claim_list = tidy::list_claims(&claims, &names).await?;
    let claim_ordinal = |c: &PersistentVolumeClaim| -> Option<i32> {
        c.name_any()
            .strip_prefix(&format!("data-{}-", names.statefulset()))?
            .parse()
            .ok()
    };
    let registered = ctx
        .watches
        .view_for_status(&namespace, &name)
        .and_then(|v| v.brokers.keys().max().copied());
    let current = [
        existing_spec.and_then(|s| s.replicas).unwrap_or(0),
        pod_states.iter().map(|p| p.ordinal + 1).max().unwrap_or(0),
        claim_list
            .iter()
            .filter_map(claim_ordinal)
            .map(|o| o + 1)
            .max()
            .unwrap_or(0),
        registered.map_or(0, |id| id + 1),
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    let running = kc.spec.replicas.max(current);
    let scale_blocked = (kc.spec.replicas < current).then(|| {
        format!(
            "scaling down from {current} to {} brokers is not supported yet (moving partitions off a \
             broker comes with partition reassignment); {current} brokers keep running",
            kc.spec.replicas
        )
    });

    // Claim templates are immutable: keep the existing one; growth expands the claims.
    let template = existing_spec
        .and_then(|s| s.volume_claim_templates.as_ref())
        .and_then(|t| t.first())
        .and_then(|c| c.spec.as_ref());
    let claim_class = match template {
        Some(t) => t.storage_class_name.clone(),
        None => kc.spec.storage.class.clone(),
    };
    let claim_size = template
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage").cloned())
        .unwrap_or_else(|| kc.spec.storage.size.clone());
    let wanted = &kc.spec.storage.size;
    let live_claims: Vec<&PersistentVolumeClaim> = claim_list
        .iter()
        .filter(|c| claim_ordinal(c).is_some())
        .collect();
    let requested = |c: &PersistentVolumeClaim| requested_size(c).and_then(|q| milli_bytes(&q.0));
    // The largest size the volumes have (claims or template), in bytes and as written.
    let largest = live_claims
        .iter()
        .copied()
        .filter_map(requested_size)
        .chain(Some(&claim_size))
        .filter_map(|q| Some((milli_bytes(&q.0)?, q.0.as_str())))
        .max_by_key(|(m, _)| *m);
    let largest_text = largest.map(|(_, t)| t.to_string()).unwrap_or_default();
    let largest = largest.map(|(m, _)| m);
    let mut expand = false;
    match (milli_bytes(&wanted.0), largest) {
        (None, _) => refused.push((
            "InvalidStorageSize",
            format!("storage.size {:?} is not a quantity", wanted.0),
        )),
        (Some(w), Some(l)) if w < l => refused.push((
            "StorageDecrease",
            format!(
                "storage.size {} is below what the volumes have (the largest claim or the \
                 claim template, {}): volumes cannot shrink",
                wanted.0, largest_text
            ),
        )),
        (Some(w), Some(l)) => {
            expand = w > l
                || live_claims
                    .iter()
                    .copied()
                    .any(|c| requested(c).is_some_and(|r| r < w))
        }
        (Some(_), None) => {}
    }

    let endpoints = match (&kc.spec.etcd.endpoints, &kc.spec.etcd.managed) {
        (Some(endpoints), _) => endpoints.clone(),
        (None, Some(managed)) => names.etcd_client_urls(managed.members),
        (None, None) => Vec::new(),
    };
    let properties = config::server_properties(kc, &names, &endpoints);
    let config_hash = config::config_hash(&properties);

    // --- apply ----------------------------------------------------------------------------
    // The rack map is kept whatever else is refused: a restarting pod waits for it.
    if kc.spec.rack.is_some() {
        let entries = rack_entries(client, &pod_list.items, kc).await?;
        apply(
            &Api::namespaced(client.clone(), &namespace),
            &rack::racks_config_map(kc, &names, entries),
        )
        .await?;
    }
    let config_valid = problems.is_empty() && console_problems.is_empty();
    if config_valid {
        apply::<ServiceAccount>(
            &Api::namespaced(client.clone(), &namespace),
            &rack::service_account(kc, &names),
        )
        .await?;
        apply::<Role>(
            &Api::namespaced(client.clone(), &namespace),
            &rack::role(kc, &names),
        )
        .await?;
        apply::<RoleBinding>(
            &Api::namespaced(client.clone(), &namespace),
            &rack::role_binding(kc, &names),
        )
        .await?;
        apply::<ConfigMap>(
            &Api::namespaced(client.clone(), &namespace),
            &config::config_map(kc, &names, &properties),
        )
        .await?;
        let service_api: Api<Service> = Api::namespaced(client.clone(), &namespace);
        apply(&service_api, &services::headless_service(kc, &names)).await?;
        apply(&service_api, &services::bootstrap_service(kc, &names)).await?;
        let pdb_api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &namespace);
        apply(
            &pdb_api,
            &pdb::disruption_budget(kc, &names, Component::Broker),
        )
        .await?;
        if let Some(managed) = &kc.spec.etcd.managed {
            let etcd_size = statefulsets
                .get_opt(&names.etcd())
                .await
                .map_err(api_error::<StatefulSet>("read", &names.etcd()))?
                .and_then(|s| s.spec)
                .and_then(|s| s.volume_claim_templates)
                .and_then(|t| t.into_iter().next())
                .and_then(|c| c.spec)
                .and_then(|s| s.resources)
                .and_then(|r| r.requests)
                .and_then(|mut r| r.remove("storage"))
                .unwrap_or_else(|| managed.storage.size.clone());
            apply(&service_api, &etcd::etcd_service(kc, &names)).await?;
            apply(
                &statefulsets,
                &etcd::etcd_statefulset(kc, &names, managed, &etcd_size),
            )
            .await?;
            apply(
                &pdb_api,
                &pdb::disruption_budget(kc, &names, Component::Etcd),
            )
            .await?;
        }
    }
    let refusing_storage = refused
        .iter()
        .any(|(r, _)| r.starts_with("Storage") || *r == "InvalidStorageSize");
    if expand && !refusing_storage {
        for claim in &live_claims {
            // A class without allowVolumeExpansion refuses this: a condition, and the rest
            // of the reconcile (status included) goes on.
            if let Err(err) = expand_claim(&claims, claim, wanted, ctx, kc).await {
                refused.push(("StorageExpansionFailed", err.to_string()));
                break;
            }
        }
    }
    // A StatefulSet deleted with its pods (background cascade) leaves them terminating,
    // still controlled by the deleted one. A new StatefulSet made meanwhile cannot create
    // pods of the same names and backs off ever longer (nothing wakes it when they go:
    // their owner is not it); so it is made only once they are gone. Pods orphaned on
    // purpose (--cascade=orphan) have no controller and are adopted at once.
    let old_pods_going = existing.is_none()
        && pod_list.items.iter().any(|p| {
            p.owner_references()
                .iter()
                .any(|r| r.kind == "StatefulSet" && r.controller == Some(true))
        });
    let sts = if config_valid && !old_pods_going {
        let set = BrokerSet {
            replicas: running,
            claim_size,
            claim_class,
            config_hash: config_hash.clone(),
        };
        Some(apply(&statefulsets, &statefulset::statefulset(kc, &names, &set)).await?)
    } else {
        existing
    };

    // --- observe -----------------------------------------------------------------------
    ctx.watches.ensure(&namespace, &name, &names.admin_url());

    // --- roll ------------------------------------------------------------------------------
    // The restart to check before the next one: this process's own record (status read
    // from the cache can lag the last write), else the one status carries (a new leader).
    let key = (namespace.clone(), name.clone());
    let last = lock(&ctx.restarts).get(&key).copied().or_else(|| {
        kc.status
            .as_ref()
            .and_then(|s| s.roll.as_ref())
            .and_then(LastRestart::from_status)
    });
    let mut roll_status = None;
    // Whether the StatefulSet controller has seen the template just applied: pods it
    // creates from now on are the new revision and mount the current ConfigMap.
    let template_seen = sts.as_ref().is_some_and(|s| {
        s.status.as_ref().and_then(|st| st.observed_generation) >= s.metadata.generation
    });
    if let Some(sts) = &sts {
        let update_revision = sts.status.as_ref().and_then(|s| s.update_revision.clone());
        let outdated = pod_states
            .iter()
            .filter(|p| p.revision.is_some() && p.revision != update_revision)
            .count() as i32;
        let view = ctx.watches.current_view(&namespace, &name);
        // A restart that has been checked (back, in every ISR) no longer guards anything.
        if let (Some(l), Some(v), Some(revision)) = (&last, &view, &update_revision) {
            if roll::not_back(l, revision, &pod_states, v).is_none() {
                lock(&ctx.restarts).remove(&key);
            }
        }
        if let (Some(revision), true) = (update_revision, outdated > 0) {
            let step = if template_seen {
                roll::next_step(
                    &revision,
                    running,
                    &pod_states,
                    view.as_deref(),
                    last.as_ref(),
                )
            } else {
                Step::Wait(
                    "the StatefulSet controller has not seen the new template yet".to_string(),
                )
            };
            let mut next = RollStatus {
                revision: revision.clone(),
                done: pod_states.len() as i32 - outdated,
                total: running,
                current: last.map(|l| l.broker),
                current_epoch: last.map(|l| l.epoch),
                waiting_for: None,
            };
            match step {
                Step::Done => {}
                Step::Wait(reason) => next.waiting_for = Some(reason),
                Step::Restart(ordinal) => {
                    let epoch = view
                        .as_ref()
                        .and_then(|v| v.brokers.get(&ordinal))
                        .map_or(0, |b| b.epoch);
                    let restart = LastRestart {
                        broker: ordinal,
                        epoch,
                    };
                    next.current = Some(ordinal);
                    next.current_epoch = Some(epoch);
                    next.waiting_for = Some(format!("broker {ordinal} to stop and start again"));
                    // The intent is recorded before the pod goes, so a new leader after a
                    // crash here still checks this broker before restarting another.
                    record_intent(kc, &next, ctx).await?;
                    lock(&ctx.restarts).insert(key.clone(), restart);
                    restart_broker(&pods, &pod_list.items, ordinal, &names, ctx, kc).await?;
                }
            }
            roll_status = Some(next);
        } else if let Some(l) = lock(&ctx.restarts).get(&key) {
            // The roll is done, but its last restart is not checked yet: keep it in status
            // so a new leader still waits for it.
            roll_status = kc
                .status
                .as_ref()
                .and_then(|s| s.roll.clone())
                .filter(|r| r.current == Some(l.broker));
        }
    }

    // --- status -------------------------------------------------------------------------
    let view = ctx.watches.view_for_status(&namespace, &name);
    let in_set: Vec<&PodState> = pod_states.iter().filter(|p| p.ordinal < running).collect();
    let observed = Observed {
        running,
        pods: in_set.len() as i32,
        ready_pods: in_set.iter().filter(|p| p.ready && !p.terminating).count() as i32,
        view: view.as_deref(),
        roll: roll_status.clone(),
        scale_blocked,
        refused: (!refused.is_empty()).then(|| {
            let reasons: Vec<&str> = refused.iter().map(|(r, _)| *r).collect();
            let messages: Vec<String> = refused.iter().map(|(_, m)| m.clone()).collect();
            (reasons.join(","), messages.join("; "))
        }),
        storage_size: if refused.iter().any(|(r, _)| r.contains("Storage")) {
            kc.status.as_ref().and_then(|s| s.storage_size.clone())
        } else {
            Some(wanted.clone())
        },
        bootstrap: Some(names.bootstrap_address(kc.spec.listeners.port)),
    };
    let next = status::cluster_status(kc, &names, &observed, &Time(Timestamp::now()));
    record_gauges(ctx, &labels, &next);
    announce_transitions(ctx, kc, &next).await;
    if kc.status.as_ref() != Some(&next) {
        let api: Api<KafkaCluster> = Api::namespaced(client.clone(), &namespace);
        let body = serde_json::json!({ "status": status_patch(&next) });
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(api_error::<KafkaCluster>("write status of", &name))?;
        ctx.metrics
            .status_writes
            .get_or_create(&KindLabels {
                kind: "KafkaCluster",
            })
            .inc();
    }
    // --- tidy --------------------------------------------------------------------------
    // After the status, so a failure here (retried with backoff) never hides the cluster's
    // state.
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), &namespace);
    let delete_claim = kc.spec.storage.delete_claim;
    let finalized = tidy::has_finalizer(kc);
    if delete_claim && !finalized {
        // The finalizer before any claim names the cluster as its owner; the update
        // triggers the reconcile that adds the references.
        tidy::set_finalizer(&clusters, kc, true).await?;
    } else {
        let settled = tidy::own_claims(
            &claims,
            &clusters,
            kc,
            &names,
            &claim_list,
            delete_claim,
            false,
        )
        .await?;
        if !delete_claim && finalized && settled {
            tidy::set_finalizer(&clusters, kc, false).await?;
        }
    }
    if config_valid && template_seen {
        tidy::collect_configs(
            &Api::namespaced(client.clone(), &namespace),
            &pods,
            &names,
            &names.config_map(&config_hash),
        )
        .await?;
    }

    // While the watch stream is down nothing else triggers a reconcile, and the status
    // still shows the last view: look again soon, as while anything is unsettled.
    let settled = roll_status.is_none()
        && status::condition_status(&next.conditions, status::READY) == Some("True")
        && ctx.watches.current_view(&namespace, &name).is_some();
    Ok(Action::requeue(Duration::from_secs(if settled {
        60
    } else {
        5
    })))
}

/// The status as a JSON merge patch: every optional field the status no longer has is
/// written as null, so the patch removes it (a merge patch keeps what it does not name;
/// lists are replaced whole). Both status writes are merge patches: mixing them with
/// server-side apply split the roll's fields between two managers, and removing the roll
/// then left half of it behind (which the schema refused).
fn status_patch(status: &crate::crd::KafkaClusterStatus) -> serde_json::Value {
    let mut value = with_nulls(
        status,
        &[
            "observedGeneration",
            "bootstrap",
            "controller",
            "storageSize",
            "roll",
            "console",
        ],
    );
    if let (Some(roll), Some(fields)) = (status.roll.as_ref(), value.as_object_mut()) {
        fields.insert("roll".to_string(), roll_patch(roll));
    }
    value
}

fn roll_patch(roll: &RollStatus) -> serde_json::Value {
    with_nulls(roll, &["current", "currentEpoch", "waitingFor"])
}

/// `value` as JSON with each of `optional` present, as null where the value has none.
pub(crate) fn with_nulls(value: &impl Serialize, optional: &[&str]) -> serde_json::Value {
    let mut json = serde_json::to_value(value).unwrap_or_default();
    if let Some(fields) = json.as_object_mut() {
        for key in optional {
            fields.entry(*key).or_insert(serde_json::Value::Null);
        }
    }
    json
}

/// Writes the roll's next restart into status before it happens, on the version of the
/// KafkaCluster this reconcile read (a 409 means the cache was behind: retry on fresh data).
async fn record_intent(
    kc: &KafkaCluster,
    roll: &RollStatus,
    ctx: &Context,
) -> Result<(), ReconcileError> {
    let name = kc.name_any();
    let api: Api<KafkaCluster> =
        Api::namespaced(ctx.client.clone(), &kc.namespace().unwrap_or_default());
    let body = serde_json::json!({
        "metadata": { "resourceVersion": kc.metadata.resource_version },
        "status": { "roll": roll_patch(roll) },
    });
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map_err(api_error::<KafkaCluster>(
            "record the roll's next restart in",
            &name,
        ))?;
    Ok(())
}

/// A pod as the roll sees it; None for a pod without an ordinal.
fn pod_state(pod: &Pod) -> Option<PodState> {
    let labels = pod.metadata.labels.as_ref();
    let ordinal = labels
        .and_then(|l| l.get(POD_INDEX_LABEL))
        .and_then(|v| v.parse().ok())
        .or_else(|| pod.name_any().rsplit('-').next()?.parse().ok())?;
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    Some(PodState {
        ordinal,
        revision: labels.and_then(|l| l.get(REVISION_LABEL)).cloned(),
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
    })
}

/// Deletes one broker's pod (only that pod: the uid is a precondition, so a replacement
/// made meanwhile is never deleted by name).
async fn restart_broker(
    pods: &Api<Pod>,
    listed: &[Pod],
    ordinal: i32,
    names: &Names,
    ctx: &Context,
    kc: &KafkaCluster,
) -> Result<(), ReconcileError> {
    let pod_name = names.pod(ordinal);
    let uid = listed
        .iter()
        .find(|p| p.name_any() == pod_name)
        .and_then(|p| p.metadata.uid.clone());
    // Through the Eviction API, so the PodDisruptionBudget has the last word: a node drain
    // that took another broker meanwhile makes this a 429 and the roll waits.
    let params = EvictParams {
        delete_options: Some(DeleteParams {
            preconditions: Some(Preconditions {
                uid,
                resource_version: None,
            }),
            ..DeleteParams::default()
        }),
        ..EvictParams::default()
    };
    match pods.evict(&pod_name, &params).await {
        Ok(_) => {}
        // Gone or replaced already (404, 409), or the budget refuses now (429): the next
        // reconcile decides again from what it sees.
        Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409 | 429) => {
            info!(cluster = %names.cluster, broker = ordinal, code = status.code, "rolling: restart not possible now");
            return Ok(());
        }
        Err(e) => return Err(api_error::<Pod>("evict", &pod_name)(e)),
    }
    ctx.metrics.pod_restarts.inc();
    info!(cluster = %names.cluster, namespace = %names.namespace, broker = ordinal, "rolling: restarting broker");
    publish(
        ctx,
        kc,
        EventType::Normal,
        "RestartingBroker",
        "Roll",
        format!("restarting broker {ordinal} ({pod_name}) onto the new revision"),
    )
    .await;
    Ok(())
}

/// The storage a claim requests.
fn requested_size(claim: &PersistentVolumeClaim) -> Option<&Quantity> {
    claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
}

async fn expand_claim(
    claims: &Api<PersistentVolumeClaim>,
    claim: &PersistentVolumeClaim,
    size: &Quantity,
    ctx: &Context,
    kc: &KafkaCluster,
) -> Result<(), ReconcileError> {
    let name = claim.name_any();
    let current = requested_size(claim);
    if current.and_then(|q| milli_bytes(&q.0)) >= milli_bytes(&size.0) {
        return Ok(());
    }
    let body = serde_json::json!({ "spec": { "resources": { "requests": { "storage": size } } } });
    claims
        .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map_err(api_error::<PersistentVolumeClaim>("expand", &name))?;
    publish(
        ctx,
        kc,
        EventType::Normal,
        "ExpandingVolume",
        "Expand",
        format!(
            "{name}: {} -> {}",
            current.map_or("?", |q| q.0.as_str()),
            size.0
        ),
    )
    .await;
    Ok(())
}

/// pod name -> "node=rack" for every scheduled broker pod.
async fn rack_entries(
    client: &Client,
    pods: &[Pod],
    kc: &KafkaCluster,
) -> Result<BTreeMap<String, String>, ReconcileError> {
    let key = kc
        .spec
        .rack
        .as_ref()
        .map(|r| r.topology_key.clone())
        .unwrap_or_default();
    let nodes: Api<Node> = Api::all(client.clone());
    let mut zones: HashMap<String, String> = HashMap::new();
    let mut entries = BTreeMap::new();
    for pod in pods {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        if !zones.contains_key(&node) {
            let zone = nodes
                .get_opt(&node)
                .await
                .map_err(api_error::<Node>("read", &node))?
                .and_then(|n| n.metadata.labels)
                .and_then(|l| l.get(&key).cloned())
                .unwrap_or_default();
            zones.insert(node.clone(), zone);
        }
        entries.insert(pod.name_any(), rack::entry(&node, &zones[&node]));
    }
    Ok(entries)
}

fn record_gauges(ctx: &Context, labels: &ClusterLabels, status: &crate::crd::KafkaClusterStatus) {
    let m = &ctx.metrics;
    m.brokers
        .get_or_create(labels)
        .set(i64::from(status.replicas));
    m.ready_brokers
        .get_or_create(labels)
        .set(i64::from(status.ready_replicas));
    m.under_replicated
        .get_or_create(labels)
        .set(i64::from(status.under_replicated_partitions));
    m.offline
        .get_or_create(labels)
        .set(i64::from(status.offline_partitions));
    m.controller_present
        .get_or_create(labels)
        .set(i64::from(status.controller.is_some()));
}

/// Events for conditions that just turned true (or changed their message), so
/// `kubectl describe` and event watchers see refusals and degradation as they happen.
async fn announce_transitions(
    ctx: &Context,
    kc: &KafkaCluster,
    next: &crate::crd::KafkaClusterStatus,
) {
    let previous = kc.status.as_ref();
    for (type_, kind) in [
        (status::REFUSED, EventType::Warning),
        (status::SCALE_BLOCKED, EventType::Warning),
        (status::DEGRADED, EventType::Warning),
    ] {
        let Some(now) = next.conditions.iter().find(|c| c.type_ == type_) else {
            continue;
        };
        let before = previous.and_then(|s| s.conditions.iter().find(|c| c.type_ == type_));
        // Degraded's message changes with every count during a roll: an Event only when
        // its status changes; refusals also when what is refused changes.
        let changed = before.is_none_or(|b| {
            b.status != now.status || (type_ != status::DEGRADED && b.message != now.message)
        });
        if !changed {
            continue;
        }
        if now.status == "True" {
            publish(ctx, kc, kind, &now.reason, type_, now.message.clone()).await;
        } else if type_ == status::DEGRADED && before.is_some_and(|b| b.status == "True") {
            publish(
                ctx,
                kc,
                EventType::Normal,
                "Recovered",
                type_,
                now.message.clone(),
            )
            .await;
        }
    }
}

async fn publish(
    ctx: &Context,
    kc: &KafkaCluster,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &kc.object_ref(&())).await {
        warn!(error = %err, reason, "failed to publish an event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::KafkaClusterStatus;

    #[test]
    fn a_status_patch_removes_what_the_status_no_longer_has() {
        let done = status_patch(&KafkaClusterStatus::default());
        assert_eq!(done["roll"], serde_json::Value::Null);
        assert_eq!(done["controller"], serde_json::Value::Null);
        // A console disabled since the last write leaves status.
        assert_eq!(done["console"], serde_json::Value::Null);
        let rolling = status_patch(&KafkaClusterStatus {
            roll: Some(RollStatus {
                revision: "r".to_string(),
                done: 1,
                total: 3,
                current: Some(2),
                ..RollStatus::default()
            }),
            ..KafkaClusterStatus::default()
        });
        assert_eq!(rolling["roll"]["current"], 2);
        assert_eq!(rolling["roll"]["waitingFor"], serde_json::Value::Null);
        assert_eq!(rolling["roll"]["done"], 1);
    }
}
