//! The brokers' StatefulSet. Broker id = pod ordinal (the `pod-index` label through the
//! downward API); listeners bind the pod IP and advertise the pod's stable DNS name;
//! `updateStrategy: OnDelete`, because the operator paces restarts itself (one broker at
//! a time, each only when every partition is fully replicated again).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapProjection, ConfigMapVolumeSource, Container, ContainerPort,
    DownwardAPIProjection, DownwardAPIVolumeFile, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, KeyToPath, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ProjectedVolumeSource, SeccompProfile, SecurityContext, ServiceAccountTokenProjection,
    TopologySpreadConstraint, Volume, VolumeMount, VolumeProjection, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names::{
    owned_meta, Component, Names, ADMIN_PORT, CONFIG_HASH_ANNOTATION, CONSOLE_PORT, HTTP_PORT,
    POD_INDEX_LABEL,
};
use super::{config, console};
use crate::crd::KafkaCluster;

/// The non-root user and group broker and etcd containers run as.
pub const RUN_AS: i64 = 10001;
const DATA_DIR: &str = "/var/lib/runnel";
const CONFIG_DIR: &str = "/etc/runnel";
const NODE_DIR: &str = "/var/run/runnel";

/// What the StatefulSet needs beyond the spec: decided by reconcile from the live state.
#[derive(Debug, Clone)]
pub struct BrokerSet {
    /// Pods to run: never below the current count while a scale-down is refused.
    pub replicas: i32,
    /// The claim template's size and class: the existing ones once the StatefulSet
    /// exists (claim templates are immutable; a larger `storage.size` expands the claims
    /// instead).
    pub claim_size: Quantity,
    pub claim_class: Option<String>,
    /// Hash of server.properties: a config change changes the template, which the roll
    /// then carries to each broker.
    pub config_hash: String,
}

pub fn statefulset(cluster: &KafkaCluster, names: &Names, set: &BrokerSet) -> StatefulSet {
    StatefulSet {
        metadata: owned_meta(cluster, names, names.statefulset(), Component::Broker),
        spec: Some(StatefulSetSpec {
            replicas: Some(set.replicas),
            service_name: Some(names.headless()),
            selector: names.label_selector(Component::Broker),
            pod_management_policy: Some("Parallel".to_string()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_string()),
                ..StatefulSetUpdateStrategy::default()
            }),
            // Always Retain: with storage.deleteClaim the KafkaCluster owns the claims
            // (build/claims.rs), so deleting only the StatefulSet never deletes data.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".to_string()),
                    when_scaled: Some("Retain".to_string()),
                },
            ),
            template: pod_template(cluster, names, &set.config_hash),
            volume_claim_templates: Some(vec![data_claim_template(
                names,
                Component::Broker,
                &set.claim_size,
                set.claim_class.as_deref(),
            )]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

fn pod_template(cluster: &KafkaCluster, names: &Names, config_hash: &str) -> PodTemplateSpec {
    let spec = &cluster.spec;
    let rack = spec.rack.is_some();
    let mut volumes = vec![Volume {
        name: "config".to_string(),
        config_map: Some(ConfigMapVolumeSource {
            name: names.config_map(config_hash),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }];
    let mut init_containers = Vec::new();
    if rack {
        volumes.push(Volume {
            name: "node".to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
        volumes.push(api_access_volume());
        init_containers.push(rack_container(cluster, names));
    }
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(names.labels(Component::Broker)),
            annotations: Some(BTreeMap::from([(
                CONFIG_HASH_ANNOTATION.to_string(),
                config_hash.to_string(),
            )])),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(names.service_account()),
            // Only the rack init container gets a token (its own mount): the broker has
            // no business with the Kubernetes API.
            automount_service_account_token: Some(false),
            termination_grace_period_seconds: Some(termination_grace_seconds(cluster)),
            security_context: Some(pod_security_context()),
            init_containers: (!init_containers.is_empty()).then_some(init_containers),
            containers: vec![broker_container(cluster, names)],
            volumes: Some(volumes),
            topology_spread_constraints: Some(spread(names, Component::Broker)),
            ..PodSpec::default()
        }),
    }
}

/// Long enough for a controlled shutdown (leadership moved away, in-flight requests
/// answered within `shutdown.timeout.ms`, lease revoked) with a margin: SIGKILL before it
/// ends would turn a clean stop into a lease expiry.
pub fn termination_grace_seconds(cluster: &KafkaCluster) -> i64 {
    let millis = |key: &str, default: i64| {
        config::value(cluster, key)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(default)
    };
    let seconds = (millis("shutdown.timeout.ms", 30_000) + millis("metadata.lease.ttl.ms", 10_000))
        / 1000
        + 20;
    seconds.max(60)
}

fn broker_container(cluster: &KafkaCluster, names: &Names) -> Container {
    let spec = &cluster.spec;
    let port = spec.listeners.port;
    let mut command = vec![
        "runnel-broker".to_string(),
        format!("--config={CONFIG_DIR}/server.properties"),
    ];
    let mut mounts = vec![
        VolumeMount {
            name: "data".to_string(),
            mount_path: DATA_DIR.to_string(),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "config".to_string(),
            mount_path: CONFIG_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
    ];
    if spec.rack.is_some() {
        command.push(format!("--config={NODE_DIR}/node.properties"));
        mounts.push(VolumeMount {
            name: "node".to_string(),
            mount_path: NODE_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    command.extend([
        format!("--listeners=PLAINTEXT://$(POD_IP):{port}"),
        format!(
            "--advertised.listeners=PLAINTEXT://{}:{}",
            advertised_host(cluster, names),
            spec.listeners.advertised_port.unwrap_or(port)
        ),
        format!("--http.listener=$(POD_IP):{HTTP_PORT}"),
        format!("--admin.listener=$(POD_IP):{ADMIN_PORT}"),
        format!(
            "--admin.advertised.listener=$(POD_NAME).{}.{}.svc.{}:{ADMIN_PORT}",
            names.headless(),
            names.namespace,
            names.domain
        ),
        format!("--log.dirs={DATA_DIR}/data"),
    ]);
    let mut ports = vec![
        container_port("kafka", port),
        container_port("http", HTTP_PORT),
        container_port("admin", ADMIN_PORT),
    ];
    if console::enabled(cluster) {
        // Every interface, not the pod IP: `kubectl port-forward` dials localhost inside
        // the pod. The broker's Host check still answers only the Service's names,
        // localhost and console.allowed.hosts (a rebinding page names its own host).
        command.push(format!("--console.listener=0.0.0.0:{CONSOLE_PORT}"));
        ports.push(container_port("console", CONSOLE_PORT));
    }
    let mut env = vec![EnvVar {
        // The broker reads RUNNEL_<KEY> variables as configuration: this one is broker.id.
        name: "RUNNEL_BROKER_ID".to_string(),
        value_from: Some(field(&format!("metadata.labels['{POD_INDEX_LABEL}']"))),
        ..EnvVar::default()
    }];
    env.extend(pod_env(&["POD_NAME", "POD_NAMESPACE", "POD_IP"]));
    Container {
        name: "broker".to_string(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.clone(),
        command: Some(command),
        env: Some(env),
        ports: Some(ports),
        // Ready once this broker has recovered its logs, registered and leads what it
        // should; never depends on other brokers (a cluster-wide check would keep every
        // pod out of the Services while one is down).
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        // /healthz answers during log recovery too, so a long recovery is not killed.
        liveness_probe: Some(http_probe("/healthz", 10, 6)),
        resources: spec.resources.clone(),
        security_context: Some(container_security_context()),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

/// The advertised host with the template's placeholders turned into what the container
/// expands (`$(POD_NAME)`) or the literal values.
pub fn advertised_host(cluster: &KafkaCluster, names: &Names) -> String {
    match &cluster.spec.listeners.advertised_host {
        Some(template) => template
            .replace("{pod}", "$(POD_NAME)")
            .replace("{ordinal}", "$(RUNNEL_BROKER_ID)")
            .replace("{namespace}", &names.namespace)
            .replace("{cluster}", &names.cluster),
        None => format!(
            "$(POD_NAME).{}.{}.svc.{}",
            names.headless(),
            names.namespace,
            names.domain
        ),
    }
}

fn rack_container(cluster: &KafkaCluster, names: &Names) -> Container {
    Container {
        name: "rack".to_string(),
        image: Some(cluster.spec.image.clone()),
        image_pull_policy: cluster.spec.image_pull_policy.clone(),
        command: Some(vec![
            "runnel-operator".to_string(),
            "rack".to_string(),
            format!("--config-map={}", names.racks()),
            "--namespace=$(POD_NAMESPACE)".to_string(),
            "--pod=$(POD_NAME)".to_string(),
            "--node=$(NODE_NAME)".to_string(),
            format!("--out={NODE_DIR}/node.properties"),
        ]),
        env: Some(pod_env(&["POD_NAME", "POD_NAMESPACE", "NODE_NAME"])),
        security_context: Some(container_security_context()),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "node".to_string(),
                mount_path: NODE_DIR.to_string(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: API_ACCESS.to_string(),
                mount_path: "/var/run/secrets/kubernetes.io/serviceaccount".to_string(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    }
}

const API_ACCESS: &str = "kube-api-access";

/// What the kubelet mounts for an automounted token (token, cluster CA, namespace), as a
/// volume of its own so that only the container that mounts it has it.
fn api_access_volume() -> Volume {
    Volume {
        name: API_ACCESS.to_string(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".to_string(),
                        expiration_seconds: Some(3607),
                        ..ServiceAccountTokenProjection::default()
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "kube-root-ca.crt".to_string(),
                        items: Some(vec![KeyToPath {
                            key: "ca.crt".to_string(),
                            path: "ca.crt".to_string(),
                            ..KeyToPath::default()
                        }]),
                        ..ConfigMapProjection::default()
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "namespace".to_string(),
                            field_ref: Some(ObjectFieldSelector {
                                field_path: "metadata.namespace".to_string(),
                                ..ObjectFieldSelector::default()
                            }),
                            ..DownwardAPIVolumeFile::default()
                        }]),
                    }),
                    ..VolumeProjection::default()
                },
            ]),
            ..ProjectedVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// The downward API variables by their conventional names.
pub(crate) fn pod_env(vars: &[&str]) -> Vec<EnvVar> {
    vars.iter()
        .map(|var| {
            let path = match *var {
                "POD_NAME" => "metadata.name",
                "POD_NAMESPACE" => "metadata.namespace",
                "POD_IP" => "status.podIP",
                _ => "spec.nodeName",
            };
            EnvVar {
                name: (*var).to_string(),
                value_from: Some(field(path)),
                ..EnvVar::default()
            }
        })
        .collect()
}

fn field(path: &str) -> EnvVarSource {
    EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            field_path: path.to_string(),
            ..ObjectFieldSelector::default()
        }),
        ..EnvVarSource::default()
    }
}

pub(crate) fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: port,
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    }
}

pub(crate) fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("http".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

pub(crate) fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        fs_group: Some(RUN_AS),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

pub(crate) fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

/// Spread a component's pods over zones and nodes where the scheduler can; never a
/// reason to leave a pod pending.
pub(crate) fn spread(names: &Names, component: Component) -> Vec<TopologySpreadConstraint> {
    ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
        .iter()
        .map(|key| TopologySpreadConstraint {
            max_skew: 1,
            topology_key: (*key).to_string(),
            when_unsatisfiable: "ScheduleAnyway".to_string(),
            label_selector: Some(names.label_selector(component)),
            ..TopologySpreadConstraint::default()
        })
        .collect()
}

pub(crate) fn data_claim_template(
    names: &Names,
    component: Component,
    size: &Quantity,
    class: Option<&str>,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".to_string()),
            labels: Some(names.selector(component)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            storage_class_name: class.map(str::to_string),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), size.clone())])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testing::{cluster, names};
    use crate::crd::Rack;

    fn build(kc: &KafkaCluster) -> StatefulSet {
        statefulset(
            kc,
            &names(),
            &BrokerSet {
                replicas: kc.spec.replicas,
                claim_size: Quantity("1Gi".to_string()),
                claim_class: None,
                config_hash: "abc".to_string(),
            },
        )
    }

    fn broker(sts: &StatefulSet) -> Container {
        sts.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .clone()
    }

    #[test]
    fn the_operator_paces_rolls_and_pods_start_in_parallel() {
        let sts = build(&cluster("demo", 3));
        let spec = sts.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
        assert_eq!(
            spec.update_strategy.as_ref().unwrap().type_.as_deref(),
            Some("OnDelete")
        );
        assert_eq!(spec.service_name.as_deref(), Some("demo-brokers"));
        let template = spec.template.metadata.as_ref().unwrap();
        assert_eq!(
            template.annotations.as_ref().unwrap()[CONFIG_HASH_ANNOTATION],
            "abc"
        );
        let volumes = spec
            .template
            .spec
            .as_ref()
            .unwrap()
            .volumes
            .as_ref()
            .unwrap();
        assert_eq!(
            volumes[0].config_map.as_ref().unwrap().name,
            "demo-config-abc"
        );
        // The template carries nothing of the operator's own version.
        assert!(!template
            .labels
            .as_ref()
            .unwrap()
            .contains_key("app.kubernetes.io/version"));
        let claims = spec.volume_claim_templates.as_ref().unwrap();
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
        assert_eq!(
            spec.persistent_volume_claim_retention_policy
                .as_ref()
                .unwrap()
                .when_deleted
                .as_deref(),
            Some("Retain")
        );
    }

    #[test]
    fn the_broker_binds_the_pod_ip_and_advertises_its_dns_name() {
        let c = broker(&build(&cluster("demo", 3)));
        let command = c.command.unwrap();
        assert_eq!(command[0], "runnel-broker");
        assert!(command.contains(&"--listeners=PLAINTEXT://$(POD_IP):9092".to_string()));
        assert!(command.contains(
            &"--advertised.listeners=PLAINTEXT://$(POD_NAME).demo-brokers.kafka.svc.cluster.local:9092"
                .to_string()
        ));
        assert!(command.contains(&"--admin.listener=$(POD_IP):9096".to_string()));
        let env = c.env.unwrap();
        let id = env.iter().find(|e| e.name == "RUNNEL_BROKER_ID").unwrap();
        assert_eq!(
            id.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.labels['apps.kubernetes.io/pod-index']"
        );
        let readiness = c.readiness_probe.unwrap();
        assert_eq!(readiness.http_get.unwrap().path.as_deref(), Some("/readyz"));
        let security = c.security_context.unwrap();
        assert_eq!(security.read_only_root_filesystem, Some(true));
    }

    fn port_names(c: &Container) -> Vec<(String, i32)> {
        c.ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone().unwrap(), p.container_port))
            .collect()
    }

    #[test]
    fn the_console_listens_on_the_pod_ip_unless_disabled() {
        let c = broker(&build(&cluster("demo", 3)));
        let command = c.command.clone().unwrap();
        assert!(command.contains(&"--console.listener=0.0.0.0:9097".to_string()));
        assert_eq!(
            port_names(&c),
            [
                ("kafka".to_string(), 9092),
                ("http".to_string(), 9095),
                ("admin".to_string(), 9096),
                ("console".to_string(), 9097)
            ]
        );
        // $(POD_IP) expands only from a variable the container has.
        assert!(c.env.unwrap().iter().any(|e| e.name == "POD_IP"));

        let mut kc = cluster("demo", 3);
        kc.spec.console.enabled = false;
        let c = broker(&build(&kc));
        assert!(!c
            .command
            .clone()
            .unwrap()
            .iter()
            .any(|a| a.starts_with("--console.")));
        assert!(!port_names(&c).iter().any(|(name, _)| name == "console"));
    }

    #[test]
    fn rack_awareness_adds_the_init_container_and_its_file() {
        let plain = build(&cluster("demo", 3));
        let pod = plain.spec.as_ref().unwrap().template.spec.clone().unwrap();
        assert!(pod.init_containers.is_none());
        assert_eq!(pod.automount_service_account_token, Some(false));

        let mut kc = cluster("demo", 3);
        kc.spec.rack = Some(Rack {
            topology_key: "topology.kubernetes.io/zone".to_string(),
        });
        let sts = build(&kc);
        let pod = sts.spec.as_ref().unwrap().template.spec.clone().unwrap();
        let init = &pod.init_containers.unwrap()[0];
        assert_eq!(
            init.command.as_ref().unwrap()[..2],
            ["runnel-operator", "rack"]
        );
        // The token is the init container's alone.
        assert_eq!(pod.automount_service_account_token, Some(false));
        let mounted = |c: &Container| {
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.name == "kube-api-access")
        };
        assert!(mounted(init));
        assert!(!mounted(&pod.containers[0]));
        let command = broker(&sts).command.unwrap();
        assert!(command.contains(&"--config=/var/run/runnel/node.properties".to_string()));
    }

    #[test]
    fn advertised_host_templates_expand_per_pod() {
        let mut kc = cluster("demo", 3);
        kc.spec.listeners.advertised_host =
            Some("{cluster}-{ordinal}.{namespace}.example.com".to_string());
        kc.spec.listeners.advertised_port = Some(31092);
        let command = broker(&build(&kc)).command.unwrap();
        assert!(command.contains(
            &"--advertised.listeners=PLAINTEXT://demo-$(RUNNEL_BROKER_ID).kafka.example.com:31092"
                .to_string()
        ));
    }

    #[test]
    fn the_grace_period_covers_a_controlled_shutdown() {
        let mut kc = cluster("demo", 3);
        assert_eq!(termination_grace_seconds(&kc), 60);
        kc.spec
            .config
            .insert("shutdown.timeout.ms".to_string(), "120000".to_string());
        assert_eq!(termination_grace_seconds(&kc), 150);
    }

    #[test]
    fn the_statefulset_never_deletes_claims_whatever_delete_claim_says() {
        let mut kc = cluster("demo", 3);
        kc.spec.storage.delete_claim = true;
        let sts = build(&kc);
        let policy = sts
            .spec
            .unwrap()
            .persistent_volume_claim_retention_policy
            .unwrap();
        assert_eq!(policy.when_deleted.as_deref(), Some("Retain"));
        assert_eq!(policy.when_scaled.as_deref(), Some("Retain"));
    }
}
