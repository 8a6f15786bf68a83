"""Two consumers forming a group on a broker with default settings, so the first join
waits group.initial.rebalance.delay.ms (3000) for more members (KIP-134).

One partition: one member owns it and receives every record, the other stays idle. Two
partitions: each member owns one. kafka-python and confluent-kafka (librdkafka), each
case repeated so that a formation failing one time in five shows up. Apache Kafka forms
such a group in about 6 s (two 3 s windows); the bound below is generous.

Each consumer polls from its own thread, as applications run them. Polling two
kafka-python consumers alternately from one thread is not used: kafka-python 3.0.12
drops a join that completes between two of its polls and joins again, and when the
leader does so the group must rebalance (Kafka's rule). Apache Kafka 4.1.1 loops on that
too: in 60 runs of such a script 16 took over 9 s, 4 over 30 s, and in one neither
consumer had a record after 64 s. The coordinator's side of that sequence (when the
delayed join ends, who leads) is pinned by the unit tests in broker/src/group/state.rs.
"""

import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from kafka import KafkaConsumer

RUNS = 5
RECORDS = 20
# Seconds from the first subscription until the last record arrives.
BOUND = 30.0


class Member(threading.Thread):
    """One consumer polling in its own thread; keeps what it received and every
    assignment it held, each with the time it was first seen."""

    def __init__(self, client, bootstrap, topic, group):
        super().__init__(daemon=True)
        self.client, self.bootstrap, self.topic, self.group = client, bootstrap, topic, group
        self.records = []  # (partition, offset, value)
        self.assignments = []  # (time, sorted partitions)
        self.error = None
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def assignment(self):
        with self.lock:
            return self.assignments[-1][1] if self.assignments else None

    def received(self):
        with self.lock:
            return list(self.records)

    def _saw(self, partitions, records):
        with self.lock:
            self.records.extend(records)
            if not self.assignments or self.assignments[-1][1] != partitions:
                self.assignments.append((time.time(), partitions))

    def run(self):
        try:
            if self.client == "kafka-python":
                self._run_kafka_python()
            else:
                self._run_confluent()
        except Exception as e:  # the test reports it
            self.error = e

    def _run_kafka_python(self):
        consumer = KafkaConsumer(
            self.topic, bootstrap_servers=self.bootstrap, group_id=self.group, auto_offset_reset="earliest"
        )
        try:
            while not self.stop.is_set():
                polled = consumer.poll(timeout_ms=100)
                records = [(r.partition, r.offset, r.value.decode()) for batch in polled.values() for r in batch]
                self._saw(sorted(tp.partition for tp in consumer.assignment()), records)
        finally:
            consumer.close()

    def _run_confluent(self):
        consumer = Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": self.group, "auto.offset.reset": "earliest"}
        )
        consumer.subscribe([self.topic])
        try:
            while not self.stop.is_set():
                msg = consumer.poll(0.1)
                records = []
                if msg is not None:
                    if msg.error():
                        raise AssertionError(msg.error())
                    records.append((msg.partition(), msg.offset(), msg.value().decode()))
                self._saw(sorted(tp.partition for tp in consumer.assignment()), records)
        finally:
            consumer.close()


def wait_until(predicate, deadline):
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def form_group_and_consume(bootstrap, create_topic, client, partitions):
    """Two members subscribe one after the other; once they hold all partitions between
    them, RECORDS records are produced one at a time, round-robin over the partitions.
    Returns the members, the start, and when the group formed and when the last record
    arrived (None if not within BOUND)."""
    topic = f"formation-{uuid.uuid4().hex[:10]}"
    group = f"formation-{uuid.uuid4().hex[:10]}"
    create_topic(topic, partitions)
    members = [Member(client, bootstrap, topic, group) for _ in range(2)]
    start = time.time()
    deadline = start + BOUND
    formed = delivered = None
    try:
        for m in members:
            m.start()

        def all_partitions_held_once():
            held = [m.assignment() or [] for m in members]
            return sorted(p for h in held for p in h) == list(range(partitions))

        if wait_until(all_partitions_held_once, deadline):
            formed = time.time()
            producer = Producer({"bootstrap.servers": bootstrap})
            for i in range(RECORDS):
                producer.produce(topic, value=str(i).encode(), partition=i % partitions)
                assert producer.flush(10) == 0, "a record was not acknowledged"
            if wait_until(lambda: sum(len(m.received()) for m in members) >= RECORDS, deadline):
                delivered = time.time()
    finally:
        for m in members:
            m.stop.set()
        for m in members:
            m.join(timeout=60)
    return members, start, formed, delivered


@pytest.mark.parametrize("run", range(RUNS))
@pytest.mark.parametrize("partitions", [1, 2])
@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_two_members_form_a_stable_group_and_receive_every_record(broker, client, partitions, run):
    members, start, formed, delivered = form_group_and_consume(
        broker.bootstrap, broker.create_topic, client, partitions
    )
    for m in members:
        assert not m.is_alive(), "a consumer did not close"
        assert m.error is None, m.error
    assert formed is not None, f"no stable assignment within {BOUND} s: {[m.assignments for m in members]}"
    assert delivered is not None, f"{[len(m.received()) for m in members]} of {RECORDS} records within {BOUND} s"

    # Stable: once formed, no member's assignment changed until it stopped polling.
    for m in members:
        changes = [(round(t - start, 2), a) for t, a in m.assignments if t > formed]
        assert changes == [], f"assignment changed after forming at {formed - start:.1f} s: {changes}"

    held = sorted((m.assignment() for m in members), key=len)
    received = sorted((m.received() for m in members), key=len)
    if partitions == 1:
        assert held == [[], [0]], "one owner and one idle member"
        idle, owner = received
        assert idle == []
        assert [(p, o, v) for p, o, v in owner] == [(0, i, str(i)) for i in range(RECORDS)]
    else:
        assert sorted(map(tuple, held)) == [(0,), (1,)], "one partition each"
        for m in members:
            (p,) = m.assignment()
            expected = [(p, i, str(p + 2 * i)) for i in range(RECORDS // 2)]
            assert m.received() == expected, f"member owning partition {p}"
