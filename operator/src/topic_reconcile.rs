//! Reconcile of one Topic: find its cluster, settle who owns the topic name, sync the
//! spec with the cluster through its admin service (create, adopt, add partitions, set
//! config, refuse what cannot be done), and write the status from the cluster's watch
//! view. A finalizer carries out `deletionPolicy`.
//!
//! The spec is synced when it changed, when the watch view disagrees with the last
//! description, and otherwise once a minute (config drift shows only in a description);
//! the watch-triggered reconciles between those only recompute status from the view, so
//! a leadership change costs no admin call and at most one status write per Topic per
//! debounce window.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use crate::admin::{Admin, AdminError, Refused, TOPIC_ALREADY_EXISTS};
use crate::backoff::Backoff;
use crate::build::names::Names;
use crate::crd::{ConfigDrift, KafkaCluster, Topic, TopicStatus};
use crate::metrics::{KindLabels, OutcomeLabels, TopicLabels};
use crate::reconcile::{with_nulls, Context};
use crate::status::condition_status;
use crate::topic_plan::{self, LiveTopic, Refusal};
use crate::topic_status::{self, Blocked, TopicObserved, DEGRADED};
use crate::view::ClusterView;
use crate::watch::DEBOUNCE;

pub const FINALIZER: &str = "runnel.dev/topic";

/// What the last sync of one Topic found and decided, kept between reconciles. Once this
/// process has synced a Topic, this (not the Topic's cached status, which can lag this
/// process's own last write) is what the next status is computed from.
#[derive(Debug, Clone)]
struct Synced {
    generation: Option<i64>,
    at: Instant,
    /// The newest metadata revision an answer of the sync reflected: a description or a
    /// watch view older than this does not show the sync's own changes yet.
    revision: i64,
    live: Option<LiveTopic>,
    refused: Vec<Refusal>,
    drift: Vec<ConfigDrift>,
    managed: BTreeMap<String, String>,
    adopted: Option<BTreeMap<String, String>>,
}

/// What every Topic reconcile shares.
pub struct TopicContext {
    /// The KafkaCluster controller's context: client, watch views, events, metrics.
    pub shared: Arc<Context>,
    /// Every Topic, for the ownership check between Topics naming the same topic.
    pub store: Store<Topic>,
    /// Every KafkaCluster (the cluster controller's cache).
    pub clusters: Store<KafkaCluster>,
    pub admin: Admin,
    /// How often a settled Topic's spec is compared with a fresh description.
    pub resync: Duration,
    synced: Mutex<HashMap<(String, String), Synced>>,
    /// The status this process last wrote per Topic, and when: newer than the cached
    /// Topic right after a write, and the pace of the next one.
    written: Mutex<HashMap<(String, String), Written>>,
    backoff: Backoff,
}

#[derive(Debug, Clone)]
struct Written {
    status: TopicStatus,
    at: Instant,
}

impl std::fmt::Debug for TopicContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicContext")
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

impl TopicContext {
    pub fn new(
        shared: Arc<Context>,
        store: Store<Topic>,
        clusters: Store<KafkaCluster>,
        resync: Duration,
    ) -> TopicContext {
        TopicContext {
            shared,
            store,
            clusters,
            admin: Admin::default(),
            resync,
            synced: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
            backoff: Backoff::default(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("the Topic has no namespace")]
    NoNamespace,
    #[error("the KafkaCluster cache stopped before its first list")]
    ClustersUnknown,
    #[error("topic {topic} was described at revision {seen}, behind this operator's own change at {wanted}")]
    Behind {
        topic: String,
        seen: i64,
        wanted: i64,
    },
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("failed to {action} {name}: {source}")]
    Api {
        action: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("the cluster refused to {action} topic {topic} (error {code}): {message}")]
    Kafka {
        action: &'static str,
        topic: String,
        code: i32,
        message: String,
    },
}

fn api_error(action: &'static str, name: &str) -> impl FnOnce(kube::Error) -> TopicError {
    let name = name.to_string();
    move |source| TopicError::Api {
        action,
        name,
        source,
    }
}

pub type ReconcileResult = Result<Action, finalizer::Error<TopicError>>;

pub async fn reconcile(topic: Arc<Topic>, ctx: Arc<TopicContext>) -> ReconcileResult {
    let started = Instant::now();
    let namespace = topic.namespace().unwrap_or_default();
    let api: Api<Topic> = Api::namespaced(ctx.shared.client.clone(), &namespace);
    let key = (namespace, topic.name_any());
    let inner = ctx.clone();
    let result = finalizer(&api, FINALIZER, topic, |event| async move {
        match event {
            finalizer::Event::Apply(topic) => apply(&topic, &inner).await,
            finalizer::Event::Cleanup(topic) => cleanup(&topic, &inner).await,
        }
    })
    .await;
    let metrics = &ctx.shared.metrics;
    metrics
        .reconcile_seconds
        .get_or_create(&KindLabels { kind: "Topic" })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .reconciles
        .get_or_create(&OutcomeLabels {
            kind: "Topic",
            outcome: if result.is_ok() { "ok" } else { "error" },
        })
        .inc();
    ctx.backoff.record(key, result.is_ok());
    result
}

/// Transient errors retry after 1 s, doubling per consecutive failure up to 5 minutes.
pub fn error_policy(
    topic: Arc<Topic>,
    error: &finalizer::Error<TopicError>,
    ctx: Arc<TopicContext>,
) -> Action {
    let key = (topic.namespace().unwrap_or_default(), topic.name_any());
    let delay = ctx.backoff.delay(&key);
    warn!(topic = %format!("{}/{}", key.0, key.1), error = %error, retry_in_s = delay.as_secs(), "topic reconcile failed");
    Action::requeue(delay)
}

/// The cluster a Topic refers to, unless it is missing or being deleted: from the
/// KafkaCluster controller's cache (no API call per reconcile), once that has its first
/// full list (before, every cluster would look missing).
async fn find_cluster(
    topic: &Topic,
    ctx: &TopicContext,
) -> Result<Option<Arc<KafkaCluster>>, TopicError> {
    let namespace = topic.namespace().ok_or(TopicError::NoNamespace)?;
    ctx.clusters
        .wait_until_ready()
        .await
        .map_err(|_| TopicError::ClustersUnknown)?;
    let target = ObjectRef::new(&topic.spec.cluster_ref).within(&namespace);
    Ok(ctx
        .clusters
        .get(&target)
        .filter(|c| c.metadata.deletion_timestamp.is_none()))
}

/// Every Topic (this one included) naming the same topic of the same cluster.
fn claimants(topic: &Topic, ctx: &TopicContext) -> Vec<Arc<Topic>> {
    let name = topic_plan::topic_name(topic);
    let namespace = topic.namespace();
    ctx.store
        .state()
        .into_iter()
        .filter(|t| {
            t.namespace() == namespace
                && t.spec.cluster_ref == topic.spec.cluster_ref
                && topic_plan::topic_name(t) == name
        })
        .collect()
}

/// The Topic that owns `topic`'s topic name in its cluster, when it is another one.
fn other_owner(topic: &Topic, ctx: &TopicContext) -> Option<String> {
    let same = claimants(topic, ctx);
    let owner = topic_plan::owner(same.iter().map(|t| &**t), false)?;
    (owner.metadata.uid != topic.metadata.uid).then(|| owner.name_any())
}

/// Whether a Topic being deleted may act for its topic: no other Topic still wants it,
/// and of those being deleted with it (a namespace going) it is the owner, so a
/// duplicate never deletes a topic its owner retains.
fn owns_at_deletion(topic: &Topic, ctx: &TopicContext) -> bool {
    let same = claimants(topic, ctx);
    let wanted_elsewhere = same
        .iter()
        .any(|t| t.metadata.uid != topic.metadata.uid && t.metadata.deletion_timestamp.is_none());
    let oldest = topic_plan::owner(same.iter().map(|t| &**t), true);
    !wanted_elsewhere && oldest.is_none_or(|o| o.metadata.uid == topic.metadata.uid)
}

async fn apply(topic: &Topic, ctx: &TopicContext) -> Result<Action, TopicError> {
    let namespace = topic.namespace().ok_or(TopicError::NoNamespace)?;
    let name = topic_plan::topic_name(topic);
    let key = (namespace.clone(), topic.name_any());
    let previous = topic.status.clone().unwrap_or_default();
    let last = lock(&ctx.synced).get(&key).cloned();
    // This process's own record first; the status (a restart, a new leader) otherwise.
    let mut observed = match &last {
        Some(s) => TopicObserved {
            name: name.clone(),
            live: s.live.clone(),
            refused: s.refused.clone(),
            drift: s.drift.clone(),
            managed_config: s.managed.clone(),
            adopted_config: s.adopted.clone(),
            ..TopicObserved::default()
        },
        None => TopicObserved {
            name: name.clone(),
            managed_config: previous.managed_config.clone(),
            adopted_config: previous.adopted_config.clone(),
            drift: previous.config_drift.clone(),
            ..TopicObserved::default()
        },
    };
    let known_id = last
        .as_ref()
        .and_then(|s| s.live.as_ref())
        .map(|l| l.topic_id.clone())
        .filter(|id| !id.is_empty())
        .or_else(|| previous.topic_id.clone());

    let Some(cluster) = find_cluster(topic, ctx).await? else {
        observed.blocked = Some(Blocked::NoCluster(format!(
            "KafkaCluster {} not found in namespace {namespace}",
            topic.spec.cluster_ref
        )));
        let (_, deferred) = write_status(topic, &observed, ctx, false).await?;
        return Ok(Action::requeue(deferred.unwrap_or(Duration::from_secs(30))));
    };
    if let Some(owner) = other_owner(topic, ctx) {
        observed.blocked = Some(Blocked::Conflict(format!(
            "Topic {owner} already manages topic {name} of cluster {}; this one does nothing \
             until that one is deleted",
            topic.spec.cluster_ref
        )));
        let (_, deferred) = write_status(topic, &observed, ctx, false).await?;
        return Ok(Action::requeue(deferred.unwrap_or(Duration::from_secs(60))));
    }

    let names = Names::new(&cluster.name_any(), &namespace, &ctx.shared.domain);
    let url = names.admin_url();
    let view = ctx
        .shared
        .watches
        .view_for_status(&namespace, &topic.spec.cluster_ref);
    observed.view = view.as_deref();

    let due = match &last {
        None => true,
        Some(s) => {
            s.generation != topic.metadata.generation
                || s.at.elapsed() >= ctx.resync
                // The view, once it reflects the last sync's own changes, disagrees with
                // what that sync saw (deleted or changed behind the operator's back).
                || view.as_ref().is_some_and(|v| {
                    v.revision >= s.revision
                        && partitions_in(v, &name) != s.live.as_ref().map_or(0, |l| l.partitions)
                })
        }
    };
    if due {
        let since = last.as_ref().map_or(0, |s| s.revision);
        let synced = sync(
            topic,
            &name,
            &url,
            known_id.as_deref(),
            since,
            &mut observed,
            ctx,
        )
        .await?;
        lock(&ctx.synced).insert(key, synced);
    }
    let (status, deferred) = write_status(topic, &observed, ctx, false).await?;
    let labels = TopicLabels {
        namespace,
        cluster: topic.spec.cluster_ref.clone(),
        topic: name,
    };
    let metrics = &ctx.shared.metrics;
    metrics
        .topic_under_replicated
        .get_or_create(&labels)
        .set(i64::from(status.under_replicated_partitions));
    metrics
        .topic_offline
        .get_or_create(&labels)
        .set(i64::from(status.offline_partitions));
    let settled = condition_status(&status.conditions, topic_status::READY) == Some("True")
        && condition_status(&status.conditions, DEGRADED) == Some("False");
    Ok(Action::requeue(match deferred {
        Some(wait) => wait,
        None if settled => ctx.resync,
        None => Duration::from_secs(5),
    }))
}

/// How many partitions of `topic` the view holds.
fn partitions_in(view: &ClusterView, topic: &str) -> i32 {
    let name = topic.to_string();
    view.partitions
        .range((name.clone(), i32::MIN)..=(name, i32::MAX))
        .count() as i32
}

/// Describes the topic and carries out the spec: create or adopt, add partitions, set
/// config. A refusal (the spec asks what cannot be done) goes into status; anything
/// else is an error and retried.
async fn sync(
    topic: &Topic,
    name: &str,
    url: &str,
    known_id: Option<&str>,
    since: i64,
    observed: &mut TopicObserved<'_>,
    ctx: &TopicContext,
) -> Result<Synced, TopicError> {
    let admin = &ctx.admin;
    let (described, mut revision) = admin.describe(url, name).await?;
    if revision < since {
        // A broker behind the last sync's own change answered: it would show the topic
        // as it was before (or missing, just after the create). Ask again shortly.
        return Err(TopicError::Behind {
            topic: name.to_string(),
            seen: revision,
            wanted: since,
        });
    }
    let mut live = described.map(|t| LiveTopic::from_proto(&t));
    if let Some(found) = &live {
        if known_id != Some(found.topic_id.as_str()) {
            // A topic this Topic has not seen before (it existed first, or was deleted
            // and re-created behind the operator's back): record what it was, before
            // anything changes it; nothing the operator set applies to it.
            observed.adopted_config = Some(found.configs.clone());
            observed.managed_config = BTreeMap::new();
            observed.live = Some(found.clone());
            write_status(topic, observed, ctx, true).await?;
            publish(
                ctx,
                topic,
                EventType::Normal,
                "Adopted",
                format!(
                    "adopted existing topic {name} ({} partitions, replication factor {}, {} config overrides)",
                    found.partitions,
                    found.replication_factor,
                    found.configs.len()
                ),
            )
            .await;
        }
    } else if known_id.is_some() {
        publish(
            ctx,
            topic,
            EventType::Warning,
            "TopicMissing",
            format!("topic {name} was deleted outside the operator; creating it again"),
        )
        .await;
    }
    let plan = topic_plan::plan(&topic.spec, live.as_ref(), &observed.managed_config);
    let mut refused = plan.refused.clone();
    if plan.create {
        let spec = &topic.spec;
        match admin
            .create(
                url,
                name,
                spec.partitions,
                spec.replication_factor,
                &spec.config,
            )
            .await?
        {
            Ok((created, at)) => {
                revision = revision.max(at);
                info!(topic = %name, cluster = %spec.cluster_ref, "topic created");
                publish(
                    ctx,
                    topic,
                    EventType::Normal,
                    "Created",
                    format!(
                        "created topic {name}: {} partitions, replication factor {}",
                        spec.partitions, spec.replication_factor
                    ),
                )
                .await;
                observed.managed_config = plan.managed.clone();
                live = Some(LiveTopic::from_proto(&created));
            }
            // Created meanwhile (by a client): adopted at the next sync.
            Err(r) if r.code == TOPIC_ALREADY_EXISTS => {}
            Err(r) => refuse_or_fail(&mut refused, "CreateRefused", "create", name, r)?,
        }
    } else {
        if let Some(count) = plan.partitions {
            match admin.add_partitions(url, name, count).await? {
                Ok(at) => {
                    revision = revision.max(at);
                    if let Some(l) = live.as_mut() {
                        l.partitions = count;
                    }
                    publish(
                        ctx,
                        topic,
                        EventType::Normal,
                        "PartitionsAdded",
                        format!("topic {name} now has {count} partitions"),
                    )
                    .await;
                }
                Err(r) => {
                    refuse_or_fail(
                        &mut refused,
                        "PartitionsRefused",
                        "add partitions to",
                        name,
                        r,
                    )?;
                }
            }
        }
        if plan.config.is_empty() {
            observed.managed_config = plan.managed.clone();
        } else {
            match admin.alter_configs(url, name, &plan.config).await? {
                Ok(at) => {
                    revision = revision.max(at);
                    info!(topic = %name, changes = plan.config.len(), "topic config set");
                    observed.managed_config = plan.managed.clone();
                }
                Err(r) => refuse_or_fail(
                    &mut refused,
                    "InvalidConfig",
                    "alter the config of",
                    name,
                    r,
                )?,
            }
        }
    }
    observed.drift = plan.drift;
    observed.refused = refused.clone();
    observed.live = live.clone();
    Ok(Synced {
        generation: topic.metadata.generation,
        at: Instant::now(),
        revision,
        live,
        refused,
        drift: observed.drift.clone(),
        managed: observed.managed_config.clone(),
        adopted: observed.adopted_config.clone(),
    })
}

/// A permanent refusal becomes a condition; anything else fails the reconcile (retried).
fn refuse_or_fail(
    refused: &mut Vec<Refusal>,
    reason: &'static str,
    action: &'static str,
    topic: &str,
    answer: Refused,
) -> Result<(), TopicError> {
    if answer.is_permanent() {
        refused.push(Refusal {
            reason,
            message: answer.message,
        });
        Ok(())
    } else {
        Err(TopicError::Kafka {
            action,
            topic: topic.to_string(),
            code: answer.code,
            message: answer.message,
        })
    }
}

/// `deletionPolicy: Delete` deletes the topic, unless the cluster is gone (or going: a
/// Topic never hangs in deletion for want of a cluster) or the topic is not this Topic's
/// to delete (owns_at_deletion).
async fn cleanup(topic: &Topic, ctx: &TopicContext) -> Result<Action, TopicError> {
    let namespace = topic.namespace().ok_or(TopicError::NoNamespace)?;
    let name = topic_plan::topic_name(topic);
    let key = (namespace.clone(), topic.name_any());
    lock(&ctx.synced).remove(&key);
    lock(&ctx.written).remove(&key);
    if !owns_at_deletion(topic, ctx) {
        // A duplicate (Conflict), or the topic is still wanted by another Topic: neither
        // the topic nor its gauges are this one's.
        return Ok(Action::await_change());
    }
    ctx.shared.metrics.forget_topic(&TopicLabels {
        namespace: namespace.clone(),
        cluster: topic.spec.cluster_ref.clone(),
        topic: name.clone(),
    });
    if topic.spec.deletion_policy != crate::crd::DeletionPolicy::Delete {
        info!(topic = %name, "Topic deleted; the topic is retained (deletionPolicy Retain)");
        return Ok(Action::await_change());
    }
    let Some(cluster) = find_cluster(topic, ctx).await? else {
        info!(topic = %name, "Topic deleted; its cluster is gone");
        return Ok(Action::await_change());
    };
    let names = Names::new(&cluster.name_any(), &namespace, &ctx.shared.domain);
    match ctx.admin.delete(&names.admin_url(), &name).await? {
        Ok(()) => {
            info!(topic = %name, cluster = %cluster.name_any(), "topic deleted (deletionPolicy Delete)");
            Ok(Action::await_change())
        }
        Err(r) => Err(TopicError::Kafka {
            action: "delete",
            topic: name,
            code: r.code,
            message: r.message,
        }),
    }
}

/// Writes the status when it changed, at most once per DEBOUNCE per Topic (unless
/// `now`): returns it, with how long to wait when a due write was held back. The
/// previous status is the one this process last wrote when it has one (the cached Topic
/// can lag its own write). Events for leader changes (one per write, naming each
/// partition), under-replication starting and refusals.
async fn write_status(
    topic: &Topic,
    observed: &TopicObserved<'_>,
    ctx: &TopicContext,
    now: bool,
) -> Result<(TopicStatus, Option<Duration>), TopicError> {
    let key = (topic.namespace().unwrap_or_default(), topic.name_any());
    let remembered = lock(&ctx.written).get(&key).cloned();
    let mut basis = topic.clone();
    if let Some(w) = &remembered {
        basis.status = Some(w.status.clone());
    }
    let next = topic_status::topic_status(&basis, observed, &Time(Timestamp::now()));
    if basis.status.as_ref() == Some(&next) {
        return Ok((next, None));
    }
    if let Some(w) = remembered.as_ref().filter(|_| !now) {
        let since = w.at.elapsed();
        if since < DEBOUNCE {
            return Ok((next, Some(DEBOUNCE - since)));
        }
    }
    let previous = basis.status.clone().unwrap_or_default();
    let changes = topic_status::leader_changes(&previous.partition_states, &next.partition_states);
    if !changes.is_empty() {
        let shown: Vec<&str> = changes.iter().take(10).map(String::as_str).collect();
        let more = changes.len().saturating_sub(shown.len());
        publish(
            ctx,
            topic,
            EventType::Normal,
            "LeadersChanged",
            format!(
                "{} partition(s) changed leader: {}{}",
                changes.len(),
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ),
        )
        .await;
    }
    let degraded = |s: &TopicStatus| condition_status(&s.conditions, DEGRADED) == Some("True");
    if degraded(&next) && !degraded(&previous) {
        let message = next
            .conditions
            .iter()
            .find(|c| c.type_ == DEGRADED)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        publish(ctx, topic, EventType::Warning, "UnderReplicated", message).await;
    }
    let refused = |s: &TopicStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == topic_status::REFUSED && c.status == "True")
            .map(|c| c.message.clone())
    };
    if let Some(message) = refused(&next).filter(|m| refused(&previous).as_ref() != Some(m)) {
        publish(ctx, topic, EventType::Warning, "Refused", message).await;
    }
    let api: Api<Topic> = Api::namespaced(
        ctx.shared.client.clone(),
        &topic.namespace().unwrap_or_default(),
    );
    let body = serde_json::json!({ "status": status_patch(&previous, &next) });
    api.patch_status(
        &topic.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&body),
    )
    .await
    .map_err(api_error("write status of Topic", &topic.name_any()))?;
    ctx.shared
        .metrics
        .status_writes
        .get_or_create(&KindLabels { kind: "Topic" })
        .inc();
    lock(&ctx.written).insert(
        key,
        Written {
            status: next.clone(),
            at: Instant::now(),
        },
    );
    Ok((next, None))
}

/// The status as a merge patch from `previous`: absent optional fields as null, and keys
/// gone from the config maps as null (a merge patch merges maps key by key).
fn status_patch(previous: &TopicStatus, next: &TopicStatus) -> serde_json::Value {
    let mut value = with_nulls(
        next,
        &[
            "observedGeneration",
            "topicName",
            "topicId",
            "leadersOn",
            "adoptedConfig",
        ],
    );
    let removed = |before: Option<&BTreeMap<String, String>>,
                   after: Option<&BTreeMap<String, String>>|
     -> Option<serde_json::Value> {
        let after = after?;
        let mut map: serde_json::Map<String, serde_json::Value> = after
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        for key in before.into_iter().flat_map(BTreeMap::keys) {
            map.entry(key.clone()).or_insert(serde_json::Value::Null);
        }
        Some(serde_json::Value::Object(map))
    };
    if let Some(fields) = value.as_object_mut() {
        if let Some(m) = removed(Some(&previous.managed_config), Some(&next.managed_config)) {
            fields.insert("managedConfig".to_string(), m);
        }
        if let Some(m) = removed(
            previous.adopted_config.as_ref(),
            next.adopted_config.as_ref(),
        ) {
            fields.insert("adoptedConfig".to_string(), m);
        }
    }
    value
}

async fn publish(ctx: &TopicContext, topic: &Topic, type_: EventType, reason: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    if let Err(err) = ctx
        .shared
        .recorder
        .publish(&event, &topic.object_ref(&()))
        .await
    {
        warn!(error = %err, reason, "failed to publish an event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_patch_removes_config_keys_and_absent_fields() {
        let previous = TopicStatus {
            managed_config: BTreeMap::from([
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "2".to_string()),
            ]),
            topic_id: Some("x".to_string()),
            ..TopicStatus::default()
        };
        let next = TopicStatus {
            managed_config: BTreeMap::from([("a".to_string(), "3".to_string())]),
            ..TopicStatus::default()
        };
        let patch = status_patch(&previous, &next);
        assert_eq!(patch["managedConfig"]["a"], "3");
        assert_eq!(patch["managedConfig"]["b"], serde_json::Value::Null);
        assert_eq!(patch["topicId"], serde_json::Value::Null);
        assert_eq!(patch["adoptedConfig"], serde_json::Value::Null);
    }
}
