//! The console's changes to the cluster: parsed from a form, checked, done through the
//! Kafka protocol (so the same rules apply as for any admin client: the controller
//! validates topics and configs, a coordinator refuses to reset a group with members),
//! and logged with who asked and what.

use std::collections::HashMap;

use super::calls::Committed;
use super::Console;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    CreateTopic {
        name: String,
        partitions: i32,
        replication_factor: i16,
        configs: Vec<(String, String)>,
    },
    AddPartitions {
        topic: String,
        count: i32,
    },
    SetConfig {
        topic: String,
        key: String,
        value: String,
    },
    DeleteConfig {
        topic: String,
        key: String,
    },
    DeleteRecords {
        topic: String,
        partition: i32,
        before: i64,
    },
    ResetOffsets {
        group: String,
        /// None: every topic the group has offsets for.
        topic: Option<String>,
        to: ResetTo,
    },
    DeleteGroup {
        group: String,
    },
}

/// What the action's route names: the topic or group in the path, and which action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    CreateTopic,
    AddPartitions,
    Configs,
    DeleteRecords,
    ResetOffsets,
    DeleteGroup,
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> Result<&'a str, String> {
    form.get(name)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("the form has no {name}"))
}

fn number<T: std::str::FromStr>(form: &HashMap<String, String>, name: &str) -> Result<T, String> {
    let text = field(form, name)?;
    text.parse()
        .map_err(|_| format!("{name} must be a whole number, not {text:?}"))
}

/// A number, or Kafka's -1 ("the broker's default") when the field is empty.
fn number_or_default<T: std::str::FromStr + From<i8>>(
    form: &HashMap<String, String>,
    name: &str,
) -> Result<T, String> {
    match form.get(name).map(|v| v.trim()) {
        None | Some("") => Ok(T::from(-1)),
        Some(_) => number(form, name),
    }
}

/// Reads an action from its route (`target`: the topic or group in the path, empty for
/// creating a topic) and form. Kafka's own validation (names, counts, config values) is
/// left to the broker that does it, so the console cannot disagree with it.
pub fn parse(kind: Kind, target: &str, form: &HashMap<String, String>) -> Result<Action, String> {
    let target = target.to_string();
    Ok(match kind {
        Kind::CreateTopic => Action::CreateTopic {
            name: field(form, "name")?.to_string(),
            partitions: number_or_default(form, "partitions")?,
            replication_factor: number_or_default(form, "replication_factor")?,
            configs: form
                .get("configs")
                .map(String::as_str)
                .unwrap_or_default()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| match l.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() => {
                        Ok((k.trim().to_string(), v.trim().to_string()))
                    }
                    _ => Err(format!("config lines are key=value, not {l:?}")),
                })
                .collect::<Result<_, _>>()?,
        },
        Kind::AddPartitions => Action::AddPartitions {
            topic: target,
            count: number(form, "count")?,
        },
        Kind::Configs => match field(form, "op")? {
            "set" => Action::SetConfig {
                topic: target,
                key: field(form, "key")?.to_string(),
                value: form
                    .get("value")
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default(),
            },
            "delete" => Action::DeleteConfig {
                topic: target,
                key: field(form, "key")?.to_string(),
            },
            other => return Err(format!("op must be set or delete, not {other:?}")),
        },
        Kind::DeleteRecords => Action::DeleteRecords {
            topic: target,
            partition: number(form, "partition")?,
            before: number(form, "offset")?,
        },
        Kind::ResetOffsets => Action::ResetOffsets {
            group: target,
            topic: form
                .get("topic")
                .map(|t| t.trim())
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            to: match field(form, "to")? {
                "earliest" => ResetTo::Earliest,
                "latest" => ResetTo::Latest,
                "offset" => ResetTo::Offset(number(form, "value")?),
                "timestamp" => {
                    ResetTo::Timestamp(super::timestamp::parse(field(form, "value")?).ok_or(
                        "the timestamp is neither milliseconds nor YYYY-MM-DDTHH:MM[:SS] (UTC)",
                    )?)
                }
                other => {
                    return Err(format!(
                        "to must be earliest, latest, offset or timestamp, not {other:?}"
                    ))
                }
            },
        },
        Kind::DeleteGroup => Action::DeleteGroup { group: target },
    })
}

impl Action {
    /// The page the action belongs to (where the browser goes afterwards).
    pub fn page(&self) -> String {
        let seg = super::html::encode;
        match self {
            Action::CreateTopic { name, .. } => format!("/ui/topics/{}", seg(name)),
            Action::AddPartitions { topic, .. }
            | Action::SetConfig { topic, .. }
            | Action::DeleteConfig { topic, .. }
            | Action::DeleteRecords { topic, .. } => format!("/ui/topics/{}", seg(topic)),
            Action::ResetOffsets { group, .. } => format!("/ui/groups/{}", seg(group)),
            Action::DeleteGroup { .. } => "/ui/groups".to_string(),
        }
    }

    /// The page to go back to when the action failed.
    pub fn origin(&self) -> String {
        match self {
            Action::CreateTopic { .. } => "/ui/topics".to_string(),
            Action::DeleteGroup { group } => format!("/ui/groups/{}", super::html::encode(group)),
            other => other.page(),
        }
    }

    fn topic(&self) -> Option<&str> {
        match self {
            Action::CreateTopic { name, .. } => Some(name),
            Action::AddPartitions { topic, .. }
            | Action::SetConfig { topic, .. }
            | Action::DeleteConfig { topic, .. }
            | Action::DeleteRecords { topic, .. } => Some(topic),
            Action::ResetOffsets { topic, .. } => topic.as_deref(),
            Action::DeleteGroup { .. } => None,
        }
    }
}

/// Internal topics (`__consumer_offsets`, ...) are the cluster's own: no console action
/// touches them.
pub fn refuse_internal(action: &Action) -> Result<(), String> {
    match action.topic() {
        Some(t) if t.starts_with("__") => Err(format!(
            "{t} is an internal topic; the console does not change it"
        )),
        _ => Ok(()),
    }
}

/// Does the action; the text to show when it worked, or why it failed.
pub async fn run(console: &Console, action: &Action) -> Result<String, String> {
    refuse_internal(action)?;
    let calls = &console.calls;
    let failed = |e: super::kafka::CallError| e.to_string();
    match action {
        Action::CreateTopic {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            calls
                .create_topic(name, *partitions, *replication_factor, configs)
                .await
                .map_err(failed)?;
            Ok(format!("Created topic {name}"))
        }
        Action::AddPartitions { topic, count } => {
            calls
                .create_partitions(topic, *count)
                .await
                .map_err(failed)?;
            Ok(format!("Topic {topic} now has {count} partitions"))
        }
        Action::SetConfig { topic, key, value } => {
            calls
                .alter_topic_config(topic, key, Some(value))
                .await
                .map_err(failed)?;
            Ok(format!("Set {key}={value} on {topic}"))
        }
        Action::DeleteConfig { topic, key } => {
            calls
                .alter_topic_config(topic, key, None)
                .await
                .map_err(failed)?;
            Ok(format!("Removed {topic}'s override of {key}"))
        }
        Action::DeleteRecords {
            topic,
            partition,
            before,
        } => {
            let start = calls
                .delete_records(topic, *partition, *before)
                .await
                .map_err(failed)?;
            Ok(format!(
                "Partition {partition} of {topic} now starts at offset {start}"
            ))
        }
        Action::ResetOffsets { group, topic, to } => {
            reset(console, group, topic.as_deref(), *to).await
        }
        Action::DeleteGroup { group } => {
            calls.delete_group(group).await.map_err(failed)?;
            Ok(format!("Deleted group {group}"))
        }
    }
}

/// Resets a group's committed offsets, as `kafka-consumer-groups --reset-offsets
/// --execute` does: only for a group without members; an offset is kept within the
/// partition's log; a timestamp after the last record means the log end.
async fn reset(
    console: &Console,
    group: &str,
    topic: Option<&str>,
    to: ResetTo,
) -> Result<String, String> {
    let calls = &console.calls;
    let described = calls
        .describe_group(group)
        .await
        .map_err(|e| e.to_string())?;
    if !described.members.is_empty() {
        return Err(format!(
            "group {group} has {} members; Kafka resets offsets only of an empty group (stop its consumers first)",
            described.members.len()
        ));
    }
    let image = console.cache.image();
    // As kafka-consumer-groups: a named topic is reset on all its partitions; "all
    // topics" means the partitions the group has committed offsets for, no others.
    let mut wanted: Vec<(String, i32)> = match topic {
        Some(t) => {
            if image.topic(t).is_none() {
                return Err(format!("no topic named {t}"));
            }
            image
                .topic_partitions(t)
                .map(|(p, _)| (t.to_string(), p))
                .collect()
        }
        None => calls
            .committed_offsets(&[group.to_string()])
            .await
            .remove(group)
            .unwrap_or_default()
            .into_iter()
            .filter(|c| image.partition(&c.topic, c.partition).is_some())
            .map(|c| (c.topic, c.partition))
            .collect(),
    };
    wanted.sort();
    if wanted.is_empty() {
        return Err(format!(
            "group {group} has no committed offsets; name a topic to reset"
        ));
    }
    let mut topics: Vec<String> = wanted.iter().map(|(t, _)| t.clone()).collect();
    topics.dedup();
    let ranges = calls.offsets(&wanted).await;
    let mut offsets = Vec::with_capacity(wanted.len());
    for (t, p) in &wanted {
        let range = ranges
            .get(&(t.clone(), *p))
            .ok_or_else(|| format!("the leader of {t}-{p} did not answer; nothing was reset"))?;
        let offset = match to {
            ResetTo::Earliest => range.start,
            ResetTo::Latest => range.end,
            ResetTo::Offset(o) => o.clamp(range.start, range.end),
            ResetTo::Timestamp(ts) => calls
                .offset_for_time(t, *p, ts)
                .await
                .map_err(|e| e.to_string())?
                .unwrap_or(range.end),
        };
        offsets.push(Committed {
            topic: t.clone(),
            partition: *p,
            offset,
        });
    }
    calls
        .commit_offsets(group, &offsets)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "Reset {} partition(s) of {} for group {group}",
        offsets.len(),
        topics.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn create_topic_reads_its_fields_and_config_lines() {
        let action = parse(
            Kind::CreateTopic,
            "",
            &form(&[
                ("name", " orders "),
                ("partitions", "3"),
                ("replication_factor", "2"),
                (
                    "configs",
                    "cleanup.policy=compact\r\n\r\n retention.ms = 1000 ",
                ),
            ]),
        );
        assert_eq!(
            action,
            Ok(Action::CreateTopic {
                name: "orders".into(),
                partitions: 3,
                replication_factor: 2,
                configs: vec![
                    ("cleanup.policy".into(), "compact".into()),
                    ("retention.ms".into(), "1000".into())
                ],
            })
        );
        assert!(parse(
            Kind::CreateTopic,
            "",
            &form(&[
                ("name", "x"),
                ("partitions", "3"),
                ("replication_factor", "1"),
                ("configs", "novalue")
            ])
        )
        .is_err());
        assert!(parse(
            Kind::CreateTopic,
            "",
            &form(&[
                ("name", "x"),
                ("partitions", "three"),
                ("replication_factor", "1")
            ])
        )
        .is_err());
        assert!(parse(Kind::CreateTopic, "", &form(&[("partitions", "3")])).is_err());
        let defaults = parse(
            Kind::CreateTopic,
            "",
            &form(&[
                ("name", "d"),
                ("partitions", ""),
                ("replication_factor", " "),
            ]),
        );
        assert_eq!(
            defaults,
            Ok(Action::CreateTopic {
                name: "d".into(),
                partitions: -1,
                replication_factor: -1,
                configs: vec![]
            })
        );
    }

    #[test]
    fn resets_read_their_target() {
        let reset = |to: &str, value: &str| {
            parse(
                Kind::ResetOffsets,
                "g",
                &form(&[("to", to), ("value", value), ("topic", "")]),
            )
        };
        assert_eq!(
            reset("offset", "42"),
            Ok(Action::ResetOffsets {
                group: "g".into(),
                topic: None,
                to: ResetTo::Offset(42)
            })
        );
        assert_eq!(
            reset("timestamp", "1970-01-01T00:00:01"),
            Ok(Action::ResetOffsets {
                group: "g".into(),
                topic: None,
                to: ResetTo::Timestamp(1000)
            })
        );
        assert!(reset("timestamp", "yesterday").is_err());
        assert!(reset("sideways", "").is_err());
        assert!(reset("offset", "").is_err());
    }

    #[test]
    fn internal_topics_are_refused() {
        let action = parse(
            Kind::Configs,
            "__consumer_offsets",
            &form(&[("op", "set"), ("key", "retention.ms"), ("value", "1")]),
        );
        let action = action.unwrap_or_else(|e| panic!("{e}"));
        assert!(refuse_internal(&action).is_err());
        let ok = Action::DeleteGroup {
            group: "__g".into(),
        };
        assert!(refuse_internal(&ok).is_ok(), "group ids are not topics");
    }

    #[test]
    fn actions_lead_to_their_pages() {
        let a = Action::DeleteRecords {
            topic: "a b".into(),
            partition: 0,
            before: 1,
        };
        assert_eq!(a.page(), "/ui/topics/a%20b");
        assert_eq!(
            Action::DeleteGroup {
                group: "g/1".into()
            }
            .page(),
            "/ui/groups"
        );
        assert_eq!(
            Action::DeleteGroup {
                group: "g/1".into()
            }
            .origin(),
            "/ui/groups/g%2F1"
        );
    }
}
