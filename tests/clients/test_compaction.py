"""Log compaction through the broker with real clients: a keyed topic keeps the latest
value per key at its original offset, tombstones go after delete.retention.ms, and
__consumer_offsets stays bounded under tens of thousands of commits."""

import re
import shutil
import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition
from kafka.errors import InvalidRecordError

from standalone import Broker

# internal.* topic configs (tiny segments) are for tests: the broker must allow them.
CLEANER_FLAGS = ("--log.cleaner.backoff.ms=200", "--internal.topic.configs.enable=true")


def wait_for(predicate, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def read_all(broker, topic):
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
    consumer.assign([KTopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    rows = [(m.offset, m.key.decode(), m.value.decode() if m.value is not None else None) for m in consumer]
    consumer.close()
    return rows


def test_a_compacted_topic_keeps_the_latest_value_per_key_at_its_offset(topic):
    b = Broker(extra=CLEANER_FLAGS)
    try:
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        config = {
            "cleanup.policy": "compact",
            "internal.segment.bytes": "4096",  # below segment.bytes's 1 MiB floor, for tests
            "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": "1500",
        }
        admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(10)
        producer = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all", linger_ms=0)
        latest = {}
        for round_ in range(30):
            for k in range(20):
                key = f"k{k}"
                meta = producer.send(topic, key=key.encode(), value=f"{key}-{round_}".encode()).get(10)
                latest[key] = (meta.offset, f"{key}-{round_}")
        producer.send(topic, key=b"k0", value=None).get(10)
        del latest["k0"]
        # Later records close the segments holding everything above.
        for i in range(200):
            producer.send(topic, key=b"filler", value=f"f{i}".encode()).get(10)
        producer.close()
        # A keyless record is refused on a compacted topic.
        before = b.errors("Produce", "INVALID_RECORD")
        keyless = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all", retries=0)
        with pytest.raises(InvalidRecordError):
            keyless.send(topic, value=b"no key").get(10)
        keyless.close()
        assert b.errors("Produce", "INVALID_RECORD") == before + 1

        def compacted():
            rows = read_all(b, topic)
            keys = [k for _, k, _ in rows if k != "filler"]
            return len(keys) == len(set(keys)) and "k0" not in keys

        wait_for(compacted, timeout=60, what="the keyed records to be compacted and the tombstone removed")
        rows = read_all(b, topic)
        kept = {k: (o, v) for o, k, v in rows if k != "filler"}
        assert kept == latest
        offsets = [o for o, _, _ in rows]
        assert offsets == sorted(offsets)
        assert b.metric("runnel_log_cleaner_records_removed_total") >= 20 * 29
        assert b.metric("runnel_log_cleaner_tombstones_removed_total") >= 1
    finally:
        b.stop()
        shutil.rmtree(b.dir, ignore_errors=True)


def offsets_log_size(broker):
    total = 0
    for line in broker.metrics().splitlines():
        if line.startswith('kafka_log_size_bytes{topic="__consumer_offsets"'):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_the_offsets_topic_stays_bounded_under_tens_of_thousands_of_commits(topic):
    # Small segments for every topic, __consumer_offsets included (internal.log.segment.bytes
    # goes below the 1 MiB floor of segment.bytes, which offsets.topic.segment.bytes sets).
    flags = (*CLEANER_FLAGS, "--offsets.topic.num.partitions=1", "--internal.log.segment.bytes=32768")
    b = Broker(extra=flags)
    try:
        b.create_topic(topic, 4)
        consumer = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "committer", "enable.auto.commit": False})
        commits = 20_000
        for i in range(commits):
            tp = TopicPartition(topic, i % 4, i)
            consumer.commit(offsets=[tp], asynchronous=True)
            if i % 500 == 0:
                consumer.poll(0)
        consumer.commit(offsets=[TopicPartition(topic, p, commits + p) for p in range(4)], asynchronous=False)
        assert b.metric("runnel_group_offsets_committed_total") >= commits
        written = commits * 60  # each commit record is about 60 bytes before batching overhead
        wait_for(lambda: offsets_log_size(b) < written / 10, timeout=60, what="__consumer_offsets to be compacted")
        assert b.metric("runnel_log_cleaner_records_removed_total") >= commits / 2
        got = consumer.committed([TopicPartition(topic, p) for p in range(4)], timeout=10)
        assert [o.offset for o in got] == [commits + p for p in range(4)]
        consumer.close()
        # The compacted topic reloads to the same offsets after a restart.
        assert b.stop() == 0
        b = Broker(extra=flags, data_dir=b.dir)
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "committer"})
        got = c.committed([TopicPartition(topic, p) for p in range(4)], timeout=10)
        assert [o.offset for o in got] == [commits + p for p in range(4)]
        c.close()
    finally:
        b.stop()
        shutil.rmtree(b.dir, ignore_errors=True)
