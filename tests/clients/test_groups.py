"""Consumer groups with real clients: kafka-python, confluent-kafka (librdkafka), kcat -G,
the Java KafkaConsumer and Kafka's kafka-consumer-groups tool, against one broker."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, KafkaProducer

from standalone import ROOT, Broker

HERE = Path(__file__).resolve().parent
GROUP_FLAGS = ("--group.initial.rebalance.delay.ms=300", "--group.min.session.timeout.ms=1000")


@pytest.fixture(scope="module")
def gbroker():
    b = Broker(extra=GROUP_FLAGS)
    yield b
    assert b.stop() == 0
    shutil.rmtree(b.dir, ignore_errors=True)


def produce(broker, topic, values, partition=None):
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for v in values:
        producer.send(topic, str(v).encode(), partition=partition)
    producer.flush()
    producer.close()


def consume_python(broker, topic, group, idle_ms=4000):
    """kafka-python in a group until `idle_ms` without records; commits on close."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        consumer_timeout_ms=idle_ms,
    )
    got = [(m.partition, m.value.decode()) for m in consumer]
    consumer.close()
    return got


def committed(broker, group, topic, partitions):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    offsets = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    c.close()
    return [o.offset for o in offsets]


def high_watermarks(broker, topic, partitions):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "watermarks"})
    marks = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)]
    c.close()
    return marks


def admin_refusal(futures):
    """The error code the one future of an admin call failed with."""
    [future] = futures.values()
    with pytest.raises(KafkaException) as refused:
        future.result(10)
    return refused.value.args[0].code()


def group_state(broker, group):
    """The group's state as the broker describes it (DescribeGroups)."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    [future] = admin.describe_consumer_groups([group]).values()
    return future.result(10).state


def test_one_partition_two_members_of_one_group_split_nothing_two_groups_both_read(gbroker, topic):
    gbroker.create_topic(topic, 1)
    produce(gbroker, topic, range(50))
    results = {}

    def run(name, group):
        results[name] = consume_python(gbroker, topic, group, idle_ms=6000)

    threads = [threading.Thread(target=run, args=(n, "same")) for n in ("a", "b")]
    threads += [threading.Thread(target=run, args=(n, f"own-{n}")) for n in ("c", "d")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    same = sorted([results["a"], results["b"]], key=len)
    assert same[0] == [], "the member without a partition idles"
    assert [v for _, v in same[1]] == [str(i) for i in range(50)]
    for n in ("c", "d"):
        assert [v for _, v in results[n]] == [str(i) for i in range(50)]
    assert committed(gbroker, "same", topic, 1) == [50]


def test_two_partitions_one_member_reads_both_two_members_one_each(gbroker, topic):
    gbroker.create_topic(topic, 2)
    produce(gbroker, topic, range(0, 40), partition=0)
    produce(gbroker, topic, range(40, 80), partition=1)
    alone = consume_python(gbroker, topic, "alone")
    assert {p for p, _ in alone} == {0, 1}
    assert sorted(int(v) for _, v in alone) == list(range(80))

    results = {}

    def run(name):
        results[name] = consume_python(gbroker, topic, "pair", idle_ms=6000)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a, b = results["a"], results["b"]
    assert {p for p, _ in a} | {p for p, _ in b} == {0, 1}
    assert not ({p for p, _ in a} & {p for p, _ in b}), "each partition has one owner"
    assert sorted(int(v) for _, v in a + b) == list(range(80))


class Member:
    def __init__(self, broker, topic, group, out, session_ms=3000):
        self.out = out
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "group_member.py"), broker.bootstrap, topic, group, str(out), str(session_ms)]
        )

    def seen(self):
        if not self.out.exists():
            return []
        return [line.split() for line in self.out.read_text().splitlines() if line.count(" ") == 2]


def wait_for(predicate, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_members_join_leave_and_die_without_losing_or_skipping_records(gbroker, topic, tmp_path):
    gbroker.create_topic(topic, 3)
    rebalances = gbroker.metric("runnel_group_rebalances_total")
    members = {n: Member(gbroker, topic, "churn", tmp_path / n) for n in ("a", "b")}
    total = 0

    def all_seen():
        values = {int(r[2]) for m in members.values() for r in m.seen()}
        return values >= set(range(total))

    def phase(count, what):
        nonlocal total
        produce(gbroker, topic, range(total, total + count))
        total += count
        wait_for(all_seen, what=what)

    try:
        phase(300, "two members read everything")
        members["c"] = Member(gbroker, topic, "churn", tmp_path / "c")
        wait_for(lambda: (tmp_path / "c.assign").exists() and (tmp_path / "c.assign").read_text().split(), what="c gets partitions")
        phase(300, "a third member shares the work")
        assert members["c"].seen(), "the third member received records"
        members["b"].process.send_signal(signal.SIGTERM)
        assert members["b"].process.wait(timeout=30) == 0
        phase(300, "a member left cleanly")
        members["c"].process.kill()
        members["c"].process.wait()
        phase(300, "a killed member's partitions move once its session expires")
        wait_for(lambda: committed(gbroker, "churn", topic, 3) == high_watermarks(gbroker, topic, 3),
                 timeout=20, what="commits reach the high watermarks")
    finally:
        for m in members.values():
            if m.process.poll() is None:
                m.process.kill()
    assert gbroker.metric("runnel_group_rebalances_total") >= rebalances + 3


def test_committed_offsets_survive_a_member_restart_and_a_broker_kill(topic, tmp_path):
    b = Broker(extra=GROUP_FLAGS)
    try:
        b.create_topic(topic, 1)
        produce(b, topic, range(30))
        assert [v for _, v in consume_python(b, topic, "resume")] == [str(i) for i in range(30)]
        produce(b, topic, range(30, 40))
        assert [v for _, v in consume_python(b, topic, "resume")] == [str(i) for i in range(30, 40)]
        b.process.send_signal(signal.SIGKILL)
        b.process.wait()
        b.log.close()
        b = Broker(extra=GROUP_FLAGS, data_dir=b.dir)
        assert b.metric("runnel_group_records_loaded_total") >= 2
        assert committed(b, "resume", topic, 1) == [40]
        produce(b, topic, range(40, 45))
        assert [v for _, v in consume_python(b, topic, "resume")] == [str(i) for i in range(40, 45)]
    finally:
        b.stop()
        shutil.rmtree(b.dir, ignore_errors=True)


def test_kcat_consumes_as_a_group_member(gbroker, topic):
    gbroker.create_topic(topic, 2)
    produce(gbroker, topic, range(20))
    out = subprocess.run(
        ["kcat", "-b", gbroker.bootstrap, "-G", "kcat-group", "-o", "beginning", "-e", "-q", "-f", "%s\n",
         "-X", "session.timeout.ms=6000", topic],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert sorted(int(v) for v in out.stdout.split()) == list(range(20))
    marks = high_watermarks(gbroker, topic, 2)
    assert sum(marks) == 20
    wait_for(lambda: committed(gbroker, "kcat-group", topic, 2) == marks, timeout=20, what="kcat's commits")


@pytest.fixture(scope="module")
def java_classes(kafka_jars, tmp_path_factory):
    if shutil.which("javac") is None:
        pytest.skip("a JDK is required")
    out = tmp_path_factory.mktemp("java")
    subprocess.run(
        ["javac", "-cp", f"{kafka_jars}/*", "-d", str(out), str(ROOT / "tests" / "java" / "GroupConsume.java")],
        check=True,
        timeout=300,
    )
    return out


def java_consume(kafka_jars, classes, broker, topic, group, count):
    result = subprocess.run(
        ["java", "-cp", f"{kafka_jars}/*:{classes}", "GroupConsume", broker.bootstrap, topic, group, str(count), "60000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [line.split(" ", 2) for line in result.stdout.splitlines()]


def test_the_java_consumer_joins_commits_and_resumes(gbroker, topic, kafka_jars, java_classes):
    gbroker.create_topic(topic, 2)
    produce(gbroker, topic, range(40))
    rows = java_consume(kafka_jars, java_classes, gbroker, topic, "java-group", 40)
    assert sorted(int(r[2]) for r in rows) == list(range(40))
    produce(gbroker, topic, range(40, 50))
    rows = java_consume(kafka_jars, java_classes, gbroker, topic, "java-group", 10)
    assert sorted(int(r[2]) for r in rows) == list(range(40, 50))


@pytest.fixture(scope="module")
def groups_tool(kafka_jars, tmp_path_factory):
    logs = tmp_path_factory.mktemp("log4j")
    (logs / "log4j2.properties").write_text(
        "rootLogger.level=ERROR\nrootLogger.appenderRef.e.ref=E\n"
        "appender.e.type=Console\nappender.e.name=E\nappender.e.target=SYSTEM_ERR\n"
    )

    def run(broker, *args):
        result = subprocess.run(
            ["java", f"-Dlog4j2.configurationFile={logs / 'log4j2.properties'}", "-cp", f"{kafka_jars}/*",
             "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "--bootstrap-server", broker.bootstrap, *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        return result.returncode, result.stdout, result.stderr

    return run


def rows_of(describe_output, group):
    """Data rows of `--describe`: GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ..."""
    return [line.split() for line in describe_output.splitlines() if line.split()[:1] == [group]]


def test_kafka_consumer_groups_lists_describes_resets_and_deletes(gbroker, topic, groups_tool):
    gbroker.create_topic(topic, 2)
    produce(gbroker, topic, range(0, 10), partition=0)
    produce(gbroker, topic, range(10, 30), partition=1)
    c = Consumer({"bootstrap.servers": gbroker.bootstrap, "group.id": "tool-group", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    c.commit(offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 5)], asynchronous=False)
    c.close()

    code, out, err = groups_tool(gbroker, "--list")
    assert code == 0, err
    assert "tool-group" in out.split()

    code, out, err = groups_tool(gbroker, "--describe", "--group", "tool-group")
    assert code == 0, err
    rows = {int(r[2]): r for r in rows_of(out, "tool-group")}
    assert [rows[0][3], rows[0][4], rows[0][5]] == ["4", "10", "6"]
    assert [rows[1][3], rows[1][4], rows[1][5]] == ["5", "20", "15"]
    assert gbroker.metric(f'kafka_consumergroup_lag{{group="tool-group",topic="{topic}",partition="1"}}') == 15

    code, out, err = groups_tool(gbroker, "--reset-offsets", "--group", "tool-group", "--topic", topic,
                                 "--to-earliest", "--execute")
    assert code == 0, err
    assert committed(gbroker, "tool-group", topic, 2) == [0, 0]
    code, out, err = groups_tool(gbroker, "--reset-offsets", "--group", "tool-group", "--topic", f"{topic}:1",
                                 "--to-offset", "7", "--execute")
    assert code == 0, err
    assert committed(gbroker, "tool-group", topic, 2) == [0, 7]

    code, out, err = groups_tool(gbroker, "--delete-offsets", "--group", "tool-group", "--topic", f"{topic}:0")
    assert code == 0, err
    assert committed(gbroker, "tool-group", topic, 2) == [-1001, 7]

    code, out, err = groups_tool(gbroker, "--delete", "--group", "tool-group")
    assert code == 0, err
    code, out, err = groups_tool(gbroker, "--list")
    assert code == 0, err
    assert "tool-group" not in out.split()
    # The broker describes a group it does not know as Dead, which the tool reports so.
    code, out, err = groups_tool(gbroker, "--describe", "--group", "tool-group")
    assert code == 0 and "Consumer group 'tool-group' does not exist." in out + err, out + err
    assert group_state(gbroker, "tool-group") == ConsumerGroupState.DEAD


def test_a_group_with_members_is_not_deleted_and_resets_are_refused(gbroker, topic, groups_tool, tmp_path):
    gbroker.create_topic(topic, 1)
    produce(gbroker, topic, range(5))
    member = Member(gbroker, topic, "busy", tmp_path / "m")
    try:
        wait_for(lambda: len(member.seen()) == 5, what="the member reads")
        code, out, err = groups_tool(gbroker, "--describe", "--group", "busy", "--members")
        assert code == 0, err
        assert "/127.0.0.1" in out, out
        assert group_state(gbroker, "busy") == ConsumerGroupState.STABLE
        code, out, err = groups_tool(gbroker, "--delete", "--group", "busy")
        assert "GroupNotEmptyException" in out + err, out + err
        admin = AdminClient({"bootstrap.servers": gbroker.bootstrap})
        assert admin_refusal(admin.delete_consumer_groups(["busy"])) == KafkaError.NON_EMPTY_GROUP
        # kafka-consumer-groups refuses to reset an active group itself (from the state the
        # broker describes); an admin client sends the commit, which the broker refuses.
        code, out, err = groups_tool(gbroker, "--reset-offsets", "--group", "busy", "--topic", topic,
                                     "--to-earliest", "--execute")
        assert "Assignments can only be reset if the group 'busy' is inactive, but the current state is Stable." \
            in out + err, out + err
        reset = ConsumerGroupTopicPartitions("busy", [TopicPartition(topic, 0, 0)])
        [future] = admin.alter_consumer_group_offsets([reset]).values()
        [answer] = future.result(10).topic_partitions  # errors come per partition
        assert answer.error is not None and answer.error.code() == KafkaError.UNKNOWN_MEMBER_ID, answer
        assert committed(gbroker, "busy", topic, 1) == [5]
        assert group_state(gbroker, "busy") == ConsumerGroupState.STABLE
    finally:
        member.process.kill()
