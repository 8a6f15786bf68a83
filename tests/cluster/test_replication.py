"""Replication on a 3-broker cluster (lease TTL 3 s): placement at RF 1, 2 and 3; the
leader killed (-9) repeatedly under an idempotent acks=all load (3 rounds, 10 under
scripts/test.sh --full) and once under the Java producer; a leader SIGSTOPped past its
lease; a rolling restart; a fourth broker joining. Every fault test records a history or
the acknowledged offsets, asserts 0 lost and 0 duplicated, and compares every replica's
log byte for byte up to the high watermark."""

import os
import shutil
import subprocess
import time

from kafka import KafkaProducer

from cluster import TTL_MS, timing, wait_until
from history import assert_clean, print_report
from replicated import (
    Load,
    assert_replicas_identical,
    compile_java,
    create,
    describe,
    end_offset,
    partition_dirs,
    read_all,
    wait_in_sync,
)

TTL = TTL_MS / 1000
# A follower that has not caught up for this long leaves the ISR: short, so a zombie
# leader resumed after SIGSTOP tries to shrink the ISR to itself (and must be refused).
LAG_MS = 4000
BROKER_ARGS = (f"--replica.lag.time.max.ms={LAG_MS}",)
SLACK = 5.0
# scripts/test.sh --full repeats the leader kills (the fault matrix's soak).
KILL_ROUNDS = 10 if os.environ.get("RUNNEL_FULL") else 3


TOPICS = "org.apache.kafka.tools.TopicCommand"


def described_by_kafka_topics(kafka_cli, bootstrap, name):
    """partition → (leader, replicas, isr) as `kafka-topics --describe` prints them."""
    code, out, err = kafka_cli(TOPICS, "--bootstrap-server", bootstrap, "--describe", "--topic", name)
    assert code == 0, f"stdout: {out}\nstderr: {err[-3000:]}"
    found = {}
    for row in (line for line in out.splitlines() if "Partition:" in line):
        fields = dict(f.strip().split(": ", 1) for f in row.strip().split("\t") if ": " in f)
        ids = lambda text: sorted(int(x) for x in text.split(",") if x)  # noqa: E731
        found[int(fields["Partition"])] = (int(fields["Leader"]), ids(fields["Replicas"]), ids(fields["Isr"]))
    return found


def test_a_partition_lives_on_exactly_rf_brokers(cluster, topic, kafka_cli):
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
        # Kafka's own tool sees the same leader, replicas and ISR as kafka-python's Metadata.
        leader, replicas, isr, _ = describe(cluster.bootstrap, name)[0]
        assert described_by_kafka_topics(kafka_cli, cluster.bootstrap, name) == {0: (leader, replicas, isr)}


def test_kill9_of_the_leader_repeatedly_loses_and_duplicates_nothing(cluster, topic):
    create(cluster.bootstrap, topic, 1, 3, {"min.insync.replicas": "2"})
    wait_in_sync(cluster, topic, 0, 3, 30)
    load = Load(cluster.bootstrap, topic)
    try:
        wait_until("the load running", lambda: load.acked() >= 200, 30)
        for round_ in range(KILL_ROUNDS):
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
    print_report(f"kill -9 of the leader x{KILL_ROUNDS}", report, {"high watermark": hw, "truncations (live brokers, since start)": truncations})
    assert_clean(report)
    assert report["acknowledged"] >= 500
    assert_replicas_identical(cluster, topic, 0, 3)


def test_the_java_producer_rides_through_a_leader_kill(cluster, topic, kafka_jars, tmp_path):
    """T1 with the Java client's default producer (idempotent, acks=all): kill -9 of the
    leader while it sends; every record acknowledged once, at its own offset, in order."""
    assert shutil.which("javac"), "a JDK is required (scripts/setup.sh installs one)"
    classes = compile_java(kafka_jars, tmp_path / "java", "IdempotentProduce")
    create(cluster.bootstrap, topic, 1, 3, {"min.insync.replicas": "2"})
    wait_in_sync(cluster, topic, 0, 3, 30)
    count = 40000
    producer = subprocess.Popen(
        ["java", "-cp", f"{kafka_jars}/*:{classes}", "IdempotentProduce", cluster.bootstrap, topic, str(count), "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    leader = describe(cluster.bootstrap, topic)[0][0]
    victim = cluster.broker(leader)
    try:
        wait_until(
            "the producer under way",
            lambda: victim.metric(f'kafka_log_log_end_offset{{topic="{topic}",partition="0"}}') >= 2000,
            60,
            interval=0.05,
        )
        victim.kill()
        killed = time.monotonic()
        out, err = producer.communicate(timeout=240)
        timing("java producer", "all acknowledged after the leader's kill", time.monotonic() - killed)
    finally:
        if producer.poll() is None:
            producer.kill()
        if not victim.alive():
            victim.start()
    assert producer.returncode == 0, err[-3000:]
    rows = [line.split(" ") for line in out.splitlines()]
    assert [int(r[1]) for r in rows] == list(range(count)), "each record acknowledged once, at its own offset"
    hw = end_offset(cluster.bootstrap, topic, 0)
    values = [v for _, v in read_all(cluster.bootstrap, topic, 0, hw)]
    print(f"java producer through a leader kill: {count} acknowledged, hw {hw}, read back {len(values)}")
    assert values == [f"java-{i}" for i in range(count)], "no record lost, duplicated or reordered"
    wait_in_sync(cluster, topic, 0, 3, 60)
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
        zombie.pause()
        paused = time.monotonic()
        try:
            # From etcd: a client's metadata request may wait on the paused broker.
            wait_until(
                "a new leader",
                lambda: cluster.etcd.partition(topic, 0)["leader"] not in (-1, leader),
                TTL + SLACK + 10,
                interval=0.1,
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


def test_a_new_broker_joins_and_new_topics_use_it(cluster, topic):
    """Runs last in this module: the cluster has four brokers afterwards."""
    from cluster import RACKS, ClusterBroker, admin_listener_supported

    newcomer = ClusterBroker(
        3, cluster.dir / "broker-3", cluster.etcd.endpoint, RACKS[0], admin_listener_supported(), BROKER_ARGS
    )
    cluster.brokers.append(newcomer)
    took = newcomer.start()
    timing("new broker", "broker 3 ready", took)
    wait_until("broker 3 registered", lambda: cluster.etcd.broker_epoch(3), 10)
    # The controller places replicas on the brokers it has seen: wait until it has seen
    # the newcomer, or the topic could be placed on the first three alone.
    wait_until("the controller sees 4 brokers", lambda: cluster.brokers_seen_by(cluster.controller_id()) == 4, 10)
    create(cluster.bootstrap, topic, 4, 3)
    placed = describe(cluster.bootstrap, topic)
    hosting = [p for p, (_, replicas, _, _) in placed.items() if 3 in replicas]
    leading = [p for p, (leader, _, _, _) in placed.items() if leader == 3]
    print(f"placement on 4 brokers: {placed}")
    # Rack-aware: broker 3 shares zone-a with broker 0, so the two share one replica of
    # each partition between them.
    assert hosting, "the new broker got no replica"
    assert leading, "the new broker leads nothing"
    for p in range(4):
        wait_in_sync(cluster, topic, p, 3, 30)
    assert (newcomer.data / f"{topic}-{hosting[0]}").is_dir()
