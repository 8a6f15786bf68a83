//! The managed etcd: a static cluster of 1 or 3 members in a StatefulSet, found by name
//! under a headless Service. Revision auto-compaction is on (etcd otherwise keeps every
//! revision until its space quota fills and then refuses writes), fsync is on.

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Container, HTTPGetAction, PodSpec, PodTemplateSpec, Probe, Service, ServiceSpec, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names::{owned_meta, Component, Names, ETCD_CLIENT_PORT, ETCD_PEER_PORT};
use super::services::port;
use super::statefulset::{
    container_port, container_security_context, data_claim_template, pod_env, pod_security_context,
    spread,
};
use crate::crd::{KafkaCluster, ManagedEtcd};

const DATA_DIR: &str = "/var/lib/etcd";

/// Peers resolve each other before any is ready (a member is ready only with a quorum).
pub fn etcd_service(cluster: &KafkaCluster, names: &Names) -> Service {
    Service {
        metadata: owned_meta(cluster, names, names.etcd(), Component::Etcd),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            publish_not_ready_addresses: Some(true),
            selector: Some(names.selector(Component::Etcd)),
            ports: Some(vec![
                port("client", ETCD_CLIENT_PORT),
                port("peer", ETCD_PEER_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// `claim_size`: as for the brokers, the existing template's size once it exists.
pub fn etcd_statefulset(
    cluster: &KafkaCluster,
    names: &Names,
    etcd: &ManagedEtcd,
    claim_size: &Quantity,
) -> StatefulSet {
    let initial_cluster = (0..etcd.members)
        .map(|i| {
            format!(
                "{}=http://{}:{ETCD_PEER_PORT}",
                names.etcd_member(i),
                names.etcd_member_host(i)
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    let own_host = format!(
        "$(POD_NAME).{}.{}.svc.{}",
        names.etcd(),
        names.namespace,
        names.domain
    );
    let command = vec![
        "etcd".to_string(),
        "--name=$(POD_NAME)".to_string(),
        format!("--data-dir={DATA_DIR}/data"),
        format!("--listen-client-urls=http://$(POD_IP):{ETCD_CLIENT_PORT}"),
        format!("--advertise-client-urls=http://{own_host}:{ETCD_CLIENT_PORT}"),
        format!("--listen-peer-urls=http://$(POD_IP):{ETCD_PEER_PORT}"),
        format!("--initial-advertise-peer-urls=http://{own_host}:{ETCD_PEER_PORT}"),
        format!("--initial-cluster={initial_cluster}"),
        "--initial-cluster-state=new".to_string(),
        format!(
            "--initial-cluster-token={}-{}",
            names.namespace,
            names.etcd()
        ),
        "--auto-compaction-mode=revision".to_string(),
        "--auto-compaction-retention=1000".to_string(),
    ];
    let probe = |path: &str, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("client".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(5),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    };
    let container = Container {
        name: "etcd".to_string(),
        image: Some(etcd.image.clone()),
        command: Some(command),
        env: Some(pod_env(&["POD_NAME", "POD_IP"])),
        ports: Some(vec![
            container_port("client", ETCD_CLIENT_PORT),
            container_port("peer", ETCD_PEER_PORT),
        ]),
        readiness_probe: Some(probe("/readyz", 3)),
        liveness_probe: Some(probe("/livez", 12)),
        resources: etcd.resources.clone(),
        security_context: Some(container_security_context()),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".to_string(),
            mount_path: DATA_DIR.to_string(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    StatefulSet {
        metadata: owned_meta(cluster, names, names.etcd(), Component::Etcd),
        spec: Some(StatefulSetSpec {
            replicas: Some(etcd.members),
            service_name: Some(names.etcd()),
            selector: names.label_selector(Component::Etcd),
            // All members start together: each waits for the others to form a quorum.
            pod_management_policy: Some("Parallel".to_string()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_string()),
                ..StatefulSetUpdateStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names.labels(Component::Etcd)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    security_context: Some(pod_security_context()),
                    containers: vec![container],
                    topology_spread_constraints: Some(spread(names, Component::Etcd)),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![data_claim_template(
                names,
                Component::Etcd,
                claim_size,
                etcd.storage.class.as_deref(),
            )]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testing::{cluster_with_managed_etcd, names};

    #[test]
    fn three_members_know_each_other_and_compact() {
        let kc = cluster_with_managed_etcd("demo", 3, 3);
        let etcd = kc.spec.etcd.managed.clone().unwrap();
        let sts = etcd_statefulset(&kc, &names(), &etcd, &Quantity("1Gi".to_string()));
        let spec = sts.spec.unwrap();
        assert_eq!(spec.replicas, Some(3));
        let command = spec.template.spec.unwrap().containers[0]
            .command
            .clone()
            .unwrap();
        let initial = command
            .iter()
            .find(|a| a.starts_with("--initial-cluster="))
            .unwrap();
        assert_eq!(initial.matches("=http://").count(), 3);
        assert!(initial
            .contains("demo-etcd-2=http://demo-etcd-2.demo-etcd.kafka.svc.cluster.local:2380"));
        assert!(command.contains(&"--auto-compaction-mode=revision".to_string()));
        assert!(!command.iter().any(|a| a.contains("unsafe")));
    }

    #[test]
    fn the_service_publishes_members_before_they_are_ready() {
        let kc = cluster_with_managed_etcd("demo", 3, 1);
        let svc = etcd_service(&kc, &names());
        assert_eq!(svc.spec.unwrap().publish_not_ready_addresses, Some(true));
    }
}
