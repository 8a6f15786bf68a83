//! The brokers' web console as the operator wires it: the Host headers it answers (the
//! bootstrap Service's names and the spec's), its server.properties keys and the address
//! status reports. Its listener is a per-pod flag (statefulset.rs) and its port is on both
//! Services (services.rs), all only while `spec.console.enabled`.

use super::names::{Names, CONSOLE_PORT};
use crate::crd::{Console, KafkaCluster, MAX_CONSOLE_HOST_LEN};

/// Why a `spec.console.allowedHosts` entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.console.allowedHosts[{host:?}]: {reason}")]
pub struct InvalidAllowedHost {
    pub host: String,
    pub reason: &'static str,
}

pub fn enabled(cluster: &KafkaCluster) -> bool {
    cluster.spec.console.enabled
}

/// The Host header values the console answers besides `localhost` and the pod's own
/// address (which the broker always accepts): the bootstrap Service's names, each with
/// and without the port, then the spec's, without repeats.
pub fn allowed_hosts(console: &Console, names: &Names) -> Vec<String> {
    let mut hosts = Vec::new();
    for name in names.service_names(&names.bootstrap()) {
        hosts.push(format!("{name}:{CONSOLE_PORT}"));
        hosts.push(name);
    }
    for host in &console.allowed_hosts {
        if !hosts.contains(host) {
            hosts.push(host.clone());
        }
    }
    hosts
}

/// The console's server.properties entries: only `console.enable=false` when it is off.
pub fn properties(console: &Console, names: &Names) -> Vec<(&'static str, String)> {
    if !console.enabled {
        return vec![("console.enable", "false".to_string())];
    }
    vec![
        (
            "console.allowed.hosts",
            allowed_hosts(console, names).join(","),
        ),
        ("console.enable", "true".to_string()),
        ("console.read.only", console.read_only.to_string()),
    ]
}

/// What `status.console` says: the console's page through the bootstrap Service.
pub fn url(cluster: &KafkaCluster, names: &Names) -> Option<String> {
    enabled(cluster).then(|| names.console_url())
}

/// Every refused `allowedHosts` entry. The schema refuses them already; checked again
/// because an entry goes into server.properties as it is, where a line break would add
/// a key and a comma another host.
pub fn check(console: &Console) -> Vec<InvalidAllowedHost> {
    console
        .allowed_hosts
        .iter()
        .filter_map(|host| {
            let reason = if host.is_empty() {
                "is empty"
            } else if host.len() > MAX_CONSOLE_HOST_LEN {
                "is longer than 253 characters"
            } else if host.contains(|c: char| c.is_whitespace() || c == ',') {
                "contains whitespace or a comma"
            } else {
                return None;
            };
            Some(InvalidAllowedHost {
                host: host.clone(),
                reason,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testing::{cluster, names};

    #[test]
    fn the_bootstrap_service_names_are_allowed_with_and_without_the_port() {
        let console = Console {
            allowed_hosts: vec![
                "console.example.com".to_string(),
                "demo-bootstrap".to_string(),
            ],
            ..Console::default()
        };
        assert_eq!(
            allowed_hosts(&console, &names()),
            [
                "demo-bootstrap:9097",
                "demo-bootstrap",
                "demo-bootstrap.kafka:9097",
                "demo-bootstrap.kafka",
                "demo-bootstrap.kafka.svc:9097",
                "demo-bootstrap.kafka.svc",
                "demo-bootstrap.kafka.svc.cluster.local:9097",
                "demo-bootstrap.kafka.svc.cluster.local",
                "console.example.com",
            ]
        );
    }

    #[test]
    fn an_enabled_console_is_read_only_by_default_in_kubernetes() {
        let console = Console::default();
        assert!(console.enabled && console.read_only);
        // What the apiserver stores for a spec without `console` deserializes the same.
        let parsed: Console = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, console);
        let props = properties(&console, &names());
        let keys: Vec<&str> = props.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "console.allowed.hosts",
                "console.enable",
                "console.read.only"
            ]
        );
        assert_eq!(props[1].1, "true");
        assert_eq!(props[2].1, "true");
        assert!(props[0]
            .1
            .starts_with("demo-bootstrap:9097,demo-bootstrap,"));

        let writable = Console {
            read_only: false,
            ..Console::default()
        };
        assert_eq!(properties(&writable, &names())[2].1, "false");
    }

    #[test]
    fn a_disabled_console_is_off_and_has_no_address() {
        let mut kc = cluster("demo", 3);
        assert_eq!(
            url(&kc, &names()).as_deref(),
            Some("http://demo-bootstrap.kafka.svc.cluster.local:9097/ui")
        );
        kc.spec.console.enabled = false;
        assert_eq!(url(&kc, &names()), None);
        assert_eq!(
            properties(&kc.spec.console, &names()),
            [("console.enable", "false".to_string())]
        );
    }

    #[test]
    fn allowed_hosts_with_separators_or_beyond_a_dns_name_are_refused() {
        let console = Console {
            allowed_hosts: vec![
                "ok.example.com:8080".to_string(),
                String::new(),
                "a,b".to_string(),
                "a b".to_string(),
                "x\nconsole.read.only=false".to_string(),
                "h".repeat(253),
                "h".repeat(254),
            ],
            ..Console::default()
        };
        let refused: Vec<(String, &str)> = check(&console)
            .into_iter()
            .map(|p| (p.host, p.reason))
            .collect();
        assert_eq!(
            refused,
            [
                (String::new(), "is empty"),
                ("a,b".to_string(), "contains whitespace or a comma"),
                ("a b".to_string(), "contains whitespace or a comma"),
                (
                    "x\nconsole.read.only=false".to_string(),
                    "contains whitespace or a comma"
                ),
                ("h".repeat(254), "is longer than 253 characters"),
            ]
        );
        assert!(check(&Console::default()).is_empty());
    }
}
