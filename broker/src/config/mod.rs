//! Broker configuration: `server.properties` with Kafka's key names, every key also as a
//! `--key value` flag and a `RUNNEL_KEY` environment variable (dots become underscores),
//! with flags over environment over file over defaults.
//!
//! An invalid value stops start-up with a message naming the key; an unknown key only
//! warns, so a Kafka `server.properties` can be reused as it is.

// The key table lives in its own crate so the operator checks keys by the same rules.
pub use runnel_config_keys as defs;
pub mod layers;
pub mod topic;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use defs::{
    broker_key, check_value, BROKER_ALIASES, BROKER_KEYS, IGNORED_KAFKA_KEYS, REPLACED_KAFKA_KEYS,
};

use crate::error::{Error, Result};

/// Where a value came from (DescribeConfigs reports it as `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    File,
    Env,
    Flag,
}

impl Source {
    fn describe(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::File => "the configuration file",
            Source::Env => "the environment",
            Source::Flag => "the command line",
        }
    }
}

/// The key prefix of a standalone broker's embedded store when `etcd.prefix` is not set:
/// the store holds one cluster only, and data directories made before `etcd.prefix`
/// existed keep their metadata under it.
pub const STANDALONE_PREFIX: &str = "/runnel/";

/// Whether acknowledged data is fsynced first (see `log.flush.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    Durable,
    Interval,
}

/// One `NAME://host:port` listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Listener {
    fn parse(text: &str) -> std::result::Result<Listener, String> {
        let (name, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("{text:?} is not NAME://host:port"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?} has no port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{text:?} has an invalid port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(Listener {
            name: name.to_string(),
            host: host.to_string(),
            port,
        })
    }

    /// The address to bind: an empty host binds every interface.
    pub fn bind_address(&self) -> String {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        if host.contains(':') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    Help,
    Version,
}

/// The web console's settings (`console.*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleConfig {
    pub enable: bool,
    pub listener: String,
    /// Host header values accepted besides localhost and the listener's own address.
    pub allowed_hosts: Vec<String>,
    pub read_only: bool,
    pub history_interval: Duration,
    pub history_points: usize,
}

/// The resolved broker configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub broker_id: i32,
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Vec<Listener>,
    pub rack: Option<String>,
    pub log_dirs: Vec<PathBuf>,
    pub metadata_dir: PathBuf,
    /// etcd client URLs; empty for a standalone broker (embedded metadata store).
    pub etcd_endpoints: Vec<String>,
    /// `cluster.name`.
    pub cluster_name: String,
    /// The key prefix of this cluster's metadata, ending with `/` (`etcd.prefix` or its
    /// default), in whichever store holds it.
    pub metadata_prefix: String,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics: bool,
    pub flush_mode: FlushMode,
    pub flush_threads: usize,
    pub flush_bulk_threshold: usize,
    pub socket_request_max_bytes: usize,
    /// A frame must be read whole within this once its first bytes arrived.
    pub request_read_timeout: Duration,
    /// A response must be taken by the client within this.
    pub write_timeout: Duration,
    /// The most record bytes in one Fetch response.
    pub fetch_max_bytes: usize,
    /// `log.cleaner.dedupe.buffer.size`: memory for one pass's key map.
    pub cleaner_dedupe_buffer_size: usize,
    pub queued_max_request_bytes: usize,
    pub max_connections: usize,
    pub connections_max_idle: Duration,
    pub http_listener: String,
    pub admin_listener: String,
    pub admin_advertised_listener: Option<String>,
    pub admin_max_message_bytes: usize,
    pub console: ConsoleConfig,
    pub lease_ttl: Duration,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_max: Duration,
    /// `replica.fetch.max.bytes`.
    pub replica_fetch_max_bytes: usize,
    /// `replica.fetch.wait.max.ms`.
    pub replica_fetch_wait_max: Duration,
    pub checkpoint_interval: Duration,
    pub retention_check_interval: Duration,
    pub producer_expiration_ms: i64,
    pub producer_expiration_check_interval: Duration,
    pub shutdown_timeout: Duration,
    pub decompression_max_bytes: usize,
    pub offsets_partitions: i32,
    pub offsets_replication_factor: i16,
    pub offsets_segment_bytes: i64,
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval: Duration,
    pub offset_metadata_max_bytes: usize,
    pub group_initial_rebalance_delay_ms: i32,
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    pub group_max_size: usize,
    pub cleaner_enable: bool,
    pub cleaner_backoff: Duration,
    /// Every key's effective value and where it came from.
    values: BTreeMap<&'static str, (String, Source)>,
    /// Warnings found while reading (unknown or ignored keys), logged once tracing is up.
    pub warnings: Vec<String>,
}

/// Parses the text of a `.properties` file into key/value pairs, in order.
pub fn parse_properties(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut logical = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        let continued = line.ends_with('\\') && !line.ends_with("\\\\");
        logical.push_str(
            line.strip_suffix('\\')
                .filter(|_| continued)
                .unwrap_or(line),
        );
        if continued {
            continue;
        }
        let entry = std::mem::take(&mut logical);
        let split = entry
            .char_indices()
            .find(|&(i, c)| (c == '=' || c == ':') && !entry[..i].ends_with('\\'))
            .map(|(i, _)| i);
        let (key, value) = match split {
            Some(i) => (&entry[..i], &entry[i + 1..]),
            None => (entry.as_str(), ""),
        };
        let unescape = |s: &str| {
            s.replace("\\:", ":")
                .replace("\\=", "=")
                .replace("\\\\", "\\")
        };
        pairs.push((unescape(key.trim()), unescape(value.trim())));
    }
    pairs
}

/// Maps `RUNNEL_LOG_DIRS` to `log.dirs`.
fn env_key(var: &str) -> Option<String> {
    let rest = var.strip_prefix("RUNNEL_")?;
    if rest.is_empty() || rest == "CONFIG" {
        return None;
    }
    Some(rest.to_ascii_lowercase().replace('_', "."))
}

fn canonical(key: &str) -> &str {
    BROKER_ALIASES
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key, |(_, name)| name)
}

struct Layers {
    set: BTreeMap<String, (String, Source)>,
    warnings: Vec<String>,
}

impl Layers {
    fn apply(&mut self, key: &str, value: String, source: Source) {
        let key = canonical(key.trim());
        let replacement = REPLACED_KAFKA_KEYS
            .iter()
            .find(|(kafka, _)| *kafka == key)
            .map(|(_, runnel)| runnel);
        if broker_key(key).is_some() {
            self.set.insert(key.to_string(), (value, source));
        } else if let Some(runnel) = replacement {
            self.warnings.push(format!(
                "configuration {key} (from {}) has no effect in Runnel: set {runnel} instead",
                source.describe()
            ));
        } else if IGNORED_KAFKA_KEYS.contains(&key) {
            self.warnings.push(format!(
                "configuration {key} (from {}) has no effect in Runnel",
                source.describe()
            ));
        } else {
            self.warnings.push(format!(
                "unknown configuration {key} (from {}) is ignored",
                source.describe()
            ));
        }
    }
}

impl Config {
    /// Reads the command line and environment (flags over environment over file).
    pub fn from_args(
        args: impl IntoIterator<Item = String>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Command> {
        // `--config` may repeat: files apply in order, a later one over an earlier one (the
        // operator's pods add a file their init container writes, e.g. broker.rack).
        let mut files: Vec<PathBuf> = Vec::new();
        let mut flags: Vec<(String, String)> = Vec::new();
        let mut args = args.into_iter();
        let usage = |reason: String| Error::InvalidConfig {
            key: "command line".into(),
            value: String::new(),
            reason,
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-h" | "--help" => return Ok(Command::Help),
                "-V" | "--version" => return Ok(Command::Version),
                "-c" | "--config" => {
                    let path = args
                        .next()
                        .ok_or_else(|| usage(format!("{arg} needs a file path")))?;
                    files.push(PathBuf::from(path));
                }
                "--override" => {
                    let kv = args
                        .next()
                        .ok_or_else(|| usage("--override needs key=value".into()))?;
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| usage(format!("--override {kv:?} is not key=value")))?;
                    flags.push((k.to_string(), v.to_string()));
                }
                flag if flag.starts_with("--") => {
                    let body = &flag[2..];
                    if let Some(path) = body.strip_prefix("config=") {
                        files.push(PathBuf::from(path));
                        continue;
                    }
                    let (key, value) = match body.split_once('=') {
                        Some((k, v)) => (k.to_string(), v.to_string()),
                        None => {
                            let v = args
                                .next()
                                .ok_or_else(|| usage(format!("{flag} needs a value")))?;
                            (body.to_string(), v)
                        }
                    };
                    flags.push((key, value));
                }
                path if files.is_empty() && !path.starts_with('-') => {
                    files.push(PathBuf::from(path));
                }
                other => return Err(usage(format!("unexpected argument {other:?}"))),
            }
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        if files.is_empty() {
            files.extend(
                env.iter()
                    .find(|(k, _)| k == "RUNNEL_CONFIG")
                    .map(|(_, v)| PathBuf::from(v)),
            );
        }
        let mut layers = Layers {
            set: BTreeMap::new(),
            warnings: Vec::new(),
        };
        for path in &files {
            let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfigFile {
                path: path.clone(),
                source,
            })?;
            for (k, v) in parse_properties(&text) {
                layers.apply(&k, v, Source::File);
            }
        }
        for (var, value) in env {
            if let Some(key) = env_key(&var) {
                layers.apply(&key, value, Source::Env);
            }
        }
        for (key, value) in flags {
            layers.apply(&key, value, Source::Flag);
        }
        Ok(Command::Run(Box::new(Self::resolve(
            layers.set,
            layers.warnings,
        )?)))
    }

    /// A configuration from explicit `key=value` pairs over the defaults (tests, tools).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Config> {
        let mut layers = Layers {
            set: BTreeMap::new(),
            warnings: Vec::new(),
        };
        for (k, v) in pairs {
            layers.apply(k, v.to_string(), Source::Flag);
        }
        Self::resolve(layers.set, layers.warnings)
    }

    fn resolve(set: BTreeMap<String, (String, Source)>, warnings: Vec<String>) -> Result<Config> {
        let mut values: BTreeMap<&'static str, (String, Source)> = BTreeMap::new();
        for key in BROKER_KEYS {
            if let Some((value, source)) = set.get(key.name) {
                check_value(key.kind, value).map_err(|reason| Error::InvalidConfig {
                    key: key.name.to_string(),
                    value: value.clone(),
                    reason: format!("{reason} (from {})", source.describe()),
                })?;
                values.insert(key.name, (value.trim().to_string(), *source));
            } else if let Some(default) = key.default {
                values.insert(key.name, (default.to_string(), Source::Default));
            }
        }
        derive_synonyms(&mut values);
        let mut config = Config {
            broker_id: 0,
            listeners: Vec::new(),
            advertised_listeners: Vec::new(),
            rack: None,
            log_dirs: Vec::new(),
            metadata_dir: PathBuf::new(),
            etcd_endpoints: Vec::new(),
            cluster_name: String::new(),
            metadata_prefix: String::new(),
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics: true,
            flush_mode: FlushMode::Durable,
            flush_threads: 1,
            flush_bulk_threshold: 0,
            socket_request_max_bytes: 0,
            request_read_timeout: Duration::ZERO,
            write_timeout: Duration::ZERO,
            fetch_max_bytes: 0,
            cleaner_dedupe_buffer_size: 0,
            queued_max_request_bytes: 0,
            max_connections: 0,
            connections_max_idle: Duration::ZERO,
            http_listener: String::new(),
            admin_listener: String::new(),
            admin_advertised_listener: None,
            admin_max_message_bytes: 0,
            console: ConsoleConfig::default(),
            lease_ttl: Duration::ZERO,
            replica_lag_max: Duration::ZERO,
            replica_fetch_max_bytes: 0,
            replica_fetch_wait_max: Duration::ZERO,
            checkpoint_interval: Duration::ZERO,
            retention_check_interval: Duration::ZERO,
            producer_expiration_ms: 0,
            producer_expiration_check_interval: Duration::ZERO,
            shutdown_timeout: Duration::ZERO,
            decompression_max_bytes: 0,
            offsets_partitions: 50,
            offsets_replication_factor: 3,
            offsets_segment_bytes: 0,
            offsets_retention_ms: 0,
            offsets_retention_check_interval: Duration::ZERO,
            offset_metadata_max_bytes: 0,
            group_initial_rebalance_delay_ms: 0,
            group_min_session_timeout_ms: 0,
            group_max_session_timeout_ms: 0,
            group_max_size: 0,
            cleaner_enable: true,
            cleaner_backoff: Duration::ZERO,
            values,
            warnings,
        };
        config.fill()?;
        Ok(config)
    }

    fn fill(&mut self) -> Result<()> {
        self.broker_id = self.int("broker.id")? as i32;
        self.listeners = self.listeners_of("listeners")?;
        self.advertised_listeners = match self.values.get("advertised.listeners") {
            Some(_) => self.listeners_of("advertised.listeners")?,
            None => self.listeners.clone(),
        };
        self.rack = self
            .value("broker.rack")
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        self.log_dirs = self
            .list("log.dirs")
            .into_iter()
            .map(PathBuf::from)
            .collect();
        if self.log_dirs.is_empty() {
            return Err(self.invalid("log.dirs", "at least one directory is required"));
        }
        self.metadata_dir = self
            .value("metadata.log.dir")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.log_dirs[0].clone());
        self.fill_metadata_store()?;
        self.num_partitions = self.int("num.partitions")? as i32;
        self.default_replication_factor = self.int("default.replication.factor")? as i16;
        self.auto_create_topics = self.bool("auto.create.topics.enable");
        self.flush_mode = match self.value("log.flush.mode") {
            Some("interval") => FlushMode::Interval,
            _ => FlushMode::Durable,
        };
        self.flush_threads = self.int("log.flush.threads")? as usize;
        self.flush_bulk_threshold = self.int("log.flush.bulk.threshold")? as usize;
        self.socket_request_max_bytes = self.int("socket.request.max.bytes")? as usize;
        self.request_read_timeout = self.millis("socket.request.read.timeout.ms")?;
        self.write_timeout = self.millis("socket.write.timeout.ms")?;
        self.fetch_max_bytes = self.int("fetch.max.bytes")? as usize;
        self.cleaner_dedupe_buffer_size = self.int("log.cleaner.dedupe.buffer.size")? as usize;
        self.queued_max_request_bytes = self.int("queued.max.request.bytes")? as usize;
        if self.queued_max_request_bytes < self.socket_request_max_bytes {
            return Err(self.invalid(
                "queued.max.request.bytes",
                "must be at least socket.request.max.bytes",
            ));
        }
        self.max_connections = self.int("max.connections")? as usize;
        self.connections_max_idle = self.millis("connections.max.idle.ms")?;
        self.http_listener = self.value("http.listener").unwrap_or_default().to_string();
        self.admin_listener = self.value("admin.listener").unwrap_or_default().to_string();
        self.admin_advertised_listener = self
            .value("admin.advertised.listener")
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        self.admin_max_message_bytes = self.int("admin.max.message.bytes")? as usize;
        self.console = ConsoleConfig {
            enable: self.bool("console.enable"),
            listener: self
                .value("console.listener")
                .unwrap_or_default()
                .to_string(),
            allowed_hosts: self.list("console.allowed.hosts"),
            read_only: self.bool("console.read.only"),
            history_interval: self.millis("console.history.interval.ms")?,
            history_points: self.int("console.history.points")? as usize,
        };
        self.lease_ttl = self.millis("metadata.lease.ttl.ms")?;
        self.replica_lag_max = self.millis("replica.lag.time.max.ms")?;
        self.replica_fetch_max_bytes = self.int("replica.fetch.max.bytes")? as usize;
        self.replica_fetch_wait_max = self.millis("replica.fetch.wait.max.ms")?;
        self.checkpoint_interval = self.millis("log.flush.offset.checkpoint.interval.ms")?;
        self.retention_check_interval = self.millis("log.retention.check.interval.ms")?;
        self.producer_expiration_ms = self.int("producer.id.expiration.ms")?;
        self.producer_expiration_check_interval =
            self.millis("producer.id.expiration.check.interval.ms")?;
        self.shutdown_timeout = self.millis("shutdown.timeout.ms")?;
        self.decompression_max_bytes = self.int("message.decompression.max.bytes")? as usize;
        self.offsets_partitions = self.int("offsets.topic.num.partitions")? as i32;
        self.offsets_replication_factor = self.int("offsets.topic.replication.factor")? as i16;
        self.offsets_segment_bytes = self.int("offsets.topic.segment.bytes")?;
        self.offsets_retention_ms = self
            .int("offsets.retention.minutes")?
            .saturating_mul(60_000);
        self.offsets_retention_check_interval =
            self.millis("offsets.retention.check.interval.ms")?;
        self.offset_metadata_max_bytes = self.int("offset.metadata.max.bytes")? as usize;
        self.group_initial_rebalance_delay_ms =
            self.int("group.initial.rebalance.delay.ms")? as i32;
        self.group_min_session_timeout_ms = self.int("group.min.session.timeout.ms")? as i32;
        self.group_max_session_timeout_ms = self.int("group.max.session.timeout.ms")? as i32;
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err(self.invalid(
                "group.min.session.timeout.ms",
                "must not exceed group.max.session.timeout.ms",
            ));
        }
        self.group_max_size = self.int("group.max.size")? as usize;
        self.cleaner_enable = self.bool("log.cleaner.enable");
        self.cleaner_backoff = self.millis("log.cleaner.backoff.ms")?;
        let message_max = self.int("message.max.bytes")?;
        if message_max > self.int("socket.request.max.bytes")? {
            return Err(self.invalid(
                "message.max.bytes",
                "must not exceed socket.request.max.bytes",
            ));
        }
        Ok(())
    }

    /// `etcd.endpoints`, `cluster.name` and the key prefix derived from them.
    fn fill_metadata_store(&mut self) -> Result<()> {
        self.etcd_endpoints = self.list("etcd.endpoints");
        self.cluster_name = self.value("cluster.name").unwrap_or_default().to_string();
        if self.cluster_name.is_empty() || self.cluster_name.contains('/') {
            return Err(self.invalid("cluster.name", "must be non-empty and without '/'"));
        }
        self.metadata_prefix = match self.value("etcd.prefix") {
            Some(prefix) => {
                if !prefix.starts_with('/') || prefix.contains("//") {
                    return Err(self.invalid(
                        "etcd.prefix",
                        "must start with '/' and have no empty segment",
                    ));
                }
                if prefix.ends_with('/') {
                    prefix.to_string()
                } else {
                    format!("{prefix}/")
                }
            }
            None if self.etcd_endpoints.is_empty() => STANDALONE_PREFIX.to_string(),
            None => format!("/runnel/{}/", self.cluster_name),
        };
        Ok(())
    }

    fn invalid(&self, key: &str, reason: &str) -> Error {
        Error::InvalidConfig {
            key: key.to_string(),
            value: self.value(key).unwrap_or_default().to_string(),
            reason: reason.to_string(),
        }
    }

    /// The effective value of a broker key, if it has one.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(v, _)| v.as_str())
    }

    /// The effective value and its source.
    pub fn value_with_source(&self, key: &str) -> Option<(&str, Source)> {
        self.values.get(key).map(|(v, s)| (v.as_str(), *s))
    }

    pub fn int(&self, key: &str) -> Result<i64> {
        let raw = self.value(key).unwrap_or_default();
        raw.parse()
            .map_err(|_| self.invalid(key, "expected an integer"))
    }

    fn millis(&self, key: &str) -> Result<Duration> {
        Ok(Duration::from_millis(self.int(key)?.max(0) as u64))
    }

    pub fn bool(&self, key: &str) -> bool {
        self.value(key) == Some("true")
    }

    pub fn list(&self, key: &str) -> Vec<String> {
        self.value(key)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn listeners_of(&self, key: &str) -> Result<Vec<Listener>> {
        let mut listeners = Vec::new();
        for text in self.list(key) {
            let listener = Listener::parse(&text).map_err(|reason| self.invalid(key, &reason))?;
            if listener.name != "PLAINTEXT" {
                return Err(self.invalid(
                    key,
                    &format!(
                        "listener {} is not supported; only PLAINTEXT is",
                        listener.name
                    ),
                ));
            }
            listeners.push(listener);
        }
        if listeners.is_empty() {
            return Err(self.invalid(key, "at least one listener is required"));
        }
        Ok(listeners)
    }

    /// The metadata store's directory.
    pub fn metadata_store_dir(&self) -> PathBuf {
        self.metadata_dir.join("runnel-metadata")
    }

    /// Paths to log directories, made absolute against `base` when relative.
    pub fn absolute_log_dirs(&self, base: &Path) -> Vec<PathBuf> {
        self.log_dirs.iter().map(|d| base.join(d)).collect()
    }
}

/// Fills the keys whose defaults come from other keys (Kafka's ms/minutes/hours chains).
fn derive_synonyms(values: &mut BTreeMap<&'static str, (String, Source)>) {
    let get = |values: &BTreeMap<&'static str, (String, Source)>, k: &str| {
        values
            .get(k)
            .map(|(v, s)| (v.parse::<i64>().unwrap_or(0), *s))
    };
    if !values.contains_key("log.retention.ms") {
        let derived = match get(values, "log.retention.minutes") {
            Some((m, s)) => Some((if m < 0 { -1 } else { m * 60_000 }, s)),
            None => get(values, "log.retention.hours")
                .map(|(h, s)| (if h < 0 { -1 } else { h * 3_600_000 }, s)),
        };
        if let Some((ms, source)) = derived {
            values.insert("log.retention.ms", (ms.to_string(), source));
        }
    }
    if !values.contains_key("log.roll.ms") {
        if let Some((h, s)) = get(values, "log.roll.hours") {
            values.insert("log.roll.ms", ((h * 3_600_000).to_string(), s));
        }
    }
}

/// The `--help` text, generated from the key table.
pub fn help_text() -> String {
    let mut text = String::from(
        "runnel-broker: a Kafka-compatible broker\n\n\
         usage: runnel-broker [--config server.properties] [--KEY VALUE | --KEY=VALUE | --override KEY=VALUE]...\n\n\
         Every key can also be set as RUNNEL_KEY in the environment (dots become underscores,\n\
         e.g. RUNNEL_LOG_DIRS); flags win over the environment, which wins over the file.\n\
         --config may be given more than once: later files win over earlier ones.\n\
         With no configuration at all the broker listens on localhost:9092 with its data in\n\
         ./runnel-data. Log verbosity follows RUST_LOG (default info).\n\nkeys:\n",
    );
    for key in BROKER_KEYS {
        let default = key.default.unwrap_or("(derived)");
        text.push_str(&format!(
            "  {:<40} {:<8} default {}\n      {}\n",
            key.name,
            key.kind.type_name(),
            default,
            key.doc
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config> {
        let args = args.iter().map(|s| s.to_string());
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        match Config::from_args(args, env)? {
            Command::Run(config) => Ok(*config),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn no_configuration_gives_a_standalone_broker_on_localhost_9092() {
        let config = run(&[], &[]).unwrap();
        assert_eq!(config.broker_id, 0);
        assert_eq!(config.listeners[0].bind_address(), "localhost:9092");
        assert_eq!(config.log_dirs, vec![PathBuf::from("./runnel-data")]);
        assert_eq!(config.flush_mode, FlushMode::Durable);
        assert_eq!(config.value("log.retention.ms"), Some("604800000"));
        assert!(config.warnings.is_empty());
    }

    #[test]
    fn flags_win_over_environment_which_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.properties");
        std::fs::write(
            &file,
            "# comment\nnum.partitions=3\nlog.dirs = /a, /b\nnode.id: 7\nlog.retention.hours=1\n",
        )
        .unwrap();
        let config = run(
            &["--config", file.to_str().unwrap(), "--num.partitions", "5"],
            &[
                ("RUNNEL_NUM_PARTITIONS", "4"),
                ("RUNNEL_AUTO_CREATE_TOPICS_ENABLE", "false"),
            ],
        )
        .unwrap();
        assert_eq!(config.num_partitions, 5);
        assert!(!config.auto_create_topics);
        assert_eq!(config.broker_id, 7);
        assert_eq!(
            config.log_dirs,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert_eq!(config.value("log.retention.ms"), Some("3600000"));
        assert_eq!(
            config.value_with_source("num.partitions"),
            Some(("5", Source::Flag))
        );
    }

    #[test]
    fn repeated_config_files_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("server.properties");
        let node = dir.path().join("node.properties");
        std::fs::write(&base, "num.partitions=3\nbroker.rack=unset\n").unwrap();
        std::fs::write(&node, "broker.rack=zone-b\n").unwrap();
        let config = run(
            &[
                "--config",
                base.to_str().unwrap(),
                &format!("--config={}", node.display()),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(config.num_partitions, 3);
        assert_eq!(config.rack.as_deref(), Some("zone-b"));
    }

    #[test]
    fn an_invalid_value_names_the_key() {
        let err = run(&["--num.partitions=zero"], &[]).unwrap_err();
        assert!(err.to_string().contains("num.partitions"), "{err}");
        let err = run(&[], &[("RUNNEL_LISTENERS", "SSL://:9093")]).unwrap_err();
        assert!(err.to_string().contains("listeners"), "{err}");
        let err = run(&["--message.max.bytes=200000000"], &[]).unwrap_err();
        assert!(err.to_string().contains("message.max.bytes"), "{err}");
    }

    #[test]
    fn etcd_keys_choose_the_store_and_the_prefix() {
        let standalone = run(&[], &[]).unwrap();
        assert!(standalone.etcd_endpoints.is_empty());
        assert_eq!(standalone.metadata_prefix, "/runnel/");
        let cluster = run(
            &[
                "--etcd.endpoints",
                "http://10.0.0.1:2379, http://10.0.0.2:2379",
            ],
            &[("RUNNEL_CLUSTER_NAME", "orders")],
        )
        .unwrap();
        assert_eq!(
            cluster.etcd_endpoints,
            vec!["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        assert_eq!(cluster.metadata_prefix, "/runnel/orders/");
        let operator = run(
            &[],
            &[
                ("RUNNEL_ETCD_ENDPOINTS", "http://etcd:2379"),
                ("RUNNEL_ETCD_PREFIX", "/runnel/team-a/events"),
            ],
        )
        .unwrap();
        assert_eq!(operator.metadata_prefix, "/runnel/team-a/events/");
        assert!(run(&["--etcd.prefix=runnel"], &[]).is_err());
        assert!(run(&["--cluster.name=a/b"], &[]).is_err());
    }

    #[test]
    fn zookeeper_connect_warns_with_the_key_that_replaces_it() {
        let config = run(&["--zookeeper.connect=zk:2181"], &[]).unwrap();
        assert_eq!(config.warnings.len(), 1);
        assert!(
            config.warnings[0].contains("etcd.endpoints"),
            "{}",
            config.warnings[0]
        );
    }

    #[test]
    fn unknown_and_ignored_keys_warn() {
        let config = run(&["--no.such.key=1", "--num.io.threads=8"], &[]).unwrap();
        assert_eq!(config.warnings.len(), 2);
        assert!(config.warnings[0].contains("no.such.key"));
        assert!(config.warnings[1].contains("no effect"));
    }

    #[test]
    fn properties_parse_continuations_and_escapes() {
        let pairs = parse_properties("a=1\nb = x\\\n  y\n! bang\nc\\:d=e\nempty\n");
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "xy".into()),
                ("c:d".into(), "e".into()),
                ("empty".into(), "".into())
            ]
        );
    }

    #[test]
    fn listeners_parse_hosts_and_reject_bad_ports() {
        let l = Listener::parse("PLAINTEXT://:9092").unwrap();
        assert_eq!(l.bind_address(), "0.0.0.0:9092");
        let l = Listener::parse("PLAINTEXT://[::1]:9092").unwrap();
        assert_eq!(l.bind_address(), "[::1]:9092");
        assert!(Listener::parse("PLAINTEXT://host:99999").is_err());
        assert!(Listener::parse("host:9092").is_err());
    }
}
