"""kafka-python 3.x against a standalone broker.

kafka-python 3 makes its producer idempotent by default. Idempotence (InitProducerId)
arrives with the next issue, so these producers turn it off explicitly; the last test
shows what the default does today: a clear IncompatibleBrokerVersion, never silence.
"""

import json

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import IncompatibleBrokerVersion
from kafka.partitioner import Partitioner


class AlwaysZero(Partitioner):
    """A custom partitioner: every record to partition 0."""

    def partition(self, topic, key, serialized_key, value, serialized_value, cluster):
        return 0


def producer(broker, **extra):
    return KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False, acks="all", **extra)


def consume(broker, topic, partitions, expected, **extra):
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
        **extra,
    )
    tps = [TopicPartition(topic, p) for p in partitions]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    records = []
    for message in consumer:
        records.append(message)
        if len(records) >= expected:
            break
    consumer.close()
    return records


def create(broker, topic, partitions):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    admin.close()


def test_one_partition_reads_back_in_order_from_offset_zero(broker, topic):
    p = producer(broker)
    futures = [p.send(topic, value=f"m{i}".encode()) for i in range(200)]
    p.flush()
    assert [f.get(timeout=10).offset for f in futures] == list(range(200))
    p.close()
    records = consume(broker, topic, [0], 200)
    assert [r.offset for r in records] == list(range(200))
    assert [r.value for r in records] == [f"m{i}".encode() for i in range(200)]


def test_keyless_records_reach_both_partitions(broker, topic):
    create(broker, topic, 2)
    p = producer(broker, linger_ms=0)
    metas = []
    for i in range(200):
        metas.append(p.send(topic, value=f"k{i}".encode()).get(timeout=10))
        if i % 20 == 0:
            p.flush()
    p.close()
    assert {m.partition for m in metas} == {0, 1}
    assert len(consume(broker, topic, [0, 1], 200)) == 200


def test_keyed_records_always_land_on_the_same_partition(broker, topic):
    create(broker, topic, 2)
    p = producer(broker)
    seen = {}
    for i in range(100):
        key = f"user-{i % 7}".encode()
        meta = p.send(topic, key=key, value=b"x").get(timeout=10)
        assert seen.setdefault(key, meta.partition) == meta.partition
    p.close()
    records = consume(broker, topic, [0, 1], 100)
    for r in records:
        assert seen[r.key] == r.partition


def test_a_custom_partitioner_sends_everything_to_partition_zero(broker, topic):
    create(broker, topic, 2)
    p = producer(broker, partitioner=AlwaysZero())
    for i in range(50):
        p.send(topic, key=f"k{i}".encode(), value=b"v")
    p.flush()
    p.close()
    assert len(consume(broker, topic, [0], 50)) == 50
    assert consume(broker, topic, [1], 1) == []


def test_json_values_round_trip(broker, topic):
    p = producer(broker, value_serializer=lambda v: json.dumps(v).encode())
    docs = [{"id": i, "name": f"n{i}", "tags": ["a", "b"], "nested": {"x": i / 3}} for i in range(30)]
    for d in docs:
        p.send(topic, value=d)
    p.flush()
    p.close()
    records = consume(broker, topic, [0], 30, value_deserializer=lambda b: json.loads(b))
    assert [r.value for r in records] == docs


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_every_codec_round_trips_and_is_stored_compressed(broker, topic, codec):
    counter = f'runnel_produce_batches_total{{codec="{codec}"}}'
    before = broker.metric(counter)
    p = producer(broker, compression_type=codec, linger_ms=20)
    values = [f"{codec}-value-{i}".encode() * 10 for i in range(300)]
    for v in values:
        p.send(topic, value=v)
    p.flush()
    p.close()
    assert [r.value for r in consume(broker, topic, [0], 300)] == values
    assert broker.metric(counter) > before, f"the broker stored no {codec} batch"


def test_the_default_idempotent_producer_is_refused_clearly_until_idempotence_exists(broker, topic):
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    assert p.config["enable_idempotence"] is True
    with pytest.raises(IncompatibleBrokerVersion):
        p.send(topic, value=b"x").get(timeout=20)
    p.close()
