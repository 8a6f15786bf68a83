//! `runnel-operator rack`: the broker pods' init container. It waits until the operator
//! has written this pod's entry for the node it runs on into the cluster's rack map, then
//! writes `broker.rack` into a properties file the broker reads after server.properties.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use tracing::{info, warn};

use crate::build::rack::rack_for;

#[derive(Debug, Clone)]
pub struct RackArgs {
    pub config_map: String,
    pub namespace: String,
    pub pod: String,
    pub node: String,
    pub out: PathBuf,
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RackError {
    #[error("failed to connect to the Kubernetes API: {0}")]
    Connect(#[source] crate::kubeclient::ConnectError),
    #[error("no rack entry for pod {pod} on node {node} in ConfigMap {config_map} after {seconds} s (is the operator running?)")]
    TimedOut {
        pod: String,
        node: String,
        config_map: String,
        seconds: u64,
    },
    #[error("failed to write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The file the broker reads: `broker.rack` only when the node has the label.
pub fn properties(rack: &str) -> String {
    if rack.is_empty() {
        "# The node has no rack label: broker.rack is left unset.\n".to_string()
    } else {
        format!("broker.rack={}\n", rack.replace('\\', "\\\\"))
    }
}

pub async fn run(args: RackArgs) -> Result<(), RackError> {
    let client = crate::kubeclient::connect()
        .await
        .map_err(RackError::Connect)?;
    let api: Api<ConfigMap> = Api::namespaced(client, &args.namespace);
    let started = Instant::now();
    let mut logged = false;
    let rack = loop {
        match api.get_opt(&args.config_map).await {
            Ok(Some(map)) => {
                let entry = map.data.as_ref().and_then(|d| d.get(&args.pod));
                if let Some(rack) = entry.and_then(|e| rack_for(e, &args.node)) {
                    break rack.to_string();
                }
            }
            Ok(None) => {}
            Err(err) => {
                warn!(error = %err, config_map = %args.config_map, "failed to read the rack map")
            }
        }
        if !logged {
            info!(pod = %args.pod, node = %args.node, "waiting for the operator to write this pod's rack");
            logged = true;
        }
        if started.elapsed() > args.timeout {
            return Err(RackError::TimedOut {
                pod: args.pod,
                node: args.node,
                config_map: args.config_map,
                seconds: args.timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let write = |path: &PathBuf, text: String| {
        std::fs::write(path, text).map_err(|source| RackError::Write {
            path: path.clone(),
            source,
        })
    };
    write(&args.out, properties(&rack))?;
    info!(pod = %args.pod, node = %args.node, rack = %rack, "broker.rack written");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_names_the_rack_or_leaves_it_unset() {
        assert_eq!(properties("zone-a"), "broker.rack=zone-a\n");
        assert!(!properties("").contains("broker.rack="));
    }
}
