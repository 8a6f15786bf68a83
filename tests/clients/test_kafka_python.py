"""kafka-python 3.x against a standalone broker, with its default producer settings
(idempotent, acks=all)."""

import json
from collections import Counter

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.partitioner import Partitioner

from standalone import Broker, free_port
from faults import LossyProxy


class AlwaysZero(Partitioner):
    """A custom partitioner: every record to partition 0."""

    def partition(self, topic, key, serialized_key, value, serialized_value, cluster):
        return 0


def producer(broker, **extra):
    return KafkaProducer(bootstrap_servers=broker.bootstrap, **extra)


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


def high_watermarks(broker, topic, partitions):
    """The broker's high watermark of each partition, {partition: offset}."""
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
    consumer.close()
    return {tp.partition: offset for tp, offset in ends.items()}


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
    per_partition = Counter(m.partition for m in metas)
    assert set(per_partition) == {0, 1}
    assert high_watermarks(broker, topic, [0, 1]) == per_partition
    records = consume(broker, topic, [0, 1], 200)
    assert sorted(r.value for r in records) == sorted(f"k{i}".encode() for i in range(200))
    assert Counter(r.partition for r in records) == per_partition


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
    assert len(records) == 100
    assert {(r.key, r.partition) for r in records} == set(seen.items())


def test_a_custom_partitioner_sends_everything_to_partition_zero(broker, topic):
    create(broker, topic, 2)
    p = producer(broker, partitioner=AlwaysZero())
    futures = [p.send(topic, key=f"k{i}".encode(), value=b"v") for i in range(50)]
    p.flush()
    p.close()
    assert [(f.get(timeout=10).partition, f.get(timeout=10).offset) for f in futures] == [(0, i) for i in range(50)]
    assert high_watermarks(broker, topic, [0, 1]) == {0: 50, 1: 0}
    assert [r.key for r in consume(broker, topic, [0], 50)] == [f"k{i}".encode() for i in range(50)]


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


def test_the_default_producer_is_idempotent_and_its_sequences_are_checked(broker, topic):
    inits = 'kafka_network_requests_total{request="InitProducerId"}'
    checked = "runnel_produce_idempotent_batches_total"
    before = (broker.metric(inits), broker.metric(checked))
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
    assert p.config["enable_idempotence"] is True
    for i in range(50):
        p.send(topic, value=f"idempotent-{i}".encode()).get(timeout=10)
    p.close()
    assert broker.metric(inits) == before[0] + 1, "one producer, one producer id"
    # linger_ms=0 and a wait for each record: every record is a batch of its own.
    assert broker.metric(checked) == before[1] + 50, "batches were not sequence-checked"
    assert [r.value for r in consume(broker, topic, [0], 50)] == [f"idempotent-{i}".encode() for i in range(50)]


def test_a_producer_whose_connection_is_cut_mid_request_writes_no_duplicates(topic):
    broker_port = free_port()
    proxy = LossyProxy(broker_port, every=5)
    b = Broker(extra=[f"--advertised.listeners=PLAINTEXT://127.0.0.1:{proxy.port}"], kafka_port=broker_port)
    try:
        before = b.metric("runnel_produce_duplicate_batches_total")
        p = KafkaProducer(bootstrap_servers=f"127.0.0.1:{proxy.port}", linger_ms=2)
        futures = []
        for i in range(400):
            futures.append(p.send(topic, value=f"once-{i}".encode()))
            if i % 10 == 9:
                p.flush()  # many produce requests, so the proxy has responses to lose
        offsets = [f.get(timeout=60).offset for f in futures]
        p.close()
        assert offsets == list(range(400)), "each record acknowledged once, at its own offset"
        consumer = KafkaConsumer(bootstrap_servers=b.bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        values = [m.value for m in consumer]
        consumer.close()
        assert values == [f"once-{i}".encode() for i in range(400)], "no record lost, duplicated or reordered"
        duplicates = b.metric("runnel_produce_duplicate_batches_total") - before
        assert proxy.dropped > 0, "the proxy never cut a connection"
        assert duplicates >= 1, "no retry reached the broker, so the test proved nothing"
        print(f"proxy dropped {proxy.dropped} produce responses; the broker recognised {duplicates} retried batches")
    finally:
        proxy.close()
        assert b.stop() == 0
