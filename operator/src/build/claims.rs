//! Who owns the data claims. The StatefulSets always retain their claims: deleting a
//! StatefulSet (by hand, or to change a field the API will not change in place) must
//! never take the data with it. With `storage.deleteClaim` the KafkaCluster itself is an
//! owner of every broker and managed-etcd claim, so deleting the KafkaCluster, and only
//! that, lets the garbage collector delete them. Broker data and the metadata that
//! describes it go together: one flag for both (the managed etcd's storage has none).

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;

use crate::crd::KafkaCluster;

/// The reference a claim carries when the cluster owns it: not a controller reference
/// (the claim is its StatefulSet's, whose controller leaves other controllers' claims
/// alone) and not blocking the cluster's deletion.
fn claim_owner(cluster: &KafkaCluster) -> Option<OwnerReference> {
    let mut reference = cluster.controller_owner_ref(&())?;
    reference.controller = None;
    reference.block_owner_deletion = None;
    Some(reference)
}

fn is_ours(reference: &OwnerReference, cluster: &KafkaCluster) -> bool {
    cluster.metadata.uid.as_deref() == Some(reference.uid.as_str())
}

/// A reference to an earlier KafkaCluster of the same name (deleted and re-created):
/// its owner is gone, and a claim whose only owner is gone is deleted by the garbage
/// collector, whatever the new cluster's `deleteClaim` says.
fn is_earlier_incarnation(reference: &OwnerReference, cluster: &KafkaCluster) -> bool {
    reference.kind == "KafkaCluster"
        && reference.api_version.starts_with("runnel.dev/")
        && Some(reference.name.as_str()) == cluster.metadata.name.as_deref()
        && !is_ours(reference, cluster)
}

/// Whether the cluster is an owner of `claim`.
pub fn owned_by(claim: &PersistentVolumeClaim, cluster: &KafkaCluster) -> bool {
    claim
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| is_ours(r, cluster))
}

/// The merge patch that makes `claim` owned by the cluster (`owned`) or not, or None when
/// it already is as wanted. The patch names the resourceVersion it was computed from (a
/// merge patch replaces the whole owner list, so a concurrent change must make it fail,
/// not be overwritten); other owners are kept, references to an earlier cluster of the
/// same name are dropped.
pub fn ownership_patch(
    claim: &PersistentVolumeClaim,
    cluster: &KafkaCluster,
    owned: bool,
) -> Option<serde_json::Value> {
    let current = claim.metadata.owner_references.clone().unwrap_or_default();
    let has = current.iter().any(|r| is_ours(r, cluster));
    let stale = current.iter().any(|r| is_earlier_incarnation(r, cluster));
    if has == owned && !stale {
        return None;
    }
    let mut references: Vec<OwnerReference> = current
        .into_iter()
        .filter(|r| !is_ours(r, cluster) && !is_earlier_incarnation(r, cluster))
        .collect();
    if owned {
        references.push(claim_owner(cluster)?);
    }
    Some(serde_json::json!({
        "metadata": {
            "resourceVersion": claim.metadata.resource_version,
            "ownerReferences": references,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testing::cluster;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn claim(owners: Vec<OwnerReference>) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data-demo-0".to_string()),
                resource_version: Some("42".to_string()),
                owner_references: Some(owners),
                ..ObjectMeta::default()
            },
            ..PersistentVolumeClaim::default()
        }
    }

    fn other() -> OwnerReference {
        OwnerReference {
            api_version: "v1".to_string(),
            kind: "Pod".to_string(),
            name: "someone".to_string(),
            uid: "other-uid".to_string(),
            ..OwnerReference::default()
        }
    }

    #[test]
    fn delete_claim_adds_the_cluster_as_an_owner_and_keeps_other_owners() {
        let kc = cluster("demo", 3);
        let patch = ownership_patch(&claim(vec![other()]), &kc, true).unwrap();
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        let owners = patch["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(owners.len(), 2);
        assert_eq!(owners[0]["uid"], "other-uid");
        assert_eq!(owners[1]["kind"], "KafkaCluster");
        assert_eq!(owners[1]["uid"], kc.metadata.uid.clone().unwrap());
        // Not a controller reference and not blocking the cluster's deletion.
        assert!(owners[1]
            .get("controller")
            .is_none_or(serde_json::Value::is_null));
        assert!(owners[1]
            .get("blockOwnerDeletion")
            .is_none_or(serde_json::Value::is_null));
    }

    #[test]
    fn a_reference_to_an_earlier_cluster_of_the_same_name_is_dropped() {
        let kc = cluster("demo", 3);
        let mut earlier = claim_owner(&kc).unwrap();
        earlier.uid = "uid-of-a-deleted-demo".to_string();
        for owned in [false, true] {
            let patch =
                ownership_patch(&claim(vec![earlier.clone(), other()]), &kc, owned).unwrap();
            let owners = patch["metadata"]["ownerReferences"].as_array().unwrap();
            assert!(owners.iter().all(|o| o["uid"] != "uid-of-a-deleted-demo"));
            assert_eq!(owners.len(), if owned { 2 } else { 1 });
        }
    }

    #[test]
    fn without_delete_claim_the_reference_goes_and_nothing_is_written_when_settled() {
        let kc = cluster("demo", 3);
        let ours = claim_owner(&kc).unwrap();
        assert!(owned_by(&claim(vec![ours.clone()]), &kc));
        assert!(ownership_patch(&claim(vec![ours.clone()]), &kc, true).is_none());
        assert!(ownership_patch(&claim(vec![other()]), &kc, false).is_none());
        let patch = ownership_patch(&claim(vec![other(), ours]), &kc, false).unwrap();
        let owners = patch["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0]["uid"], "other-uid");
    }
}
