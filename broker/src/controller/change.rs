//! A change to a resource's dynamic configs, as data: it crosses the wire when a broker
//! forwards an alter-configs request to the controller, which applies it to the configs
//! it reads under its fence.

use std::collections::BTreeMap;

use super::AdminError;

/// Which configs a change is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    /// A broker id, or `CLUSTER_DEFAULT` for every broker's default.
    Broker(String),
}

/// One operation of an incremental change (Kafka's IncrementalAlterConfigs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOpKind {
    Set,
    Delete,
    Append,
    Subtract,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigOp {
    pub key: String,
    pub kind: ConfigOpKind,
    pub value: Option<String>,
}

/// What an alter-configs request does to the current overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// The overrides become exactly this (legacy AlterConfigs).
    Replace(BTreeMap<String, String>),
    /// Operations applied in order to the current overrides.
    Ops(Vec<ConfigOp>),
}

impl ConfigChange {
    /// The overrides after the change. `is_list(key)` says whether a key holds a list;
    /// `effective_list(key, overrides)` is a list key's value from the layers below when
    /// the overrides do not set it (APPEND and SUBTRACT start from what is in effect).
    pub fn apply(
        &self,
        current: &BTreeMap<String, String>,
        is_list: impl Fn(&str) -> bool,
        effective_list: impl Fn(&str, &BTreeMap<String, String>) -> Vec<String>,
    ) -> Result<BTreeMap<String, String>, AdminError> {
        let ops = match self {
            ConfigChange::Replace(all) => return Ok(all.clone()),
            ConfigChange::Ops(ops) => ops,
        };
        let mut next = current.clone();
        for op in ops {
            let key = op.key.clone();
            match (op.kind, op.value.clone()) {
                (ConfigOpKind::Set, Some(v)) => {
                    next.insert(key, v);
                }
                (ConfigOpKind::Delete, _) => {
                    next.remove(&key);
                }
                (ConfigOpKind::Append | ConfigOpKind::Subtract, _) if !is_list(&key) => {
                    return Err(AdminError::InvalidConfig(format!(
                        "{key}: APPEND and SUBTRACT apply only to list configurations"
                    )))
                }
                (kind @ (ConfigOpKind::Append | ConfigOpKind::Subtract), Some(v)) => {
                    let mut items = match next.get(&key) {
                        Some(set) => split_list(set),
                        None => effective_list(&key, &next),
                    };
                    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        if kind == ConfigOpKind::Append && !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        } else if kind == ConfigOpKind::Subtract {
                            items.retain(|i| i != item);
                        }
                    }
                    next.insert(key, items.join(","));
                }
                (kind, None) => {
                    return Err(AdminError::InvalidConfig(format!(
                        "{key}: operation {kind:?} needs a value"
                    )))
                }
            }
        }
        Ok(next)
    }
}

/// A list value's items.
pub fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(ops: &[(&str, ConfigOpKind, Option<&str>)]) -> ConfigChange {
        ConfigChange::Ops(
            ops.iter()
                .map(|(k, kind, v)| ConfigOp {
                    key: k.to_string(),
                    kind: *kind,
                    value: v.map(str::to_string),
                })
                .collect(),
        )
    }

    #[test]
    fn incremental_operations_apply_in_order_and_lists_start_from_what_is_in_effect() {
        let current: BTreeMap<String, String> =
            [("retention.ms".to_string(), "5".to_string())].into();
        let is_list = |k: &str| k == "cleanup.policy";
        let effective = |_: &str, _: &BTreeMap<String, String>| vec!["delete".to_string()];
        let next = ops(&[
            ("retention.ms", ConfigOpKind::Delete, None),
            ("segment.ms", ConfigOpKind::Set, Some("9")),
            ("cleanup.policy", ConfigOpKind::Append, Some("compact")),
        ])
        .apply(&current, is_list, effective)
        .unwrap();
        assert_eq!(next.get("retention.ms"), None);
        assert_eq!(next["segment.ms"], "9");
        assert_eq!(next["cleanup.policy"], "delete,compact");
        let err = ops(&[("segment.ms", ConfigOpKind::Append, Some("1"))])
            .apply(&current, is_list, effective)
            .unwrap_err();
        assert!(matches!(err, AdminError::InvalidConfig(_)));
        let err = ops(&[("segment.ms", ConfigOpKind::Set, None)])
            .apply(&current, is_list, effective)
            .unwrap_err();
        assert!(matches!(err, AdminError::InvalidConfig(_)));
    }
}
