"""Helpers of the replication tests: topics, Metadata, reading a partition back, waiting
for the ISR, comparing replicas, and an idempotent acks=all load recorded in a History."""

import subprocess
import threading
import time
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import UnknownBrokerIdError
from kafka.protocol.metadata import MetadataRequest

from cluster import wait_until
from history import History, compare_replicas


def admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)


def create(bootstrap, name, partitions, rf, configs=None):
    """Creates the topic and waits until every broker's Metadata shows all its partitions:
    brokers learn of a topic through the etcd watch, a little after the controller answers
    (as Kafka brokers do through their metadata log), and a describe that reached a broker
    still behind would see no partitions (a CI run failed on exactly that)."""
    a = admin(bootstrap)
    try:
        a.create_topics([NewTopic(name, partitions, rf, topic_configs=configs or {})])
        for node in sorted(b["broker_id"] for b in a.describe_cluster()["brokers"]):
            wait_until(f"broker {node} knows {name}", lambda: known_partitions(a, node, name) == partitions, 15)
    finally:
        a.close()


def metadata_of(a, node, name):
    """Topic `name` as broker `node`'s own Metadata has it: {partition: leader}, empty
    while the broker does not know the topic."""
    async def ask():
        topics = [MetadataRequest.MetadataRequestTopic(name=name)]
        return await a._manager.send(MetadataRequest(topics=topics, allow_auto_topic_creation=False), node_id=node)

    try:
        [t] = a._manager.run(ask).topics
    except UnknownBrokerIdError:
        # The client's broker list came from a broker that had not yet seen `node`
        # register (or register again); kafka-python keeps it until its periodic
        # refresh, minutes away, so refresh before the caller's next try.
        a._manager.run(a._manager.cluster.refresh_metadata)
        raise
    return {p.partition_index: p.leader_id for p in t.partitions} if t.error_code == 0 else {}


def known_partitions(a, node, name):
    """How many partitions of `name` broker `node`'s own Metadata lists (0 while unknown)."""
    return len(metadata_of(a, node, name))


def wait_every_broker_names(cluster, name, index, leader, timeout):
    """Waits until every live broker's own Metadata names `leader` for the partition (a
    broker that was cut off answers from what it knew until it hears from etcd again)."""
    a = admin(cluster.bootstrap)
    try:

        def agreed():
            return all(metadata_of(a, b.id, name).get(index) == leader for b in cluster.brokers if b.alive())

        return wait_until(f"every broker's Metadata naming {leader} leader of {name}-{index}", agreed, timeout, interval=0.2)[1]
    finally:
        a.close()


def describe(bootstrap, name):
    """partition → (leader, replicas, isr, error code), from Metadata."""
    a = admin(bootstrap)
    try:
        [t] = a.describe_topics([name])
    finally:
        a.close()
    return {
        p["partition_index"]: (p["leader_id"], sorted(p["replica_nodes"]), sorted(p["isr_nodes"]), p["error_code"])
        for p in t["partitions"]
    }


def partition_dirs(cluster, name, index):
    """broker id → its directory for the partition, where one exists."""
    found = {}
    for b in cluster.brokers:
        d = b.data / f"{name}-{index}"
        if d.is_dir():
            found[b.id] = d
    return found


def end_offset(bootstrap, name, index):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        tp = TopicPartition(name, index)
        return consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()


def read_all(bootstrap, name, index, upto, timeout=60):
    """[(offset, value)] from offset 0 to `upto`."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    tp = TopicPartition(name, index)
    consumer.assign([tp])
    got = []
    deadline = time.monotonic() + timeout
    while (not got or got[-1][0] < upto - 1) and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            got.extend((r.offset, r.value.decode()) for r in batch)
    consumer.close()
    return got


def wait_in_sync(cluster, name, index, rf, timeout):
    """Waits until the ISR holds all `rf` replicas; returns the seconds it took."""
    _, took = wait_until(
        f"{name}-{index} fully in sync",
        lambda: (lambda d: d[3] == 0 and len(d[2]) == rf)(describe(cluster.bootstrap, name)[index]),
        timeout,
        interval=0.2,
    )
    return took


def assert_replicas_identical(cluster, name, index, rf):
    """Every replica's log equals the others' up to the high watermark, once all have
    fetched it (no load is running)."""
    hw = end_offset(cluster.bootstrap, name, index)
    assert hw > 0

    def caught_up():
        ends = [
            b.metric(f'kafka_log_log_end_offset{{topic="{name}",partition="{index}"}}')
            for b in cluster.brokers
            if b.alive() and (b.data / f"{name}-{index}").is_dir()
        ]
        return len(ends) == rf and all(e >= hw for e in ends)

    wait_until("every replica at the high watermark", caught_up, 30, interval=0.2)
    dirs = partition_dirs(cluster, name, index)
    assert len(dirs) == rf, dirs
    identical, sizes = compare_replicas(dirs, hw)
    print(f"replicas of {name}-{index} up to hw {hw}: {sizes} bytes, identical={identical}")
    assert identical, f"replicas differ below the high watermark {hw}: {sizes}"
    return hw


class Load:
    """An idempotent acks=all producer sending numbered values to one partition from a
    thread, every send recorded in a History."""

    def __init__(self, bootstrap, name, index=0):
        self.history = History()
        self.name = name
        self.index = index
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            request_timeout_ms=8000,
            delivery_timeout_ms=60000,
            retry_backoff_ms=100,
            metadata_max_age_ms=1000,
        )
        self.stopping = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        i = 0
        while not self.stopping.is_set():
            value = f"v{i:07d}"
            op = self.history.invoke(value, self.index)
            try:
                future = self.producer.send(self.name, value.encode(), partition=self.index)
            except Exception as e:  # a full buffer or a closed producer: the op failed
                self.history.fail(op, e)
                time.sleep(0.05)
                continue
            future.add_callback(lambda md, op=op: self.history.ok(op, md.offset))
            future.add_errback(lambda e, op=op: self.history.fail(op, e))
            i += 1
            self.sent = i
            if i % 50 == 0:
                time.sleep(0.01)

    def acked(self):
        return len(self.history.acknowledged())

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=30)
        self.producer.flush(timeout=90)
        self.producer.close(timeout=30)


def compile_java(kafka_jars, out, *names):
    """Compiles tests/java/<name>.java against Kafka's jars into `out`; returns `out`."""
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        ["javac", "-cp", f"{kafka_jars}/*", "-d", str(out), *(str(root / "tests" / "java" / f"{n}.java") for n in names)],
        check=True,
        timeout=300,
    )
    return out

