"""The Java producer (Maven kafka-clients 4.x) with its default settings: idempotence on,
acks=all, including through connections cut mid-request."""

import shutil
import subprocess
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from standalone import ROOT, Broker, free_port
from faults import LossyProxy

pytestmark = pytest.mark.skipif(shutil.which("javac") is None, reason="a JDK is required")


@pytest.fixture(scope="module")
def java_classes(kafka_jars, tmp_path_factory):
    out = tmp_path_factory.mktemp("java")
    subprocess.run(
        ["javac", "-cp", f"{kafka_jars}/*", "-d", str(out), *map(str, sorted((ROOT / "tests" / "java").glob("*.java")))],
        check=True,
        timeout=300,
    )
    return out


def run_java(kafka_jars, classes, *args, main="IdempotentProduce"):
    result = subprocess.run(
        ["java", "-cp", f"{kafka_jars}/*:{classes}", main, *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [line.split(" ", 2) for line in result.stdout.splitlines()]


def read(bootstrap, topic):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    values = [m.value.decode() for m in consumer]
    consumer.close()
    return values


def test_the_default_java_producer_is_idempotent(broker, topic, kafka_jars, java_classes):
    inits = 'kafka_network_requests_total{request="InitProducerId"}'
    before = (broker.metric(inits), broker.metric("runnel_produce_idempotent_batches_total"))
    rows = run_java(kafka_jars, java_classes, broker.bootstrap, topic, "200")
    assert [int(r[1]) for r in rows] == list(range(200))
    assert broker.metric(inits) == before[0] + 1, "one producer, one producer id"
    assert broker.metric("runnel_produce_idempotent_batches_total") > before[1]
    assert read(broker.bootstrap, topic) == [f"java-{i}" for i in range(200)]


def test_the_java_producer_retries_through_cut_connections_without_duplicates(topic, kafka_jars, java_classes):
    broker_port = free_port()
    proxy = LossyProxy(broker_port, every=4)
    b = Broker(extra=[f"--advertised.listeners=PLAINTEXT://127.0.0.1:{proxy.port}"], kafka_port=broker_port)
    try:
        rows = run_java(kafka_jars, java_classes, f"127.0.0.1:{proxy.port}", topic, "300", "10")
        assert [int(r[1]) for r in rows] == list(range(300))
        assert read(b.bootstrap, topic) == [f"java-{i}" for i in range(300)]
        assert proxy.dropped > 0
        assert b.metric("runnel_produce_duplicate_batches_total") >= 1
    finally:
        proxy.close()
        assert b.stop() == 0


def test_a_transactional_producer_fails_fast_with_a_clear_error(broker, kafka_jars, java_classes):
    """No transactions yet: initTransactions() must fail at once with a non-retriable
    error (the broker answers the producer's FindCoordinator for its transactional id with
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED), not spin on a retriable one until max.block.ms
    (60 s here)."""
    refused = ("FindCoordinator", "TRANSACTIONAL_ID_AUTHORIZATION_FAILED")
    before = broker.errors(*refused)
    [outcome] = run_java(kafka_jars, java_classes, broker.bootstrap, main="TransactionalProbe")
    assert outcome[0] == "org.apache.kafka.common.errors.TransactionalIdAuthorizationException:", outcome
    assert broker.errors(*refused) == before + 1
