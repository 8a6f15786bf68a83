"""A consumer group keeps consuming when its coordinator's broker is killed (-9): the
__consumer_offsets partition is replicated (RF 3), a follower takes over as leader, the
new coordinator loads the group's offsets to its log end, and neither the committed
offset nor the consumer goes back before what was committed. Once with the Java
consumer (commitSync after every poll), once with kcat -G (librdkafka's auto-commit)."""

import shutil
import subprocess
import threading
import time

from kafka import KafkaProducer

from cluster import TTL_MS, timing, wait_until
from groups import committed, coordinator
from replicated import compile_java, create, wait_in_sync

TTL = TTL_MS / 1000
RECORDS = 3000


class Output:
    """The lines a consumer process prints, collected by a thread."""

    def __init__(self, process):
        self.lines = []
        self.process = process
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        for line in self.process.stdout:
            self.lines.append(line.strip())

    def records(self):
        return [line for line in list(self.lines) if line.startswith("record ")]


def produce_in_background(bootstrap, topic):
    stop = threading.Event()

    def run():
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
        for i in range(RECORDS):
            producer.send(topic, f"g{i:05d}".encode(), partition=0)
            if i % 30 == 29:
                producer.flush(timeout=60)
                time.sleep(0.05)
        producer.flush(timeout=60)
        producer.close()
        stop.set()

    threading.Thread(target=run, daemon=True).start()
    return stop


def kill_the_coordinator_midway(cluster, group, topic, output):
    """Kills the group's coordinator once the consumer is a third of the way in; returns
    (committed offset before, committed offset after the new coordinator loaded)."""
    wait_until("a third consumed", lambda: len(output.records()) >= RECORDS // 3, 120)
    wait_until("an offset committed", lambda: committed(cluster.bootstrap, group, topic) > 0, 30)
    victim = cluster.broker(coordinator(cluster.bootstrap, group))
    before = committed(cluster.bootstrap, group, topic)
    victim.kill()
    killed = time.monotonic()
    survivors = ",".join(b.bootstrap for b in cluster.brokers if b.alive())
    _, took = wait_until(
        "a new coordinator",
        lambda: coordinator(survivors, group) not in (-1, victim.id),
        TTL + 15,
        interval=0.2,
    )
    timing("group failover", f"{group}: new coordinator after kill -9", time.monotonic() - killed)
    after, _ = wait_until("the committed offset from the new coordinator",
                          lambda: (lambda c: c >= 0 and (c,))(committed(survivors, group, topic)), 30)
    return victim, before, after[0]


def check_no_replay_before_commits(lines):
    """Every record offset that goes back (a restart of the consumer's position) lands at
    or after the last offset committed before it; returns how many times it went back."""
    last_commit = 0
    highest = -1
    restarts = 0
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind == "commit":
            last_commit = max(last_commit, int(rest))
        elif kind == "record":
            offset = int(rest.split(" ")[0])
            if offset <= highest:
                restarts += 1
                assert offset >= last_commit, f"replayed from {offset}, before the committed {last_commit}"
            highest = max(highest, offset)
    return restarts


def test_the_java_consumer_keeps_its_place_when_the_coordinator_dies(cluster, topic, kafka_jars, tmp_path):
    assert shutil.which("javac"), "a JDK is required (scripts/setup.sh installs one)"
    classes = compile_java(kafka_jars, tmp_path / "java", "GroupFollow")
    create(cluster.bootstrap, topic, 1, 3, {"min.insync.replicas": "2"})
    wait_in_sync(cluster, topic, 0, 3, 30)
    group = f"java-{topic}"
    produced = produce_in_background(cluster.bootstrap, topic)
    consumer = subprocess.Popen(
        ["java", "-cp", f"{kafka_jars}/*:{classes}", "GroupFollow", cluster.bootstrap, topic, group, str(RECORDS), "150000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    output = Output(consumer)
    victim = None
    try:
        victim, before, after = kill_the_coordinator_midway(cluster, group, topic, output)
        assert after >= before, f"the committed offset went back from {before} to {after}"
        assert consumer.wait(timeout=180) == 0
        assert produced.wait(timeout=60)
    finally:
        if consumer.poll() is None:
            consumer.kill()
        if victim is not None and not victim.alive():
            victim.start()
    output.thread.join(timeout=10)
    records = output.records()
    offsets = {int(line.split(" ")[1]) for line in records}
    values = {line.split(" ")[2] for line in records}
    restarts = check_no_replay_before_commits(output.lines)
    print(f"java consumer: {len(records)} records, {len(offsets)} distinct, committed {before} before the kill and {after} after, position restarts {restarts}")
    assert offsets == set(range(RECORDS)), "records lost"
    assert values == {f"g{i:05d}" for i in range(RECORDS)}
    wait_in_sync(cluster, topic, 0, 3, 60)


def test_kcat_keeps_its_place_when_the_coordinator_dies(cluster, topic, tmp_path):
    assert shutil.which("kcat"), "kcat is required (scripts/setup.sh installs it)"
    create(cluster.bootstrap, topic, 1, 3, {"min.insync.replicas": "2"})
    wait_in_sync(cluster, topic, 0, 3, 30)
    group = f"kcat-{topic}"
    produced = produce_in_background(cluster.bootstrap, topic)
    consumer = subprocess.Popen(
        [
            "kcat", "-u", "-b", cluster.bootstrap, "-G", group, "-f", "record %o %s\\n",
            "-X", "auto.offset.reset=earliest", "-X", "auto.commit.interval.ms=100", topic,
        ],
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "kcat.err", "w"),
        text=True,
    )
    output = Output(consumer)
    victim = None
    try:
        victim, before, after = kill_the_coordinator_midway(cluster, group, topic, output)
        assert after >= before, f"the committed offset went back from {before} to {after}"
        assert produced.wait(timeout=120)
        try:
            wait_until(
                "kcat to read everything",
                lambda: {int(line.split(" ")[1]) for line in output.records()} >= set(range(RECORDS)),
                120,
            )
        except AssertionError:
            seen = {int(line.split(" ")[1]) for line in output.records()}
            print(f"kcat read {len(seen)} distinct offsets, up to {max(seen, default=-1)}; its stderr:")
            print((tmp_path / "kcat.err").read_text()[-3000:])
            raise
    finally:
        consumer.terminate()
        consumer.wait(timeout=30)
        if victim is not None and not victim.alive():
            victim.start()
    output.thread.join(timeout=10)
    records = output.records()
    print(f"kcat -G: {len(records)} records, committed {before} before the kill and {after} after")
    # librdkafka commits every 100 ms in the background: a restart may re-read what it
    # read after its last commit, never what was committed.
    assert {int(line.split(" ")[1]) for line in records} == set(range(RECORDS))
    wait_in_sync(cluster, topic, 0, 3, 60)
