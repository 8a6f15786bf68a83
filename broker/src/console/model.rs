//! What the console's pages show: plain data, filled by the gatherers (`cluster`, `calls`,
//! `history`) and rendered by `pages`. Nothing here does I/O.
//!
//! `None` in a measured field means "not known right now" (a broker did not answer, a
//! leader is offline): pages show it as "–", never as 0.

/// A broker's state as this broker's metadata shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerState {
    /// Registered under a live lease.
    Live,
    /// Stopping on SIGTERM (controlled shutdown).
    ShuttingDown,
    /// Named as a replica but not registered.
    Offline,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BrokerRow {
    pub id: i32,
    pub rack: Option<String>,
    pub state: BrokerState,
    /// host:port of its first advertised Kafka listener (empty when offline).
    pub address: String,
    pub replicas: usize,
    pub leaders: usize,
    /// Bytes in its log directories, and free on their file systems (DescribeLogDirs).
    pub disk_used: Option<u64>,
    pub disk_free: Option<u64>,
    pub controller: bool,
}

/// The metadata store's health, by a timed read through this broker.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreHealth {
    /// "etcd" or "embedded".
    pub kind: String,
    pub healthy: bool,
    pub latency_ms: f64,
    /// Why it is unhealthy; empty when healthy.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    pub cluster_id: String,
    pub controller: Option<i32>,
    pub brokers: Vec<BrokerRow>,
    pub topics: usize,
    pub partitions: usize,
    pub under_replicated: usize,
    pub offline: usize,
    pub store: StoreHealth,
    /// Consumer groups across all coordinators (None when a coordinator did not answer).
    pub groups: Option<usize>,
    /// Messages in per second over the cluster (the last history interval).
    pub messages_in_per_sec: Option<f64>,
}

/// Per-second rates over the last history interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub messages_in: Option<f64>,
    pub bytes_in: Option<f64>,
    pub bytes_out: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicRow {
    pub name: String,
    /// `__consumer_offsets` and the like: shown, never changed by the console.
    pub internal: bool,
    pub partitions: i32,
    pub replication_factor: i16,
    pub under_replicated: usize,
    pub offline: usize,
    /// Sum over partitions of log end minus log start (None if any is unknown).
    pub messages: Option<i64>,
    /// Bytes on the leaders' disks.
    pub size: Option<u64>,
    pub rates: Rates,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PartitionRow {
    pub partition: i32,
    /// -1 when offline.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub log_start: Option<i64>,
    pub log_end: Option<i64>,
    pub size: Option<u64>,
    pub under_replicated: bool,
    pub offline: bool,
}

/// Where a config value comes from, as DescribeConfigs says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    Default,
    /// A broker's static configuration (server.properties, flags, environment).
    Broker,
    /// The cluster-wide dynamic default.
    ClusterDynamic,
    /// A broker's own dynamic config.
    BrokerDynamic,
    /// The topic's override.
    Topic,
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConfigRow {
    pub name: String,
    /// None for a sensitive value (never shown).
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
}

/// A point of a series: milliseconds since the epoch, and the value.
pub type Point = (i64, f64);

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Messages or records (lag).
    Count,
    PerSecond,
    BytesPerSecond,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The element id suffix: the SVG gets `id="chart-{id}"`.
    pub id: String,
    pub title: String,
    pub unit: Unit,
    pub series: Vec<Series>,
}

/// A consumer group's lag on one topic (shown on the topic's page).
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConsumer {
    pub group: String,
    pub lag: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicDetail {
    pub row: TopicRow,
    /// Kafka's base64 topic id.
    pub id: String,
    pub partitions: Vec<PartitionRow>,
    pub configs: Vec<ConfigRow>,
    pub consumers: Vec<TopicConsumer>,
    pub charts: Vec<Chart>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    pub id: String,
    /// Kafka's state name: Empty, Stable, PreparingRebalance, CompletingRebalance, Dead.
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub coordinator: Option<i32>,
    pub members: usize,
    /// Sum of the partitions' lag (None when an end offset is unknown).
    pub lag: Option<i64>,
    pub topics: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberRow {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Topic and partitions, from the consumer protocol's assignment.
    pub assignment: Vec<(String, Vec<i32>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupOffsetRow {
    pub topic: String,
    pub partition: i32,
    pub committed: Option<i64>,
    pub log_end: Option<i64>,
    pub lag: Option<i64>,
    /// The client id of the member it is assigned to.
    pub owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupDetail {
    pub row: GroupRow,
    pub members: Vec<MemberRow>,
    pub offsets: Vec<GroupOffsetRow>,
    pub charts: Vec<Chart>,
}

/// Where the message browser starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Earliest,
    /// The last `limit` records.
    Latest,
    Offset(i64),
    /// The first record at or after this time (ms since the epoch).
    Timestamp(i64),
}

/// How keys, values and headers are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// UTF-8 (lossy, control characters escaped).
    Text,
    /// Pretty-printed when it parses as JSON, else as text.
    Json,
    Hex,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MessageQuery {
    pub topic: String,
    pub partition: i32,
    pub start: Start,
    /// At most `messages::MAX_PAGE`.
    pub limit: usize,
    pub format: Format,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MessagePage {
    pub query: MessageQuery,
    pub partitions: i32,
    pub rows: Vec<MessageRow>,
    pub log_start: Option<i64>,
    pub log_end: Option<i64>,
    /// Where the next page starts (None at the end of the log).
    pub next: Option<i64>,
    /// Why nothing could be read (the leader is offline, ...).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogDirRow {
    pub path: String,
    /// Kafka's error name for a failed directory; None when healthy.
    pub error: Option<String>,
    pub partitions: usize,
    pub size: u64,
    pub total: Option<u64>,
    pub usable: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BrokerDetail {
    pub row: BrokerRow,
    /// The broker's build (DescribeBroker), None when it did not answer.
    pub version: Option<String>,
    pub started_at_ms: Option<i64>,
    pub uptime_secs: Option<u64>,
    pub configs: Vec<ConfigRow>,
    pub log_dirs: Vec<LogDirRow>,
}

/// The outcome of an action, shown at the top of the page it leads to.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub ok: bool,
    pub text: String,
}

/// What every page needs besides its own data.
#[derive(Debug, Clone, PartialEq)]
pub struct PageContext {
    pub title: String,
    /// Which navigation entry is current: "overview", "topics", "groups", "brokers".
    pub section: &'static str,
    pub cluster_id: String,
    /// The broker serving the page.
    pub broker_id: i32,
    pub read_only: bool,
    /// The double-submit CSRF token every form carries (`csrf` field).
    pub csrf_token: String,
    pub notice: Option<Notice>,
}
