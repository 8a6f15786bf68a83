"""confluent-kafka (librdkafka 2.16) against a standalone broker.

librdkafka's consumer reads with isolation.level=read_committed by default, so these
consumers also prove the broker's last stable offset is right. librdkafka only uses lz4
when the broker advertises FindCoordinator v0 (its 0.8.2 probe for lz4 support); the
per-codec counter shows every codec, lz4 included, stored as sent.
"""

import json
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient


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
    assert {r[1] for r in reports} == {0, 1}
    assert len(consume(broker, topic, [0, 1], 400)) == 400


def test_keyed_records_always_land_on_the_same_partition(broker, topic):
    broker.create_topic(topic, 2)
    reports = produce(broker, topic, [(f"key-{i % 5}".encode(), b"v", None) for i in range(100)])
    by_key = {}
    for _, partition, _, key, _ in reports:
        assert by_key.setdefault(key, partition) == partition
    for m in consume(broker, topic, [0, 1], 100):
        assert by_key[m.key()] == m.partition()


def test_an_explicit_partition_choice_puts_everything_on_partition_zero(broker, topic):
    broker.create_topic(topic, 2)
    produce(broker, topic, [(f"k{i}".encode(), b"v", 0) for i in range(60)])
    assert len(consume(broker, topic, [0], 60)) == 60
    assert consume(broker, topic, [1], 1, timeout=2) == []


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
