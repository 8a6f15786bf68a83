"""confluent-kafka (librdkafka 2.16) against a standalone broker.

librdkafka's consumer reads with isolation.level=read_committed by default, so these
consumers also prove the broker's last stable offset is right. librdkafka only uses lz4
when the broker advertises FindCoordinator v0 (its 0.8.2 probe for lz4 support); the
per-codec counter shows every codec, lz4 included, stored as sent.
"""

import json
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)


def produce(broker, topic, messages, **conf):
    """messages: (key, value, partition or None). Returns delivery reports."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, **conf})
    reports = []

    def on_delivery(err, msg):
        reports.append((err, msg.partition(), msg.offset(), msg.key(), msg.value()))

    for key, value, partition in messages:
        kwargs = {"value": value, "on_delivery": on_delivery}
        if key is not None:
            kwargs["key"] = key
        if partition is not None:
            kwargs["partition"] = partition
        p.produce(topic, **kwargs)
        p.poll(0)
    assert p.flush(30) == 0
    assert len(reports) == len(messages)
    assert all(err is None for err, *_ in reports), [r for r in reports if r[0]]
    return reports


def consume(broker, topic, partitions, expected, timeout=20):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in partitions])
    out = []
    deadline = time.time() + timeout
    while len(out) < expected and time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise AssertionError(m.error())
        out.append(m)
    c.close()
    return out


def high_watermarks(broker, topic, partitions):
    """The broker's high watermark of each partition, {partition: offset}."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    marks = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    c.close()
    return marks


def test_one_partition_reads_back_in_order_from_offset_zero(broker, topic):
    reports = produce(broker, topic, [(None, f"m{i}".encode(), None) for i in range(500)])
    assert sorted(r[2] for r in reports) == list(range(500))
    records = consume(broker, topic, [0], 500)
    assert [m.offset() for m in records] == list(range(500))
    assert [m.value() for m in records] == [f"m{i}".encode() for i in range(500)]


def test_keyless_records_reach_both_partitions(broker, topic):
    broker.create_topic(topic, 2)
    # The sticky partitioner moves on per batch; small batches spread records.
    reports = produce(
        broker,
        topic,
        [(None, f"v{i}".encode(), None) for i in range(400)],
        **{"batch.num.messages": 5, "linger.ms": 0, "sticky.partitioning.linger.ms": 0},
    )
    per_partition = Counter(r[1] for r in reports)
    assert set(per_partition) == {0, 1}
    assert high_watermarks(broker, topic, [0, 1]) == per_partition
    records = consume(broker, topic, [0, 1], 400)
    assert sorted(m.value() for m in records) == sorted(f"v{i}".encode() for i in range(400))
    assert Counter(m.partition() for m in records) == per_partition


def test_keyed_records_always_land_on_the_same_partition(broker, topic):
    broker.create_topic(topic, 2)
    reports = produce(broker, topic, [(f"key-{i % 5}".encode(), b"v", None) for i in range(100)])
    by_key = {}
    for _, partition, _, key, _ in reports:
        assert by_key.setdefault(key, partition) == partition
    records = consume(broker, topic, [0, 1], 100)
    assert len(records) == 100
    assert {(m.key(), m.partition()) for m in records} == set(by_key.items())


def test_an_explicit_partition_choice_puts_everything_on_partition_zero(broker, topic):
    broker.create_topic(topic, 2)
    reports = produce(broker, topic, [(f"k{i}".encode(), b"v", 0) for i in range(60)])
    assert sorted((r[1], r[2]) for r in reports) == [(0, i) for i in range(60)]
    assert high_watermarks(broker, topic, [0, 1]) == {0: 60, 1: 0}
    assert [m.key() for m in consume(broker, topic, [0], 60)] == [f"k{i}".encode() for i in range(60)]


def test_json_values_round_trip(broker, topic):
    docs = [{"order": i, "items": [{"sku": "a", "qty": i}], "ok": i % 2 == 0} for i in range(40)]
    produce(broker, topic, [(None, json.dumps(d).encode(), None) for d in docs])
    assert [json.loads(m.value()) for m in consume(broker, topic, [0], 40)] == docs


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_every_codec_round_trips(broker, topic, codec):
    counter = f'runnel_produce_batches_total{{codec="{codec}"}}'
    before = broker.metric(counter)
    values = [f"{codec}-{i}".encode() * 20 for i in range(300)]
    produce(broker, topic, [(None, v, None) for v in values], **{"compression.type": codec})
    assert [m.value() for m in consume(broker, topic, [0], 300)] == values
    assert broker.metric(counter) > before, f"no batch stored as {codec}"


def test_metadata_lists_the_broker_and_the_topic_with_leader_epochs(broker, topic):
    broker.create_topic(topic, 3)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    md = admin.list_topics(topic, timeout=10)
    assert list(md.brokers) == [0]
    assert sorted(md.topics[topic].partitions) == [0, 1, 2]
    for p in md.topics[topic].partitions.values():
        assert p.leader == 0 and p.replicas == [0] and p.isrs == [0]
    # No topic named: every topic (librdkafka sends an empty topic array).
    everything = admin.list_topics(timeout=10)
    assert topic in everything.topics
    assert everything.topics[topic].error is None


# librdkafka's names for two Kafka errors; the broker's metrics use Kafka's.
KAFKA_NAMES = {"TOPIC_EXCEPTION": "INVALID_TOPIC_EXCEPTION", "UNKNOWN_TOPIC_OR_PART": "UNKNOWN_TOPIC_OR_PARTITION"}


def assert_refused(broker, request, error, call, *args, **kwargs):
    """The admin call's one future fails with `error` (librdkafka's name), and the broker
    counted answering `request` with it: the broker refused, not the client."""
    before = broker.errors(request, KAFKA_NAMES.get(error, error))
    [future] = call(*args, **kwargs).values()
    try:
        future.result(10)
    except KafkaException as e:
        got = e.args[0]
    else:
        raise AssertionError(f"the broker accepted a request it should refuse with {error}")
    assert (got.name(), got.code()) == (error, getattr(KafkaError, error)), got.str()
    assert broker.errors(request, KAFKA_NAMES.get(error, error)) == before + 1


def test_the_broker_refuses_bad_admin_requests_with_kafka_error_codes(broker, topic):
    """What Kafka's tools refuse before sending (kafka-topics checks config names and values
    itself) must be refused by the broker too: here an admin client sends it."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    creations = [
        (NewTopic(topic, 1, 3), "INVALID_REPLICATION_FACTOR"),
        (NewTopic(topic, 0, 1), "INVALID_PARTITIONS"),
        (NewTopic(topic, 1, 1, config={"retention.ms": "soon"}), "INVALID_CONFIG"),
        (NewTopic(topic, 1, 1, config={"no.such.setting": "1"}), "INVALID_CONFIG"),
        (NewTopic(topic, 1, 1, config={"cleanup.policy": "shred"}), "INVALID_CONFIG"),
        (NewTopic("bad/name", 1, 1), "TOPIC_EXCEPTION"),
        (NewTopic("__consumer_offsets", 1, 1), "INVALID_REQUEST"),
    ]
    for new_topic, error in creations:
        for validate_only in (True, False):
            assert_refused(broker, "CreateTopics", error, admin.create_topics, [new_topic], validate_only=validate_only)
    # A consumer's metadata request (the admin client's would auto-create the topic).
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    metadata = c.list_topics(topic, timeout=10).topics[topic]
    c.close()
    assert metadata.error is not None and metadata.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART

    broker.create_topic(topic, 3)
    assert_refused(broker, "CreateTopics", "TOPIC_ALREADY_EXISTS", admin.create_topics, [NewTopic(topic, 1, 1)])
    assert_refused(broker, "CreatePartitions", "INVALID_PARTITIONS", admin.create_partitions, [NewPartitions(topic, 2)])
    assert sorted(admin.list_topics(topic, timeout=10).topics[topic].partitions) == [0, 1, 2]

    alterations = [
        (ResourceType.TOPIC, topic, "retention.ms", "abc", "INVALID_CONFIG"),
        (ResourceType.TOPIC, topic, "no.such.setting", "1", "INVALID_CONFIG"),
        (ResourceType.BROKER, "0", "log.retention.ms", "abc", "INVALID_CONFIG"),
        # A static broker config: Kafka answers INVALID_REQUEST too.
        (ResourceType.BROKER, "0", "log.dirs", "/elsewhere", "INVALID_REQUEST"),
    ]
    for kind, name, key, value, error in alterations:
        change = ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
        resource = ConfigResource(kind, name, incremental_configs=[change])
        assert_refused(broker, "IncrementalAlterConfigs", error, admin.incremental_alter_configs, [resource])
    [described] = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]).values()
    configs = described.result(10)
    assert configs["retention.ms"].value == "604800000" and configs["retention.ms"].is_default
    assert "no.such.setting" not in configs

    assert_refused(broker, "DeleteTopics", "UNKNOWN_TOPIC_OR_PART", admin.delete_topics, [topic + "-missing"])
