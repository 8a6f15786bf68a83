//! Housekeeping after a reconcile has applied what runs: the data claims' owner follows
//! `storage.deleteClaim` (build/claims.rs), guarded by a finalizer, and server.properties
//! ConfigMaps that no pod mounts any more are deleted.
//!
//! The finalizer: while any claim names the cluster as its owner, the cluster carries
//! `runnel.dev/claims`, added before the first reference and removed only after the last
//! one (or, at deletion, after `deleteClaim` was checked once more). So clearing
//! `deleteClaim` and deleting the cluster before the operator has acted (it was down)
//! still keeps the data: the deletion waits for the operator. A cluster that never set
//! `deleteClaim` never has the finalizer and is never held up.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::ResourceExt;
use tracing::info;

use crate::build::claims::ownership_patch;
use crate::build::names::{Component, Names};
use crate::crd::KafkaCluster;
use crate::reconcile::{api_error, ReconcileError};

pub const CLAIMS_FINALIZER: &str = "runnel.dev/claims";

pub fn has_finalizer(cluster: &KafkaCluster) -> bool {
    cluster.finalizers().iter().any(|f| f == CLAIMS_FINALIZER)
}

/// Adds or removes the claims finalizer: a merge patch on the resourceVersion of a fresh
/// read (this reconcile's own status write has moved it on), so other finalizers are
/// kept and a concurrent change makes it a 409 and a retry.
pub async fn set_finalizer(
    api: &Api<KafkaCluster>,
    cluster: &KafkaCluster,
    present: bool,
) -> Result<(), ReconcileError> {
    let name = cluster.name_any();
    let Some(cluster) = api
        .get_opt(&name)
        .await
        .map_err(api_error::<KafkaCluster>("read", &name))?
    else {
        return Ok(());
    };
    if has_finalizer(&cluster) == present {
        return Ok(());
    }
    let mut finalizers: Vec<String> = cluster
        .finalizers()
        .iter()
        .filter(|f| *f != CLAIMS_FINALIZER)
        .cloned()
        .collect();
    if present {
        finalizers.push(CLAIMS_FINALIZER.to_string());
    }
    let body = serde_json::json!({
        "metadata": {
            "resourceVersion": cluster.metadata.resource_version,
            "finalizers": finalizers,
        }
    });
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map_err(api_error::<KafkaCluster>(
            "set the claims finalizer of",
            &name,
        ))?;
    info!(cluster = %name, present, "claims finalizer set");
    Ok(())
}

/// The cluster's claims, brokers' and managed etcd's alike (reconcile counts the brokers'
/// and expands them; ownership covers both).
pub async fn list_claims(
    api: &Api<PersistentVolumeClaim>,
    names: &Names,
) -> Result<Vec<PersistentVolumeClaim>, ReconcileError> {
    Ok(api
        .list(&ListParams::default().labels(&names.instance_selector_string()))
        .await
        .map_err(api_error::<PersistentVolumeClaim>(
            "list",
            &names.statefulset(),
        ))?
        .items)
}

/// Makes every broker and managed-etcd claim of the cluster owned by it (`owned`) or not;
/// writes only the claims that differ. Before making the cluster an owner it is read
/// afresh: a reconcile working from a cached copy of a cluster deleted (and perhaps
/// re-created) since must not give a claim an owner that is gone, which the garbage
/// collector would take as an orphan to delete. `deleting`: the cluster is being deleted
/// (with `deleteClaim`), which is then no reason to hold back. Ok(true) when every claim
/// is as wanted.
pub async fn own_claims(
    api: &Api<PersistentVolumeClaim>,
    clusters: &Api<KafkaCluster>,
    cluster: &KafkaCluster,
    names: &Names,
    claims: &[PersistentVolumeClaim],
    owned: bool,
    deleting: bool,
) -> Result<bool, ReconcileError> {
    let pending: Vec<(&PersistentVolumeClaim, serde_json::Value)> = claims
        .iter()
        .filter(|c| names.is_data_claim(&c.name_any()))
        .filter_map(|c| Some((c, ownership_patch(c, cluster, owned)?)))
        .collect();
    if pending.is_empty() {
        return Ok(true);
    }
    if owned {
        let fresh = clusters
            .get_opt(&names.cluster)
            .await
            .map_err(api_error::<KafkaCluster>("read", &names.cluster))?;
        let still = fresh.is_some_and(|f| {
            f.metadata.uid == cluster.metadata.uid
                && (deleting || f.metadata.deletion_timestamp.is_none())
                && f.spec.storage.delete_claim
        });
        if !still {
            return Ok(false);
        }
    }
    let mut settled = true;
    for (claim, body) in pending {
        let name = claim.name_any();
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => info!(cluster = %names.cluster, claim = %name, owned, "claim ownership set"),
            // Gone: nothing to own.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            // Changed since it was listed: the next reconcile looks again.
            Err(kube::Error::Api(status)) if status.code == 409 => settled = false,
            Err(e) => {
                return Err(api_error::<PersistentVolumeClaim>(
                    "set the owner of",
                    &name,
                )(e))
            }
        }
    }
    Ok(settled)
}

/// The cluster's server.properties ConfigMaps that nothing needs: neither the current one
/// nor one a broker pod mounts (a pod the roll has not reached keeps the file it started
/// with, across container restarts too).
pub fn stale_configs(
    names: &Names,
    current: &str,
    config_maps: &[String],
    pods: &[Pod],
) -> Vec<String> {
    let mounted: BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| p.spec.as_ref())
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.config_map.as_ref())
        .map(|c| c.name.as_str())
        .collect();
    config_maps
        .iter()
        .filter(|n| {
            names.is_config_map(n) && n.as_str() != current && !mounted.contains(n.as_str())
        })
        .cloned()
        .collect()
}

/// Deletes the stale server.properties ConfigMaps. Called only once the StatefulSet
/// controller has seen the template that mounts `current`, so no pod it creates later
/// can ask for one deleted here; the pods are listed after that was known (a pod the
/// controller made from the old template just before is in the list).
pub async fn collect_configs(
    api: &Api<ConfigMap>,
    pods: &Api<Pod>,
    names: &Names,
    current: &str,
) -> Result<(), ReconcileError> {
    let selector = names.selector_string(Component::Broker);
    let listed = api
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_err(api_error::<ConfigMap>(
            "list",
            &format!("{}-config-*", names.cluster),
        ))?;
    let listed: Vec<String> = listed.items.iter().map(ResourceExt::name_any).collect();
    if stale_configs(names, current, &listed, &[]).is_empty() {
        return Ok(());
    }
    let pods = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(api_error::<Pod>("list", &names.statefulset()))?;
    for name in stale_configs(names, current, &listed, &pods.items) {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                info!(cluster = %names.cluster, config_map = %name, "deleted a server.properties no pod mounts")
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(api_error::<ConfigMap>("delete", &name)(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testing::names;
    use k8s_openapi::api::core::v1::{ConfigMapVolumeSource, PodSpec, Volume};

    fn pod_mounting(config_map: &str) -> Pod {
        Pod {
            spec: Some(PodSpec {
                volumes: Some(vec![Volume {
                    name: "config".to_string(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: config_map.to_string(),
                        ..ConfigMapVolumeSource::default()
                    }),
                    ..Volume::default()
                }]),
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn only_configs_no_pod_mounts_are_stale() {
        let listed: Vec<String> = [
            "demo-config",
            "demo-config-aa",
            "demo-config-bb",
            "demo-config-cc",
            "demo-racks",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        // demo-config-bb is still mounted by a broker the roll has not reached.
        let pods = [
            pod_mounting("demo-config-cc"),
            pod_mounting("demo-config-bb"),
        ];
        let stale = stale_configs(&names(), "demo-config-cc", &listed, &pods);
        assert_eq!(stale, ["demo-config", "demo-config-aa"]);
        // The current one stays even before any pod mounts it.
        assert_eq!(
            stale_configs(&names(), "demo-config-aa", &listed[1..2], &[]),
            Vec::<String>::new()
        );
    }
}
