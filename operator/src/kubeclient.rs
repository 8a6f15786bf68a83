//! The Kubernetes client: in a pod, always the pod's own service account (never a
//! kubeconfig that happens to be on the host); outside one, the usual kubeconfig.

use kube::{Client, Config};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("in-cluster configuration: {0}")]
    InCluster(#[from] kube::config::InClusterError),
    #[error("no kubeconfig and not in a pod: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("client: {0}")]
    Client(#[from] kube::Error),
}

pub async fn connect() -> Result<Client, ConnectError> {
    let config = if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        Config::incluster()?
    } else {
        Config::infer().await?
    };
    Ok(Client::try_from(config)?)
}
