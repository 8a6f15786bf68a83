"""Replication on a 3-broker cluster (lease TTL 3 s): placement at RF 1, 2 and 3, the
leader killed (-9) three times under an idempotent acks=all load, and a leader SIGSTOPped
past its lease. Every fault test records a history, prints the checker's report and
asserts 0 lost and 0 duplicated, then compares every replica's log byte for byte up to
the high watermark."""

import threading
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from cluster import TTL_MS, timing, wait_until
from history import History, assert_clean, compare_replicas, print_report

TTL = TTL_MS / 1000
# A follower that has not caught up for this long leaves the ISR: short, so a zombie
# leader resumed after SIGSTOP tries to shrink the ISR to itself (and must be refused).
LAG_MS = 4000
BROKER_ARGS = (f"--replica.lag.time.max.ms={LAG_MS}",)
SLACK = 5.0


def admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)


def create(bootstrap, name, partitions, rf, configs=None):
    a = admin(bootstrap)
    try:
        a.create_topics([NewTopic(name, partitions, rf, topic_configs=configs or {})])
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


def test_a_partition_lives_on_exactly_rf_brokers(cluster, topic):
    for rf in (1, 2, 3):
        name = f"{topic}-rf{rf}"
        create(cluster.bootstrap, name, 1, rf)
        leader, replicas, isr, error = describe(cluster.bootstrap, name)[0]
        assert error == 0
        assert len(replicas) == rf and leader in replicas, (leader, replicas)
        producer = KafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all")
        for i in range(20):
            producer.send(name, f"r{i}".encode(), partition=0)
        producer.flush(timeout=30)
        producer.close()
        took = wait_in_sync(cluster, name, 0, rf, 30)
        timing("placement", f"rf {rf}: all replicas in the ISR", took)
        assert sorted(partition_dirs(cluster, name, 0)) == replicas
        # The watch stream's view is the brokers' metadata: the record in etcd agrees.
        record = cluster.etcd.partition(name, 0)
        assert sorted(record["replicas"]) == replicas
        assert sorted(m["broker"] for m in record["isr"]) == replicas
        assert assert_replicas_identical(cluster, name, 0, rf) == 20


def test_kill9_of_the_leader_three_times_loses_and_duplicates_nothing(cluster, topic):
    create(cluster.bootstrap, topic, 1, 3, {"min.insync.replicas": "2"})
    wait_in_sync(cluster, topic, 0, 3, 30)
    load = Load(cluster.bootstrap, topic)
    try:
        wait_until("the load running", lambda: load.acked() >= 200, 30)
        for round_ in range(3):
            leader = describe(cluster.bootstrap, topic)[0][0]
            victim = cluster.broker(leader)
            acked_before = load.acked()
            victim.kill()
            killed = time.monotonic()
            wait_until(
                "a new leader",
                lambda: (lambda d: d[0] not in (-1, leader) and d[3] == 0)(describe(cluster.bootstrap, topic)[0]),
                TTL + SLACK + 10,
                interval=0.2,
            )
            timing("kill -9 leader", f"round {round_ + 1}: new leader elected", time.monotonic() - killed)
            wait_until("acknowledgements again", lambda: load.acked() > acked_before + 100, 60)
            timing("kill -9 leader", f"round {round_ + 1}: producing again", time.monotonic() - killed)
            restarted = time.monotonic()
            victim.start()
            took = wait_in_sync(cluster, topic, 0, 3, 60)
            timing("kill -9 leader", f"round {round_ + 1}: restarted broker back in the ISR", time.monotonic() - restarted)
    finally:
        load.stop()
    hw = end_offset(cluster.bootstrap, topic, 0)
    read = {0: read_all(cluster.bootstrap, topic, 0, hw)}
    report = load.history.check(read)
    truncations = sum(b.metric("runnel_replication_truncations_total") for b in cluster.brokers if b.alive())
    print_report("kill -9 of the leader x3", report, {"high watermark": hw, "truncations (live brokers, since start)": truncations})
    assert_clean(report)
    assert report["acknowledged"] >= 500
    assert_replicas_identical(cluster, topic, 0, 3)


def test_a_sigstopped_leader_is_fenced_when_it_resumes(cluster, topic):
    create(cluster.bootstrap, topic, 1, 3, {"min.insync.replicas": "2"})
    wait_in_sync(cluster, topic, 0, 3, 30)
    load = Load(cluster.bootstrap, topic)
    try:
        wait_until("the load running", lambda: load.acked() >= 200, 30)
        leader = describe(cluster.bootstrap, topic)[0][0]
        zombie = cluster.broker(leader)
        failures_before = zombie.metric("runnel_replication_isr_write_failures_total")
        lost_before = zombie.metric("runnel_replica_leadership_lost_total")
        others = ",".join(b.bootstrap for b in cluster.brokers if b.id != leader)
        zombie.pause()
        paused = time.monotonic()
        try:
            wait_until(
                "a new leader",
                lambda: (lambda d: d[0] not in (-1, leader) and d[3] == 0)(describe(others, topic)[0]),
                TTL + SLACK + 10,
                interval=0.2,
            )
            timing("sigstop leader", "new leader elected", time.monotonic() - paused)
            acked = load.acked()
            wait_until("acknowledgements from the new leader", lambda: load.acked() > acked + 100, 60)
            # Past the follower lag: on waking, the zombie sees followers that have not
            # fetched from it for longer than replica.lag.time.max.ms.
            time.sleep(max(0.0, LAG_MS / 1000 + 1 - (time.monotonic() - paused)))
        finally:
            zombie.resume()
        resumed = time.monotonic()
        wait_in_sync(cluster, topic, 0, 3, 60)
        timing("sigstop leader", "zombie back in the ISR as a follower", time.monotonic() - resumed)
    finally:
        load.stop()
    failures = zombie.metric("runnel_replication_isr_write_failures_total") - failures_before
    # The zombie stepped down (it did not go on leading in the old epoch)...
    assert zombie.metric("runnel_replica_leadership_lost_total") > lost_before
    hw = end_offset(cluster.bootstrap, topic, 0)
    report = load.history.check({0: read_all(cluster.bootstrap, topic, 0, hw)})
    print_report("SIGSTOP of the leader past its lease", report, {"zombie ISR writes refused": failures})
    assert_clean(report)
    assert_replicas_identical(cluster, topic, 0, 3)


def test_a_rolling_restart_under_load_loses_nothing_and_stalls_briefly(cluster, topic):
    """SIGTERM each broker in turn (controlled shutdown moves its leaderships first),
    restart it, wait for the ISR to be whole again, next."""
    create(cluster.bootstrap, topic, 1, 3, {"min.insync.replicas": "2"})
    wait_in_sync(cluster, topic, 0, 3, 30)
    load = Load(cluster.bootstrap, topic)
    stalls = []
    try:
        wait_until("the load running", lambda: load.acked() >= 200, 30)
        for b in cluster.brokers:
            acked = load.acked()
            led = describe(cluster.bootstrap, topic)[0][0] == b.id
            stopped = time.monotonic()
            assert b.stop() == 0, f"broker {b.id} exit code"
            timing("rolling restart", f"broker {b.id}: SIGTERM to exit", time.monotonic() - stopped)
            moved = "controlled shutdown: leaderships moved" in b.log_text()
            assert moved or not led, f"broker {b.id} led the partition and did not hand it over first"
            wait_until("acknowledgements without it", lambda: load.acked() > acked + 100, 60)
            b.start()
            took = wait_in_sync(cluster, topic, 0, 3, 60)
            timing("rolling restart", f"broker {b.id}: back in the ISR after restart", took)
            stalls.append(load.history.longest_gap())
    finally:
        load.stop()
    hw = end_offset(cluster.bootstrap, topic, 0)
    report = load.history.check({0: read_all(cluster.bootstrap, topic, 0, hw)})
    print_report("rolling restart (SIGTERM)", report, {"lease TTL s": TTL})
    timing("rolling restart", "longest produce stall", report["longest_unavailability_s"])
    assert_clean(report)
    assert report["longest_unavailability_s"] < TTL, "a controlled shutdown must not cost a lease TTL"
    assert_replicas_identical(cluster, topic, 0, 3)
