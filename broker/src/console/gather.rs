//! Builds what a page shows: the layout from this broker's metadata image, the rest from
//! the calls (leaders, coordinators, every broker's log directories) and the history.
//! Calls run concurrently; one that fails leaves its values unknown, never the page.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use futures_util::StreamExt;

use super::calls::{BrokerLogDirs, CallError, Committed, ConfigResource, LogRange};
use super::history::{Measure, SeriesKey};
use super::model::*;
use super::sampler::{lag_by_topic, partition_lag};
use super::Console;
use crate::metadata::cache::MetadataImage;
use crate::metadata::schema::{kafka_uuid_string, PartitionRecord};

/// The most records one page of the message browser shows.
pub const MAX_PAGE: usize = 100;
/// Record bytes one page fetches (a page of large records shows fewer than asked).
const PAGE_BYTES: i32 = 1 << 20;
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Groups the groups page describes (members, protocol); more are listed without.
const MAX_GROUPS_DESCRIBED: usize = 500;
/// Group descriptions in flight at once for one page.
const DESCRIBE_CONCURRENCY: usize = 8;

fn is_under_replicated(image: &MetadataImage, p: &PartitionRecord) -> bool {
    !image.is_offline(p) && p.isr.len() < p.replicas.len()
}

fn all_partitions(image: &MetadataImage) -> impl Iterator<Item = (&str, i32, &PartitionRecord)> {
    image
        .partitions
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |(p, r)| (t.as_str(), *p, &r.value)))
}

/// Every broker the image knows: registered ones, and ones named as replicas but gone.
pub fn broker_rows(
    image: &MetadataImage,
    listener: &str,
    disks: &HashMap<i32, BrokerLogDirs>,
) -> Vec<BrokerRow> {
    let mut rows: BTreeMap<i32, BrokerRow> = BTreeMap::new();
    let row = |id: i32| BrokerRow {
        id,
        rack: None,
        state: BrokerState::Offline,
        address: String::new(),
        replicas: 0,
        leaders: 0,
        disk_used: None,
        disk_free: None,
        controller: image.controller.map(|c| c.0) == Some(id),
    };
    for (id, live) in &image.brokers {
        let mut r = row(*id);
        r.rack = live.registration.rack.clone();
        r.state = if live.registration.shutting_down {
            BrokerState::ShuttingDown
        } else {
            BrokerState::Live
        };
        r.address = live
            .endpoint(listener)
            .map(|e| format!("{}:{}", e.host, e.port))
            .unwrap_or_default();
        if let Some(d) = disks.get(id) {
            r.disk_used = Some(d.dirs.iter().map(|d| d.size).sum());
            r.disk_free = d.dirs.iter().map(|d| d.usable).sum();
        }
        rows.insert(*id, r);
    }
    for (_, _, p) in all_partitions(image) {
        for b in &p.replicas {
            rows.entry(*b).or_insert_with(|| row(*b)).replicas += 1;
        }
        if let Some(r) = rows.get_mut(&p.leader) {
            r.leaders += 1;
        }
    }
    rows.into_values().collect()
}

/// Partition sizes by their leader's log directories.
fn leader_sizes(
    image: &MetadataImage,
    disks: &HashMap<i32, BrokerLogDirs>,
) -> HashMap<(String, i32), u64> {
    all_partitions(image)
        .filter_map(|(t, p, r)| {
            let key = (t.to_string(), p);
            let size = disks.get(&r.leader)?.partition_sizes.get(&key)?;
            Some((key, *size))
        })
        .collect()
}

fn partition_row(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    p: &PartitionRecord,
    offsets: &HashMap<(String, i32), LogRange>,
    sizes: &HashMap<(String, i32), u64>,
) -> PartitionRow {
    let key = (topic.to_string(), partition);
    let range = offsets.get(&key);
    PartitionRow {
        partition,
        leader: if image.is_offline(p) { -1 } else { p.leader },
        leader_epoch: p.leader_epoch,
        replicas: p.replicas.clone(),
        isr: p.isr.iter().map(|m| m.broker).collect(),
        log_start: range.map(|r| r.start),
        log_end: range.map(|r| r.end),
        size: sizes.get(&key).copied(),
        under_replicated: is_under_replicated(image, p),
        offline: image.is_offline(p),
    }
}

fn rates(console: &Console, topic: &str) -> Rates {
    let history = console.history();
    let latest = |measure| {
        history.latest(&SeriesKey::Topic {
            topic: topic.to_string(),
            measure,
        })
    };
    Rates {
        messages_in: latest(Measure::MessagesIn),
        bytes_in: latest(Measure::BytesIn),
        bytes_out: latest(Measure::BytesOut),
    }
}

fn topic_row(
    console: &Console,
    image: &MetadataImage,
    name: &str,
    offsets: &HashMap<(String, i32), LogRange>,
    sizes: &HashMap<(String, i32), u64>,
) -> Option<TopicRow> {
    let record = image.topic(name)?;
    let rows: Vec<PartitionRow> = image
        .topic_partitions(name)
        .map(|(p, r)| partition_row(image, name, p, r, offsets, sizes))
        .collect();
    Some(TopicRow {
        name: name.to_string(),
        internal: name.starts_with("__"),
        partitions: record.partitions,
        replication_factor: record.replication_factor,
        under_replicated: rows.iter().filter(|r| r.under_replicated).count(),
        offline: rows.iter().filter(|r| r.offline).count(),
        messages: rows.iter().map(|r| Some(r.log_end? - r.log_start?)).sum(),
        size: rows.iter().map(|r| r.size).sum(),
        rates: rates(console, name),
    })
}

async fn all_log_dirs(console: &Console, image: &MetadataImage) -> HashMap<i32, BrokerLogDirs> {
    let ids: Vec<i32> = image.brokers.keys().copied().collect();
    let answers = join_all(ids.iter().map(|b| console.calls.log_dirs(*b))).await;
    ids.into_iter()
        .zip(answers)
        .filter_map(|(id, r)| match r {
            Ok(dirs) => Some((id, dirs)),
            Err(err) => {
                tracing::debug!(broker = id, error = %err, "the console could not describe log dirs");
                None
            }
        })
        .collect()
}

async fn store_health(console: &Console) -> StoreHealth {
    let started = Instant::now();
    let read =
        tokio::time::timeout(STORE_PROBE_TIMEOUT, console.store.get(&console.probe_key)).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (healthy, detail) = match read {
        Ok(Ok(Some(_))) => (true, String::new()),
        Ok(Ok(None)) => (false, "the cluster id is missing".to_string()),
        Ok(Err(err)) => (false, err.to_string()),
        Err(_) => (false, format!("no answer within {STORE_PROBE_TIMEOUT:?}")),
    };
    StoreHealth {
        kind: console.store_kind.to_string(),
        healthy,
        latency_ms,
        detail,
    }
}

fn listener(console: &Console) -> &str {
    &console.listener
}

pub async fn overview(console: &Console) -> Overview {
    let image = console.cache.image();
    let (disks, store, listing) = tokio::join!(
        all_log_dirs(console, &image),
        store_health(console),
        console.calls.list_groups(),
    );
    // The topics with a rate so far (a new topic has none until its second sample).
    let messages_in_per_sec = {
        let history = console.history();
        image
            .topics
            .keys()
            .filter_map(|t| {
                history.latest(&SeriesKey::Topic {
                    topic: t.clone(),
                    measure: Measure::MessagesIn,
                })
            })
            .fold(None, |sum: Option<f64>, rate| {
                Some(sum.unwrap_or(0.0) + rate)
            })
    };
    Overview {
        cluster_id: image.cluster_id.clone().unwrap_or_default(),
        controller: image.controller.map(|c| c.0),
        brokers: broker_rows(&image, listener(console), &disks),
        topics: image.topics.len(),
        partitions: all_partitions(&image).count(),
        under_replicated: all_partitions(&image)
            .filter(|(_, _, p)| is_under_replicated(&image, p))
            .count(),
        offline: all_partitions(&image)
            .filter(|(_, _, p)| image.is_offline(p))
            .count(),
        store,
        groups: listing.complete.then_some(listing.groups.len()),
        messages_in_per_sec,
    }
}

pub async fn brokers(console: &Console) -> Vec<BrokerRow> {
    let image = console.cache.image();
    let disks = all_log_dirs(console, &image).await;
    broker_rows(&image, listener(console), &disks)
}

pub async fn topics(console: &Console) -> Vec<TopicRow> {
    let image = console.cache.image();
    let wanted: Vec<(String, i32)> = all_partitions(&image)
        .map(|(t, p, _)| (t.to_string(), p))
        .collect();
    let (offsets, disks) = tokio::join!(
        console.calls.offsets(&wanted),
        all_log_dirs(console, &image)
    );
    let sizes = leader_sizes(&image, &disks);
    image
        .topics
        .keys()
        .filter_map(|name| topic_row(console, &image, name, &offsets, &sizes))
        .collect()
}

fn topic_chart(
    console: &Console,
    topic: &str,
    id: &str,
    title: &str,
    measure: Measure,
    unit: Unit,
) -> Chart {
    let points = console.history().series(&SeriesKey::Topic {
        topic: topic.to_string(),
        measure,
    });
    Chart {
        id: id.to_string(),
        title: title.to_string(),
        unit,
        series: vec![Series {
            label: topic.to_string(),
            points,
        }],
    }
}

/// Every group's committed offsets and lag on `topic`.
async fn consumers_of(
    console: &Console,
    topic: &str,
    offsets: &HashMap<(String, i32), LogRange>,
) -> Vec<TopicConsumer> {
    let listing = console.calls.list_groups().await;
    let ids: Vec<String> = listing.groups.into_iter().map(|g| g.id).collect();
    let committed = console.calls.committed_offsets(&ids).await;
    let mut consumers: Vec<TopicConsumer> = committed
        .into_iter()
        .filter(|(_, cs)| cs.iter().any(|c| c.topic == topic))
        .map(|(group, cs)| {
            let on_topic: Vec<Committed> = cs.into_iter().filter(|c| c.topic == topic).collect();
            TopicConsumer {
                lag: lag_by_topic(&on_topic, offsets).get(topic).copied(),
                group,
            }
        })
        .collect();
    consumers.sort_by(|a, b| a.group.cmp(&b.group));
    consumers
}

pub async fn topic(console: &Console, name: &str) -> Option<TopicDetail> {
    let image = console.cache.image();
    let record = image.topic(name)?.clone();
    let wanted: Vec<(String, i32)> = image
        .topic_partitions(name)
        .map(|(p, _)| (name.to_string(), p))
        .collect();
    let (offsets, disks, configs) = tokio::join!(
        console.calls.offsets(&wanted),
        all_log_dirs(console, &image),
        console
            .calls
            .configs(ConfigResource::Topic(name.to_string())),
    );
    let sizes = leader_sizes(&image, &disks);
    let consumers = consumers_of(console, name, &offsets).await;
    let row = topic_row(console, &image, name, &offsets, &sizes)?;
    Some(TopicDetail {
        row,
        id: kafka_uuid_string(record.id),
        partitions: image
            .topic_partitions(name)
            .map(|(p, r)| partition_row(&image, name, p, r, &offsets, &sizes))
            .collect(),
        configs: configs.unwrap_or_else(|err| {
            tracing::debug!(topic = name, error = %err, "the console could not describe a topic's configs");
            Vec::new()
        }),
        consumers,
        charts: vec![
            topic_chart(console, name, "messages-in", "Messages in per second", Measure::MessagesIn, Unit::PerSecond),
            topic_chart(console, name, "bytes-in", "Bytes in per second", Measure::BytesIn, Unit::BytesPerSecond),
            topic_chart(console, name, "bytes-out", "Bytes out per second", Measure::BytesOut, Unit::BytesPerSecond),
        ],
    })
}

/// Groups with their lag; false when a broker or coordinator did not answer.
pub async fn groups(console: &Console) -> (Vec<GroupRow>, bool) {
    let listing = console.calls.list_groups().await;
    let ids: Vec<String> = listing.groups.iter().map(|g| g.id.clone()).collect();
    // Each description is two calls (FindCoordinator, DescribeGroups): a few at a time,
    // and only the first MAX_GROUPS_DESCRIBED (the rest show what ListGroups tells).
    let calls = &console.calls;
    let described = futures_util::stream::iter(ids.iter().take(MAX_GROUPS_DESCRIBED).cloned())
        .map(|g| async move { calls.describe_group(&g).await })
        .buffered(DESCRIBE_CONCURRENCY)
        .collect::<Vec<_>>();
    let (described, committed) = tokio::join!(described, console.calls.committed_offsets(&ids));
    let mut described = described.into_iter();
    let wanted: Vec<(String, i32)> = committed
        .values()
        .flatten()
        .map(|c| (c.topic.clone(), c.partition))
        .collect();
    let offsets = console.calls.offsets(&wanted).await;
    let mut complete = listing.complete;
    let rows = listing
        .groups
        .into_iter()
        .map(|listed| {
            let cs = committed.get(&listed.id).map(Vec::as_slice).unwrap_or_default();
            let lag = group_lag(cs, &offsets);
            let mut row = GroupRow {
                id: listed.id.clone(),
                state: listed.state,
                protocol_type: listed.protocol_type,
                protocol: String::new(),
                coordinator: Some(listed.coordinator),
                members: 0,
                lag,
                topics: topics_of(cs),
            };
            match described.next() {
                None => {}
                Some(Ok(d)) => {
                    row.state = d.state;
                    row.protocol = d.protocol;
                    row.members = d.members.len();
                }
                Some(Err(err)) => {
                    complete = false;
                    tracing::debug!(group = %listed.id, error = %err, "the console could not describe a group");
                }
            }
            row
        })
        .collect();
    (rows, complete)
}

fn topics_of(committed: &[Committed]) -> Vec<String> {
    let mut topics: Vec<String> = committed.iter().map(|c| c.topic.clone()).collect();
    topics.sort();
    topics.dedup();
    topics
}

fn group_lag(committed: &[Committed], offsets: &HashMap<(String, i32), LogRange>) -> Option<i64> {
    committed
        .iter()
        .map(|c| {
            offsets
                .get(&(c.topic.clone(), c.partition))
                .map(|r| partition_lag(c.offset, r.end))
        })
        .sum()
}

/// None when the group does not exist (no members and no committed offsets).
pub async fn group(console: &Console, id: &str) -> Result<Option<GroupDetail>, CallError> {
    let ids = [id.to_string()];
    let (described, committed) = tokio::join!(
        console.calls.describe_group(id),
        console.calls.committed_offsets(&ids),
    );
    let described = described?;
    let committed = committed.get(id).cloned().unwrap_or_default();
    if described.state == "Dead" && committed.is_empty() {
        return Ok(None);
    }
    let mut wanted: Vec<(String, i32)> = committed
        .iter()
        .map(|c| (c.topic.clone(), c.partition))
        .collect();
    for m in &described.members {
        for (t, ps) in &m.assignment {
            wanted.extend(ps.iter().map(|p| (t.clone(), *p)));
        }
    }
    wanted.sort();
    wanted.dedup();
    let offsets = console.calls.offsets(&wanted).await;
    let owner = |topic: &str, partition: i32| {
        described
            .members
            .iter()
            .find(|m| {
                m.assignment
                    .iter()
                    .any(|(t, ps)| t == topic && ps.contains(&partition))
            })
            .map(|m| m.client_id.clone())
    };
    let committed_at: HashMap<(String, i32), i64> = committed
        .iter()
        .map(|c| ((c.topic.clone(), c.partition), c.offset))
        .collect();
    let rows: Vec<GroupOffsetRow> = wanted
        .iter()
        .map(|(topic, partition)| {
            let committed = committed_at.get(&(topic.clone(), *partition)).copied();
            let log_end = offsets.get(&(topic.clone(), *partition)).map(|r| r.end);
            GroupOffsetRow {
                topic: topic.clone(),
                partition: *partition,
                committed,
                log_end,
                lag: committed.zip(log_end).map(|(c, e)| partition_lag(c, e)),
                owner: owner(topic, *partition),
            }
        })
        .collect();
    let lag_series = console.history().lag_of_group(id);
    Ok(Some(GroupDetail {
        row: GroupRow {
            id: id.to_string(),
            state: described.state.clone(),
            protocol_type: described.protocol_type.clone(),
            protocol: described.protocol.clone(),
            coordinator: Some(described.coordinator),
            members: described.members.len(),
            lag: group_lag(&committed, &offsets),
            topics: topics_of(&committed),
        },
        members: described.members,
        offsets: rows,
        charts: vec![Chart {
            id: "lag".to_string(),
            title: "Lag (records behind)".to_string(),
            unit: Unit::Count,
            series: lag_series
                .into_iter()
                .map(|(label, points)| Series { label, points })
                .collect(),
        }],
    }))
}

/// None when the topic does not exist.
pub async fn messages(console: &Console, query: MessageQuery) -> Option<MessagePage> {
    let image = console.cache.image();
    let partitions = image.topic(&query.topic)?.partitions;
    let mut page = MessagePage {
        partitions,
        rows: Vec::new(),
        log_start: None,
        log_end: None,
        next: None,
        error: None,
        query,
    };
    if page.query.partition < 0 || page.query.partition >= partitions {
        page.error = Some(format!("the topic has partitions 0 to {}", partitions - 1));
        return Some(page);
    }
    let key = (page.query.topic.clone(), page.query.partition);
    let Some(range) = console
        .calls
        .offsets(std::slice::from_ref(&key))
        .await
        .remove(&key)
    else {
        page.error = Some("the partition's leader did not answer (offline?)".to_string());
        return Some(page);
    };
    page.log_start = Some(range.start);
    page.log_end = Some(range.end);
    let limit = page.query.limit.clamp(1, MAX_PAGE);
    let from = match page.query.start {
        Start::Earliest => range.start,
        Start::Latest => range.end.saturating_sub(limit as i64).max(range.start),
        Start::Offset(o) => o.clamp(range.start, range.end),
        Start::Timestamp(ts) => match console.calls.offset_for_time(&key.0, key.1, ts).await {
            Ok(Some(o)) => o,
            Ok(None) => range.end,
            Err(err) => {
                page.error = Some(err.to_string());
                return Some(page);
            }
        },
    };
    if from >= range.end {
        return Some(page);
    }
    match console
        .calls
        .fetch(&key.0, key.1, from, PAGE_BYTES, limit)
        .await
    {
        Ok(fetched) => {
            page.rows = fetched.rows;
            page.next = fetched
                .next
                .filter(|next| *next > from && *next < fetched.high_watermark);
        }
        Err(err) => page.error = Some(err.to_string()),
    }
    Some(page)
}

pub async fn broker(console: &Console, id: i32) -> Option<BrokerDetail> {
    let image = console.cache.image();
    let live = image.brokers.contains_key(&id);
    let (dirs, configs, about) = tokio::join!(
        async {
            if live {
                console.calls.log_dirs(id).await.ok()
            } else {
                None
            }
        },
        async {
            if live {
                console.calls.configs(ConfigResource::Broker(id)).await.ok()
            } else {
                None
            }
        },
        async {
            if live {
                console.traffic.describe(id).await.ok()
            } else {
                None
            }
        },
    );
    let disks: HashMap<i32, BrokerLogDirs> = dirs.iter().map(|d| (id, d.clone())).collect();
    let row = broker_rows(&image, listener(console), &disks)
        .into_iter()
        .find(|r| r.id == id)?;
    let now = crate::clock::now_ms();
    Some(BrokerDetail {
        row,
        version: about.as_ref().map(|a| a.version.clone()),
        started_at_ms: about.as_ref().map(|a| a.started_at_ms),
        uptime_secs: about
            .as_ref()
            .map(|a| (now.saturating_sub(a.started_at_ms).max(0) / 1000) as u64),
        configs: configs.unwrap_or_default(),
        log_dirs: dirs.map(|d| d.dirs).unwrap_or_default(),
    })
}
