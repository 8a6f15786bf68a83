//! The table of every configuration key the broker knows: its type, default and
//! documentation, and for topic-level keys the broker key that supplies their default.
//!
//! Names are Kafka's where Kafka has the setting. Runnel's own keys (`log.flush.mode`,
//! `http.listener`, `message.decompression.max.bytes`, `metadata.*`) follow the same style.
//! DescribeConfigs and `--help` read this table, so it is the one place a key is defined.

/// The type of a key's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    Long {
        min: i64,
    },
    Double {
        min: f64,
        max: f64,
    },
    String,
    List,
    /// One of the listed values (case-sensitive, as Kafka).
    Enum(&'static [&'static str]),
}

impl Kind {
    /// The name DescribeConfigs reports (`config_type`).
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Bool => "boolean",
            Kind::Int { .. } => "int",
            Kind::Long { .. } => "long",
            Kind::Double { .. } => "double",
            Kind::String | Kind::Enum(_) => "string",
            Kind::List => "list",
        }
    }
}

/// One broker-level key.
#[derive(Debug, Clone, Copy)]
pub struct BrokerKey {
    pub name: &'static str,
    pub kind: Kind,
    /// The default as it would be written in server.properties; `None` when the default
    /// is derived at resolution (documented in `doc`).
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

/// One topic-level key.
#[derive(Debug, Clone, Copy)]
pub struct TopicKey {
    pub name: &'static str,
    pub kind: Kind,
    /// The broker key whose value is this key's default.
    pub broker_synonym: Option<&'static str>,
    /// The default when there is no broker synonym.
    pub default: Option<&'static str>,
    /// Whether Runnel acts on the key (unsupported keys are accepted only at defaults).
    pub supported: bool,
    pub doc: &'static str,
}

const I32: i64 = i32::MAX as i64;

pub const BROKER_KEYS: &[BrokerKey] = &[
    BrokerKey { name: "broker.id", kind: Kind::Int { min: 0, max: I32 }, default: Some("0"), doc: "The id of this broker (Kafka's node.id is accepted as a synonym)." },
    BrokerKey { name: "listeners", kind: Kind::List, default: Some("PLAINTEXT://localhost:9092"), doc: "Comma-separated listeners, NAME://host:port. Only PLAINTEXT is supported so far; an empty host binds every interface." },
    BrokerKey { name: "advertised.listeners", kind: Kind::List, default: None, doc: "Listeners to publish in Metadata; defaults to `listeners`." },
    BrokerKey { name: "broker.rack", kind: Kind::String, default: None, doc: "Rack (zone) of this broker, published in Metadata." },
    BrokerKey { name: "log.dirs", kind: Kind::List, default: Some("./runnel-data"), doc: "Directories holding partition logs (Kafka's log.dir is accepted as a synonym)." },
    BrokerKey { name: "metadata.log.dir", kind: Kind::String, default: None, doc: "Directory of the embedded metadata store; defaults to the first of log.dirs." },
    BrokerKey { name: "cluster.name", kind: Kind::String, default: Some("runnel"), doc: "Name of this cluster; with etcd it names the cluster's key prefix (see etcd.prefix)." },
    BrokerKey { name: "etcd.endpoints", kind: Kind::List, default: None, doc: "Comma-separated etcd client URLs (http://host:port) holding the cluster's metadata, in place of Kafka's zookeeper.connect. Without it the broker is standalone, with an embedded metadata store." },
    BrokerKey { name: "etcd.prefix", kind: Kind::String, default: None, doc: "Key prefix of this cluster's metadata; defaults to /runnel/<cluster.name>/ with etcd (the operator sets /runnel/<namespace>/<name>/) and to /runnel/ in the embedded store." },
    BrokerKey { name: "num.partitions", kind: Kind::Int { min: 1, max: I32 }, default: Some("1"), doc: "Partitions of an auto-created topic or of a CreateTopics request asking for -1." },
    BrokerKey { name: "default.replication.factor", kind: Kind::Int { min: 1, max: i16::MAX as i64 }, default: Some("1"), doc: "Replication factor of auto-created topics and of CreateTopics requests asking for -1." },
    BrokerKey { name: "delete.topic.enable", kind: Kind::Bool, default: Some("true"), doc: "Allow DeleteTopics." },
    BrokerKey { name: "auto.create.topics.enable", kind: Kind::Bool, default: Some("true"), doc: "Create a topic when Metadata asks for it and the client allows it." },
    BrokerKey { name: "log.segment.bytes", kind: Kind::Int { min: 1_048_576, max: I32 }, default: Some("1073741824"), doc: "Roll a segment once it would grow past this size (at least 1 MiB, as Kafka 4)." },
    BrokerKey { name: "internal.topic.configs.enable", kind: Kind::Bool, default: Some("false"), doc: "Internal, for tests: lets clients set internal.* configs (tiny segments) on topics and as dynamic broker configs; off, they are refused (a client could otherwise exhaust file descriptors with one segment per batch)." },
    BrokerKey { name: "internal.log.segment.bytes", kind: Kind::Int { min: 1, max: I32 }, default: None, doc: "Internal, for tests: overrides log.segment.bytes without its 1 MiB lower bound (Kafka's internal.segment.bytes). Not listed by DescribeConfigs." },
    BrokerKey { name: "log.roll.ms", kind: Kind::Long { min: 1 }, default: None, doc: "Roll a segment once its first batch is this old; defaults to log.roll.hours." },
    BrokerKey { name: "log.roll.hours", kind: Kind::Int { min: 1, max: I32 }, default: Some("168"), doc: "log.roll.ms in hours." },
    BrokerKey { name: "log.retention.ms", kind: Kind::Long { min: -1 }, default: None, doc: "Delete segments older than this (-1: never); defaults to log.retention.minutes, then log.retention.hours." },
    BrokerKey { name: "log.retention.minutes", kind: Kind::Int { min: -1, max: I32 }, default: None, doc: "log.retention.ms in minutes." },
    BrokerKey { name: "log.retention.hours", kind: Kind::Int { min: -1, max: I32 }, default: Some("168"), doc: "log.retention.ms in hours." },
    BrokerKey { name: "log.retention.bytes", kind: Kind::Long { min: -1 }, default: Some("-1"), doc: "Delete the oldest segments while a partition is larger than this (-1: no limit)." },
    BrokerKey { name: "log.retention.check.interval.ms", kind: Kind::Long { min: 1 }, default: Some("300000"), doc: "How often retention is applied." },
    BrokerKey { name: "log.index.interval.bytes", kind: Kind::Int { min: 0, max: I32 }, default: Some("4096"), doc: "Log bytes between offset index entries." },
    BrokerKey { name: "log.cleanup.policy", kind: Kind::List, default: Some("delete"), doc: "delete, compact or both, for topics that do not override cleanup.policy." },
    BrokerKey { name: "log.flush.mode", kind: Kind::Enum(&["durable", "interval"]), default: Some("durable"), doc: "durable: acks=1 and acks=all are answered only after the data is fsynced (one broker-wide flusher groups fsyncs across partitions). interval: Kafka's behaviour, data is acknowledged from the page cache and fsynced per log.flush.interval.*." },
    BrokerKey { name: "log.flush.threads", kind: Kind::Int { min: 1, max: 64 }, default: Some("4"), doc: "Threads that fsync partitions; a partition has at most one flush in flight, different partitions are synced in parallel." },
    BrokerKey { name: "log.flush.bulk.threshold", kind: Kind::Int { min: 0, max: I32 }, default: Some("2"), doc: "When at least this many partitions wait for a flush, sync each log directory's file system once (syncfs) instead of every file; 0: always file by file. Best with log directories on volumes of their own." },
    BrokerKey { name: "log.flush.interval.messages", kind: Kind::Long { min: 1 }, default: Some("9223372036854775807"), doc: "In interval mode, fsync a partition after this many unflushed records." },
    BrokerKey { name: "log.flush.interval.ms", kind: Kind::Long { min: 0 }, default: Some("9223372036854775807"), doc: "In interval mode, fsync a partition once its oldest unflushed record is this old." },
    BrokerKey { name: "log.flush.offset.checkpoint.interval.ms", kind: Kind::Int { min: 1, max: I32 }, default: Some("60000"), doc: "How often recovery points are checkpointed." },
    BrokerKey { name: "log.message.timestamp.type", kind: Kind::Enum(&["CreateTime", "LogAppendTime"]), default: Some("CreateTime"), doc: "Timestamp type of topics that do not override message.timestamp.type." },
    BrokerKey { name: "log.message.timestamp.before.max.ms", kind: Kind::Long { min: 0 }, default: Some("9223372036854775807"), doc: "Refuse records whose CreateTime is further in the past than this." },
    BrokerKey { name: "log.message.timestamp.after.max.ms", kind: Kind::Long { min: 0 }, default: Some("3600000"), doc: "Refuse records whose CreateTime is further in the future than this." },
    BrokerKey { name: "message.max.bytes", kind: Kind::Int { min: 0, max: I32 }, default: Some("1048588"), doc: "The largest record batch a producer may send, as sent (compressed)." },
    BrokerKey { name: "message.decompression.max.bytes", kind: Kind::Long { min: 1024 }, default: Some("134217728"), doc: "The most bytes one compressed batch may decompress to; larger batches are refused as compression bombs." },
    BrokerKey { name: "min.insync.replicas", kind: Kind::Int { min: 1, max: I32 }, default: Some("1"), doc: "acks=all needs at least this many in-sync replicas; below it the high watermark does not advance." },
    BrokerKey { name: "producer.id.expiration.ms", kind: Kind::Int { min: 1, max: I32 }, default: Some("86400000"), doc: "Forget an idempotent producer's sequence state once its last batch is this old." },
    BrokerKey { name: "producer.id.expiration.check.interval.ms", kind: Kind::Int { min: 1, max: I32 }, default: Some("600000"), doc: "How often idle producers are forgotten." },
    BrokerKey { name: "offsets.topic.num.partitions", kind: Kind::Int { min: 1, max: I32 }, default: Some("50"), doc: "Partitions of __consumer_offsets, fixed when it is first created." },
    BrokerKey { name: "offsets.topic.replication.factor", kind: Kind::Int { min: 1, max: i16::MAX as i64 }, default: Some("3"), doc: "Replication factor of __consumer_offsets; capped at the brokers alive when it is created." },
    BrokerKey { name: "offsets.topic.segment.bytes", kind: Kind::Int { min: 1, max: I32 }, default: Some("104857600"), doc: "segment.bytes of __consumer_offsets (small segments compact sooner)." },
    BrokerKey { name: "offsets.retention.minutes", kind: Kind::Int { min: 1, max: I32 }, default: Some("10080"), doc: "Committed offsets of a group expire once the group has been empty this long (KIP-211); a standalone committer's offsets expire this long after their commit." },
    BrokerKey { name: "offsets.retention.check.interval.ms", kind: Kind::Long { min: 1 }, default: Some("600000"), doc: "How often expired offsets are removed." },
    BrokerKey { name: "offset.metadata.max.bytes", kind: Kind::Int { min: 0, max: I32 }, default: Some("4096"), doc: "The largest metadata string an offset commit may carry." },
    BrokerKey { name: "group.initial.rebalance.delay.ms", kind: Kind::Int { min: 0, max: I32 }, default: Some("3000"), doc: "How long an empty group waits for more members before its first rebalance completes (each new member extends it, up to the rebalance timeout)." },
    BrokerKey { name: "group.min.session.timeout.ms", kind: Kind::Int { min: 0, max: I32 }, default: Some("6000"), doc: "The shortest session timeout a member may ask for." },
    BrokerKey { name: "group.max.session.timeout.ms", kind: Kind::Int { min: 0, max: I32 }, default: Some("1800000"), doc: "The longest session timeout a member may ask for." },
    BrokerKey { name: "group.max.size", kind: Kind::Int { min: 1, max: I32 }, default: Some("2147483647"), doc: "The most members one group may have." },
    BrokerKey { name: "log.cleaner.enable", kind: Kind::Bool, default: Some("true"), doc: "Run the log cleaner for topics whose cleanup.policy includes compact." },
    BrokerKey { name: "log.cleaner.dedupe.buffer.size", kind: Kind::Long { min: 1024 }, default: Some("134217728"), doc: "Memory for the cleaner's key map (32 bytes a key): a pass maps the dirty segments that fit and cleans up to them; the next pass goes on from there. At least one segment is always mapped." },
    BrokerKey { name: "log.cleaner.backoff.ms", kind: Kind::Long { min: 0 }, default: Some("15000"), doc: "How often the cleaner looks for logs to compact." },
    BrokerKey { name: "log.cleaner.delete.retention.ms", kind: Kind::Long { min: 0 }, default: Some("86400000"), doc: "How long a tombstone is kept in a compacted log, counted from its timestamp." },
    BrokerKey { name: "log.cleaner.min.cleanable.ratio", kind: Kind::Double { min: 0.0, max: 1.0 }, default: Some("0.5"), doc: "Compact a log once the share of its closed segments written since the last cleaning reaches this." },
    BrokerKey { name: "log.cleaner.min.compaction.lag.ms", kind: Kind::Long { min: 0 }, default: Some("0"), doc: "A record younger than this is never compacted away." },
    BrokerKey { name: "log.cleaner.max.compaction.lag.ms", kind: Kind::Long { min: 1 }, default: Some("9223372036854775807"), doc: "A closed segment older than this is compacted whatever the dirty ratio." },
    BrokerKey { name: "unclean.leader.election.enable", kind: Kind::Bool, default: Some("false"), doc: "Allow an out-of-sync replica to become leader (loses committed data)." },
    BrokerKey { name: "compression.type", kind: Kind::Enum(&["producer"]), default: Some("producer"), doc: "Runnel stores batches as the producer compressed them; no other value is supported." },
    BrokerKey { name: "socket.request.max.bytes", kind: Kind::Int { min: 1024, max: I32 }, default: Some("104857600"), doc: "The largest request frame; larger frames close the connection before anything is allocated." },
    BrokerKey { name: "fetch.max.bytes", kind: Kind::Int { min: 1024, max: I32 }, default: Some("57671680"), doc: "The most record bytes one Fetch response carries, whatever the request asks (at least one batch is always returned)." },
    BrokerKey { name: "queued.max.request.bytes", kind: Kind::Long { min: 1 }, default: Some("536870912"), doc: "Bytes of request frames buffered across all connections, each frame reserved whole before it is read; readers wait above it (one frame of up to 64 KiB per connection never waits)." },
    BrokerKey { name: "socket.request.read.timeout.ms", kind: Kind::Long { min: 1 }, default: Some("30000"), doc: "A request frame must arrive whole within this once its first bytes came (or once its memory was reserved); a client that stalls inside a frame is disconnected." },
    BrokerKey { name: "socket.write.timeout.ms", kind: Kind::Long { min: 1 }, default: Some("30000"), doc: "A response the client does not read within this closes the connection." },
    BrokerKey { name: "max.connections", kind: Kind::Int { min: 1, max: I32 }, default: Some("100000"), doc: "The most client connections at once; new ones wait above it." },
    BrokerKey { name: "connections.max.idle.ms", kind: Kind::Long { min: 1 }, default: Some("600000"), doc: "Close a connection that sent nothing for this long." },
    BrokerKey { name: "http.listener", kind: Kind::String, default: Some("localhost:9095"), doc: "host:port of the HTTP endpoint serving /healthz, /readyz and /metrics." },
    BrokerKey { name: "admin.listener", kind: Kind::String, default: Some("localhost:9096"), doc: "host:port of the admin/watch gRPC service (broker/proto/runnel.proto): what the operator, the console and other brokers forwarding admin requests to the controller use." },
    BrokerKey { name: "admin.advertised.listener", kind: Kind::String, default: None, doc: "host:port other brokers and clients reach the admin service at; defaults to admin.listener (with the bound port when it is 0, and the first advertised listener's host when it binds every interface)." },
    BrokerKey { name: "console.enable", kind: Kind::Bool, default: Some("true"), doc: "Serve the web console (docs: README, Web console) on console.listener." },
    BrokerKey { name: "console.listener", kind: Kind::String, default: Some("localhost:9097"), doc: "host:port of the web console (its own listener, so that it can be bound where the metrics port is not)." },
    BrokerKey { name: "console.allowed.hosts", kind: Kind::List, default: Some(""), doc: "Host header values (host or host:port) the console answers besides localhost and its listener's own address; any other gets 421 (against DNS rebinding)." },
    BrokerKey { name: "console.read.only", kind: Kind::Bool, default: Some("false"), doc: "Hide and refuse the console's actions (creating topics, changing configs, resetting offsets, deleting records or groups)." },
    BrokerKey { name: "console.history.interval.ms", kind: Kind::Long { min: 1000 }, default: Some("10000"), doc: "How often the console samples lag and throughput for its charts." },
    BrokerKey { name: "console.history.points", kind: Kind::Int { min: 2, max: 8640 }, default: Some("360"), doc: "Samples the console keeps per series (a ring buffer in memory: 360 at 10 s is an hour)." },
    BrokerKey { name: "admin.max.message.bytes", kind: Kind::Int { min: 1024, max: I32 }, default: Some("4194304"), doc: "The largest gRPC message the admin service accepts; larger ones are refused (OUT_OF_RANGE) and counted." },
    BrokerKey { name: "replica.lag.time.max.ms", kind: Kind::Long { min: 1 }, default: Some("30000"), doc: "A follower that has not caught up with the leader's log end for this long leaves the ISR." },
    BrokerKey { name: "replica.fetch.max.bytes", kind: Kind::Int { min: 1024, max: I32 }, default: Some("1048576"), doc: "Record bytes a follower asks for per partition fetch (at least one whole batch is sent)." },
    BrokerKey { name: "replica.fetch.wait.max.ms", kind: Kind::Long { min: 1 }, default: Some("500"), doc: "How long the leader holds a follower's fetch when there is nothing new for it." },
    BrokerKey { name: "metadata.lease.ttl.ms", kind: Kind::Long { min: 2000 }, default: Some("10000"), doc: "TTL of this broker's registration lease in the metadata store." },
    BrokerKey { name: "shutdown.timeout.ms", kind: Kind::Long { min: 0 }, default: Some("30000"), doc: "How long a graceful shutdown waits for in-flight requests." },
];

/// Keys for tests only (Kafka's internal configs): settable, never described.
pub fn is_internal(name: &str) -> bool {
    name.starts_with("internal.")
}

pub const TOPIC_KEYS: &[TopicKey] = &[
    TopicKey {
        name: "cleanup.policy",
        kind: Kind::List,
        broker_synonym: Some("log.cleanup.policy"),
        default: None,
        supported: true,
        doc: "delete, compact or both.",
    },
    TopicKey {
        name: "compression.type",
        kind: Kind::Enum(&["producer"]),
        broker_synonym: Some("compression.type"),
        default: None,
        supported: true,
        doc: "Only producer: batches are stored as sent.",
    },
    TopicKey {
        name: "delete.retention.ms",
        kind: Kind::Long { min: 0 },
        broker_synonym: Some("log.cleaner.delete.retention.ms"),
        default: None,
        supported: true,
        doc: "How long a tombstone is kept in a compacted log, counted from its timestamp.",
    },
    TopicKey {
        name: "min.cleanable.dirty.ratio",
        kind: Kind::Double { min: 0.0, max: 1.0 },
        broker_synonym: Some("log.cleaner.min.cleanable.ratio"),
        default: None,
        supported: true,
        doc: "Compact once this share of the closed segments was written since the last cleaning.",
    },
    TopicKey {
        name: "min.compaction.lag.ms",
        kind: Kind::Long { min: 0 },
        broker_synonym: Some("log.cleaner.min.compaction.lag.ms"),
        default: None,
        supported: true,
        doc: "A record younger than this is never compacted away.",
    },
    TopicKey {
        name: "max.compaction.lag.ms",
        kind: Kind::Long { min: 1 },
        broker_synonym: Some("log.cleaner.max.compaction.lag.ms"),
        default: None,
        supported: true,
        doc: "A closed segment older than this is compacted whatever the dirty ratio.",
    },
    TopicKey {
        name: "flush.messages",
        kind: Kind::Long { min: 1 },
        broker_synonym: Some("log.flush.interval.messages"),
        default: None,
        supported: true,
        doc: "In interval mode, fsync after this many unflushed records.",
    },
    TopicKey {
        name: "flush.ms",
        kind: Kind::Long { min: 0 },
        broker_synonym: Some("log.flush.interval.ms"),
        default: None,
        supported: true,
        doc: "In interval mode, fsync once unflushed data is this old.",
    },
    TopicKey {
        name: "index.interval.bytes",
        kind: Kind::Int { min: 0, max: I32 },
        broker_synonym: Some("log.index.interval.bytes"),
        default: None,
        supported: true,
        doc: "Log bytes between offset index entries.",
    },
    TopicKey {
        name: "max.message.bytes",
        kind: Kind::Int { min: 0, max: I32 },
        broker_synonym: Some("message.max.bytes"),
        default: None,
        supported: true,
        doc: "The largest batch a producer may send.",
    },
    TopicKey {
        name: "message.timestamp.type",
        kind: Kind::Enum(&["CreateTime", "LogAppendTime"]),
        broker_synonym: Some("log.message.timestamp.type"),
        default: None,
        supported: true,
        doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's clock.",
    },
    TopicKey {
        name: "message.timestamp.before.max.ms",
        kind: Kind::Long { min: 0 },
        broker_synonym: Some("log.message.timestamp.before.max.ms"),
        default: None,
        supported: true,
        doc: "Refuse CreateTime timestamps further in the past than this.",
    },
    TopicKey {
        name: "message.timestamp.after.max.ms",
        kind: Kind::Long { min: 0 },
        broker_synonym: Some("log.message.timestamp.after.max.ms"),
        default: None,
        supported: true,
        doc: "Refuse CreateTime timestamps further in the future than this.",
    },
    TopicKey {
        name: "min.insync.replicas",
        kind: Kind::Int { min: 1, max: I32 },
        broker_synonym: Some("min.insync.replicas"),
        default: None,
        supported: true,
        doc: "acks=all needs this many in-sync replicas.",
    },
    TopicKey {
        name: "retention.bytes",
        kind: Kind::Long { min: -1 },
        broker_synonym: Some("log.retention.bytes"),
        default: None,
        supported: true,
        doc: "Delete the oldest segments above this size (-1: no limit).",
    },
    TopicKey {
        name: "retention.ms",
        kind: Kind::Long { min: -1 },
        broker_synonym: Some("log.retention.ms"),
        default: None,
        supported: true,
        doc: "Delete segments older than this (-1: never).",
    },
    TopicKey {
        name: "segment.bytes",
        kind: Kind::Int { min: 1_048_576, max: I32 },
        broker_synonym: Some("log.segment.bytes"),
        default: None,
        supported: true,
        doc: "Roll a segment once it would grow past this size.",
    },
    TopicKey {
        name: "internal.segment.bytes",
        kind: Kind::Int { min: 1, max: I32 },
        broker_synonym: Some("internal.log.segment.bytes"),
        default: None,
        supported: true,
        doc: "Internal, for tests: overrides segment.bytes without its 1 MiB lower bound (as Kafka's). Not listed by DescribeConfigs.",
    },
    TopicKey {
        name: "segment.ms",
        kind: Kind::Long { min: 1 },
        broker_synonym: Some("log.roll.ms"),
        default: None,
        supported: true,
        doc: "Roll a segment once its first batch is this old.",
    },
    TopicKey {
        name: "unclean.leader.election.enable",
        kind: Kind::Bool,
        broker_synonym: Some("unclean.leader.election.enable"),
        default: None,
        supported: true,
        doc: "Allow an out-of-sync replica to become leader.",
    },
    TopicKey {
        name: "segment.index.bytes",
        kind: Kind::Int { min: 4, max: I32 },
        broker_synonym: None,
        default: Some("10485760"),
        supported: false,
        doc: "Kafka's preallocated index size; Runnel's indexes grow as needed.",
    },
    TopicKey {
        name: "segment.jitter.ms",
        kind: Kind::Long { min: 0 },
        broker_synonym: None,
        default: Some("0"),
        supported: false,
        doc: "Random jitter subtracted from segment.ms.",
    },
    TopicKey {
        name: "file.delete.delay.ms",
        kind: Kind::Long { min: 0 },
        broker_synonym: None,
        default: Some("60000"),
        supported: false,
        doc: "Delay before a deleted segment's files are removed.",
    },
    TopicKey {
        name: "preallocate",
        kind: Kind::Bool,
        broker_synonym: None,
        default: Some("false"),
        supported: false,
        doc: "Preallocate segment files.",
    },
];

/// Kafka broker keys that Runnel accepts but that have no effect (threads, socket
/// buffers, ZooKeeper-era and JVM-specific settings). They warn as ignored, not unknown.
pub const IGNORED_KAFKA_KEYS: &[&str] = &[
    "num.network.threads",
    "num.io.threads",
    "num.recovery.threads.per.data.dir",
    "num.replica.fetchers",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "process.roles",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "controller.listener.names",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "log.flush.scheduler.interval.ms",
    "zookeeper.connection.timeout.ms",
];

/// Kafka keys that Runnel replaces with keys of its own: (Kafka key, Runnel key). Setting
/// one warns with the key to use instead.
pub const REPLACED_KAFKA_KEYS: &[(&str, &str)] = &[("zookeeper.connect", "etcd.endpoints")];

/// Kafka's synonyms accepted for broker keys: (alias, canonical).
pub const BROKER_ALIASES: &[(&str, &str)] = &[
    ("node.id", "broker.id"),
    ("log.dir", "log.dirs"),
    ("flush.mode", "log.flush.mode"),
];

pub fn broker_key(name: &str) -> Option<&'static BrokerKey> {
    BROKER_KEYS.iter().find(|k| k.name == name)
}

pub fn topic_key(name: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS.iter().find(|k| k.name == name)
}

/// Checks `value` against `kind`, returning why it is invalid.
pub fn check_value(kind: Kind, value: &str) -> Result<(), String> {
    let value = value.trim();
    match kind {
        Kind::Bool => match value {
            "true" | "false" => Ok(()),
            _ => Err("expected true or false".into()),
        },
        Kind::Int { min, max } => {
            let v: i64 = value
                .parse()
                .map_err(|_| "expected an integer".to_string())?;
            if v < min || v > max {
                return Err(format!("must be between {min} and {max}"));
            }
            Ok(())
        }
        Kind::Long { min } => {
            let v: i64 = value
                .parse()
                .map_err(|_| "expected an integer".to_string())?;
            if v < min {
                return Err(format!("must be at least {min}"));
            }
            Ok(())
        }
        Kind::Double { min, max } => {
            let v: f64 = value.parse().map_err(|_| "expected a number".to_string())?;
            if !(min..=max).contains(&v) {
                return Err(format!("must be between {min} and {max}"));
            }
            Ok(())
        }
        Kind::String | Kind::List => Ok(()),
        Kind::Enum(values) => {
            if values.contains(&value) {
                Ok(())
            } else {
                Err(format!("must be one of {}", values.join(", ")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_valid_for_its_kind() {
        for key in BROKER_KEYS {
            if let Some(default) = key.default {
                assert_eq!(check_value(key.kind, default), Ok(()), "{}", key.name);
            }
        }
        for key in TOPIC_KEYS {
            if let Some(default) = key.default {
                assert_eq!(check_value(key.kind, default), Ok(()), "{}", key.name);
            }
            if let Some(synonym) = key.broker_synonym {
                assert!(broker_key(synonym).is_some(), "{} -> {synonym}", key.name);
            }
        }
    }

    #[test]
    fn values_are_checked_against_their_kind() {
        assert!(check_value(Kind::Int { min: 1, max: 10 }, "0").is_err());
        assert!(check_value(Kind::Int { min: 1, max: 10 }, "x").is_err());
        assert!(check_value(Kind::Bool, "yes").is_err());
        assert!(check_value(Kind::Enum(&["a", "b"]), "c").is_err());
        assert!(check_value(Kind::Long { min: -1 }, "-1").is_ok());
    }
}
