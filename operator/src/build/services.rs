//! The brokers' Services: a headless one that gives each pod its stable DNS name (and
//! publishes not-ready pods, so brokers find each other while starting), and the
//! bootstrap Service clients and the operator connect to.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::console;
use super::names::{owned_meta, Component, Names, ADMIN_PORT, CONSOLE_PORT, HTTP_PORT};
use crate::crd::KafkaCluster;

/// A port whose targetPort equals its port: nothing relies on port translation (the test
/// bed has no kube-proxy, and clients reconnect to advertised ports anyway).
pub(crate) fn port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port: number,
        target_port: Some(IntOrString::Int(number)),
        protocol: Some("TCP".to_string()),
        ..ServicePort::default()
    }
}

/// `ports` and, while the console is enabled, the console's.
fn with_console(cluster: &KafkaCluster, mut ports: Vec<ServicePort>) -> Vec<ServicePort> {
    if console::enabled(cluster) {
        ports.push(port("console", CONSOLE_PORT));
    }
    ports
}

pub fn headless_service(cluster: &KafkaCluster, names: &Names) -> Service {
    Service {
        metadata: owned_meta(cluster, names, names.headless(), Component::Broker),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            publish_not_ready_addresses: Some(true),
            selector: Some(names.selector(Component::Broker)),
            ports: Some(with_console(
                cluster,
                vec![
                    port("kafka", cluster.spec.listeners.port),
                    port("http", HTTP_PORT),
                    port("admin", ADMIN_PORT),
                ],
            )),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

pub fn bootstrap_service(cluster: &KafkaCluster, names: &Names) -> Service {
    Service {
        metadata: owned_meta(cluster, names, names.bootstrap(), Component::Broker),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(names.selector(Component::Broker)),
            ports: Some(with_console(
                cluster,
                vec![
                    port("kafka", cluster.spec.listeners.port),
                    port("admin", ADMIN_PORT),
                ],
            )),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testing::{cluster, names};

    #[test]
    fn the_headless_service_publishes_not_ready_pods() {
        let svc = headless_service(&cluster("demo", 3), &names());
        let spec = svc.spec.unwrap();
        assert_eq!(svc.metadata.name.as_deref(), Some("demo-brokers"));
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        let ports: Vec<i32> = spec.ports.unwrap().iter().map(|p| p.port).collect();
        assert_eq!(ports, [9092, 9095, 9096, 9097]);
    }

    fn port_names(svc: Service) -> Vec<String> {
        svc.spec
            .unwrap()
            .ports
            .unwrap()
            .into_iter()
            .map(|p| p.name.unwrap())
            .collect()
    }

    #[test]
    fn both_services_carry_the_console_port_unless_it_is_disabled() {
        let mut kc = cluster("demo", 3);
        assert_eq!(
            port_names(bootstrap_service(&kc, &names())),
            ["kafka", "admin", "console"]
        );
        assert_eq!(
            port_names(headless_service(&kc, &names())),
            ["kafka", "http", "admin", "console"]
        );
        kc.spec.console.enabled = false;
        assert_eq!(
            port_names(bootstrap_service(&kc, &names())),
            ["kafka", "admin"]
        );
        assert_eq!(
            port_names(headless_service(&kc, &names())),
            ["kafka", "http", "admin"]
        );
    }

    #[test]
    fn the_bootstrap_service_maps_each_port_to_itself() {
        let mut kc = cluster("demo", 3);
        kc.spec.listeners.port = 19092;
        let svc = bootstrap_service(&kc, &names());
        let spec = svc.spec.unwrap();
        assert_eq!(spec.selector, Some(names().selector(Component::Broker)));
        for p in spec.ports.unwrap() {
            assert_eq!(p.target_port, Some(IntOrString::Int(p.port)));
        }
    }
}
