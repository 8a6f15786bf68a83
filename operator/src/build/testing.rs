//! KafkaCluster values for the builders' tests.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::names::Names;
use crate::crd::{
    Console, Etcd, EtcdStorage, KafkaCluster, KafkaClusterSpec, Listeners, ManagedEtcd, Storage,
};

pub(crate) fn names() -> Names {
    Names::new("demo", "kafka", "cluster.local")
}

fn storage() -> Storage {
    Storage {
        size: Quantity("1Gi".to_string()),
        class: None,
        delete_claim: false,
    }
}

/// A stored cluster (with a uid, so owner references can be made) on an external etcd.
pub(crate) fn cluster(name: &str, replicas: i32) -> KafkaCluster {
    let mut kc = KafkaCluster::new(
        name,
        KafkaClusterSpec {
            replicas,
            image: "runnel:test".to_string(),
            image_pull_policy: None,
            resources: None,
            storage: storage(),
            config: Default::default(),
            listeners: Listeners::default(),
            rack: None,
            etcd: Etcd {
                endpoints: Some(vec!["http://etcd:2379".to_string()]),
                managed: None,
            },
            console: Console::default(),
        },
    );
    kc.metadata.namespace = Some("kafka".to_string());
    kc.metadata.uid = Some("0b6c6f2e-1111-4c3e-9a53-2a1e6f0d0001".to_string());
    kc.metadata.generation = Some(1);
    kc
}

pub(crate) fn cluster_with_managed_etcd(name: &str, replicas: i32, members: i32) -> KafkaCluster {
    let mut kc = cluster(name, replicas);
    kc.spec.etcd = Etcd {
        endpoints: None,
        managed: Some(ManagedEtcd {
            members,
            image: "etcd:test".to_string(),
            storage: EtcdStorage {
                size: Quantity("1Gi".to_string()),
                class: None,
            },
            resources: None,
        }),
    };
    kc
}
