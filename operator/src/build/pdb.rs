//! PodDisruptionBudgets: at most one broker (and one etcd member) down through voluntary
//! disruptions such as a node drain. A PDB does not pace the operator's own rolls; the
//! roll waits for the ISR itself.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names::{owned_meta, Component, Names};
use crate::crd::KafkaCluster;

pub fn disruption_budget(
    cluster: &KafkaCluster,
    names: &Names,
    component: Component,
) -> PodDisruptionBudget {
    let name = match component {
        Component::Broker => names.statefulset(),
        Component::Etcd => names.etcd(),
    };
    PodDisruptionBudget {
        metadata: owned_meta(cluster, names, name, component),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(names.label_selector(component)),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testing::{cluster, names};

    #[test]
    fn one_broker_at_a_time() {
        let pdb = disruption_budget(&cluster("demo", 3), &names(), Component::Broker);
        let spec = pdb.spec.unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(
            spec.selector,
            Some(names().label_selector(Component::Broker))
        );
        let etcd = disruption_budget(&cluster("demo", 3), &names(), Component::Etcd);
        assert_eq!(etcd.metadata.name.as_deref(), Some("demo-etcd"));
    }
}
