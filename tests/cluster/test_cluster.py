"""A 3-broker cluster over one etcd (lease TTL 3 s): membership, spread, produce and
consume across brokers, then faults in an order that leaves the cluster whole after each
(etcd restart, a SIGSTOPped broker, kill -9 of the controller's broker and restarts).

Every wait is measured and printed (and summarised under "cluster timings")."""

import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from cluster import TTL_MS, timing, wait_until
from replicated import admin

TTL = TTL_MS / 1000
# Lease expiry is seen TTL after the last keep-alive at most; the rest is the watch, the
# campaign and the controller's first reconcile on a 2-core machine under load.
SLACK = 3.0
LEADER_NOT_AVAILABLE = 5
TOPICS = "org.apache.kafka.tools.TopicCommand"


def create(bootstrap, name, partitions):
    a = admin(bootstrap)
    try:
        result = a.create_topics({name: {"num_partitions": partitions, "replication_factor": 1}}, raise_errors=False)
    finally:
        a.close()
    [t] = result["topics"]
    assert (t["name"], t["error_code"]) == (name, 0), t
    return t


def leaders(bootstrap, name):
    """partition → (leader id, error code), from Metadata through `bootstrap`."""
    a = admin(bootstrap)
    try:
        [t] = a.describe_topics([name])
    finally:
        a.close()
    return {p["partition_index"]: (p["leader_id"], p["error_code"]) for p in t["partitions"]}


def all_partitions(bootstrap):
    """(topic, leader) of every partition in the cluster, from Metadata."""
    a = admin(bootstrap)
    try:
        topics = a.describe_topics()
    finally:
        a.close()
    return [(t["name"], p["leader_id"]) for t in topics for p in t["partitions"]]


def led_by(bootstrap):
    """broker id → how many partitions it leads, over every topic, from Metadata."""
    a = admin(bootstrap)
    try:
        topics = a.describe_topics()
    finally:
        a.close()
    counts = {0: 0, 1: 0, 2: 0}
    for t in topics:
        for p in t["partitions"]:
            if p["leader_id"] >= 0:
                counts[p["leader_id"]] += 1
    return counts


def produce(bootstrap, name, partitions, per_partition):
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for i in range(per_partition):
        for p in range(partitions):
            producer.send(name, f"v{p}-{i}".encode(), partition=p)
    producer.flush(timeout=30)
    producer.close()


def consume(bootstrap, name, partitions, expected, timeout=30):
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=2000
    )
    consumer.assign([TopicPartition(name, p) for p in range(partitions)])
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            got.extend(batch)
    consumer.close()
    return got


def test_membership_and_kafka_topics_describe(cluster, kafka_cli, topic):
    a = admin(cluster.bootstrap)
    try:
        described = a.describe_cluster()
    finally:
        a.close()
    ids = sorted(b["broker_id"] for b in described["brokers"])
    assert ids == [0, 1, 2]
    assert {b["broker_id"]: b["rack"] for b in described["brokers"]} == {0: "zone-a", 1: "zone-b", 2: "zone-c"}
    assert described["controller_id"] == cluster.controller_id()
    assert described["controller_id"] in ids
    # Exactly one broker acts as controller.
    active = [int(b.metric("kafka_controller_active_controller_count")) for b in cluster.brokers]
    assert sorted(active) == [0, 0, 1], active
    assert active.index(1) == described["controller_id"]

    create(cluster.bootstrap, topic, 3)
    other = cluster.non_controller()
    started = time.monotonic()
    code, out, err = kafka_cli(TOPICS, "--bootstrap-server", other.bootstrap, "--describe", "--topic", topic)
    timing("kafka-topics", "--describe through a non-controller", time.monotonic() - started)
    assert code == 0, f"stdout: {out}\nstderr: {err[-3000:]}"
    rows = [line for line in out.splitlines() if "Partition:" in line]
    assert len(rows) == 3, out
    described_leaders = {}
    for row in rows:
        fields = dict(f.strip().split(": ", 1) for f in row.strip().split("\t") if ": " in f)
        assert fields["Topic"] == topic
        described_leaders[int(fields["Partition"])] = int(fields["Leader"])
    assert described_leaders == {p: leader for p, (leader, _) in leaders(other.bootstrap, topic).items()}
    assert sorted(described_leaders.values()) == [0, 1, 2]


def test_spread_and_produce_consume_across_brokers(cluster, topic):
    create(cluster.bootstrap, topic, 6)
    placed = leaders(cluster.bootstrap, topic)
    assert sorted(placed) == list(range(6))
    assert all(error == 0 for _, error in placed.values()), placed
    per_broker = {b.id: sorted(p for p, (leader, _) in placed.items() if leader == b.id) for b in cluster.brokers}
    assert {b: len(ps) for b, ps in per_broker.items()} == {0: 2, 1: 2, 2: 2}, per_broker
    # Each partition's directory exists on its leader's data dir only.
    for p, (leader, _) in placed.items():
        holders = [b.id for b in cluster.brokers if (b.data / f"{topic}-{p}").is_dir()]
        assert holders == [leader], (p, holders)
    # Each broker's own count of the partitions it leads agrees with Metadata (every topic).
    assert {b.id: b.leader_count() for b in cluster.brokers} == led_by(cluster.bootstrap)

    writer, reader = cluster.brokers[0], cluster.brokers[1]
    started = time.monotonic()
    produce(writer.bootstrap, topic, 6, 100)
    produced = time.monotonic() - started
    started = time.monotonic()
    got = consume(reader.bootstrap, topic, 6, 600)
    timing("spread", "produce 600 records through broker 0", produced)
    timing("spread", "consume them through broker 1", time.monotonic() - started)
    assert len(got) == 600
    by_partition = {}
    for r in got:
        by_partition.setdefault(r.partition, []).append(r.value.decode())
    assert {p: len(v) for p, v in by_partition.items()} == {p: 100 for p in range(6)}
    for p, values in by_partition.items():
        assert values == [f"v{p}-{i}" for i in range(100)]
    assert sum(b.metric(f'kafka_server_brokertopicmetrics_messages_in_total{{topic="{topic}"}}') for b in cluster.brokers) == 600


def test_etcd_restart_under_the_cluster(cluster, topic):
    create(cluster.bootstrap, topic, 3)
    before = {b.id: cluster.etcd.get(f"/runnel/test/brokers/{b.id}") for b in cluster.brokers}
    controller_before = cluster.etcd.controller()
    reloads_before = {b.id: b.metric("runnel_etcd_watch_reloads_total") for b in cluster.brokers}
    resumes_before = {b.id: b.metric("runnel_etcd_watch_resumes_total") for b in cluster.brokers}
    started = time.monotonic()
    cluster.etcd.stop()
    cluster.etcd.start()
    timing("etcd restart", "etcd down (SIGTERM to healthy again)", time.monotonic() - started)

    def all_registered():
        now = {b.id: cluster.etcd.get(f"/runnel/test/brokers/{b.id}") for b in cluster.brokers}
        return all(now.values()) and now

    after, took = wait_until("3 registered brokers after the etcd restart", all_registered, 2 * TTL + SLACK)
    timing("etcd restart", "3 brokers registered again", took)
    for b in cluster.brokers:
        assert b.alive(), f"broker {b.id} exited; log: {b.log_path}"
        _, took = wait_until(f"broker {b.id} ready", b.ready, 2 * TTL + SLACK)
    kept = [b for b in before if before[b]["lease"] == after[b]["lease"]]
    epochs = {b: (before[b]["create_revision"], after[b]["create_revision"]) for b in before}
    print(f"leases kept by brokers {kept}; epochs (before, after): {epochs}")
    for b in kept:
        assert after[b]["create_revision"] == before[b]["create_revision"], (b, epochs[b])
    # etcd keeps leases across a restart (their TTLs renewed), but a lease can expire
    # while etcd is still stopping: SIGTERM's graceful stop waits for open streams and
    # refuses keep-alives meanwhile (7 s and more on a busy machine, over the 3 s TTL).
    # A broker whose lease survived keeps its epoch (checked above); the others must
    # have registered again with a new one.
    for b in before:
        if b not in kept:
            assert after[b]["create_revision"] > before[b]["create_revision"], (b, epochs[b])
    if kept == [0, 1, 2]:
        assert cluster.etcd.controller() == controller_before
    # Each broker's metadata watch picked up where it broke off (its next revision was
    # still in etcd's history): resumed, not reloaded.
    for b in cluster.brokers:
        _, took = wait_until(
            f"broker {b.id}'s watch resumed",
            lambda b=b: b.metric("runnel_etcd_watch_resumes_total") > resumes_before[b.id],
            2 * TTL + SLACK,
        )
        assert b.metric("runnel_etcd_watch_reloads_total") == reloads_before[b.id], b.id

    started = time.monotonic()
    produce(cluster.brokers[2].bootstrap, topic, 3, 10)
    got = consume(cluster.brokers[0].bootstrap, topic, 3, 30)
    timing("etcd restart", "produce and consume 30 records after", time.monotonic() - started)
    assert len(got) == 30


def test_sigstopped_broker_steps_down_and_comes_back(cluster, topic):
    create(cluster.bootstrap, topic, 6)
    victim = cluster.non_controller()
    controller = cluster.controller_id()
    mine = sorted(p for p, (leader, _) in leaders(cluster.bootstrap, topic).items() if leader == victim.id)
    assert len(mine) == 2, mine
    epoch_before = cluster.etcd.broker_epoch(victim.id)
    records_before = {p: cluster.etcd.partition(topic, p) for p in mine}
    leading_before = victim.leader_count()
    assert leading_before >= 2
    lost_before = victim.metric("runnel_replica_leadership_lost_total")

    victim.pause()
    paused_at = time.monotonic()
    try:
        _, took = wait_until("the paused broker's registration to expire", lambda: cluster.etcd.broker_epoch(victim.id) is None, TTL + SLACK)
        timing("sigstop", "registration gone after SIGSTOP", took)
        # Its partitions (RF 1, no other replica) go offline while it is away.
        other = cluster.brokers[controller]
        _, took = wait_until(
            "its partitions offline",
            lambda: all(leaders(other.bootstrap, topic)[p] == (-1, LEADER_NOT_AVAILABLE) for p in mine),
            SLACK,
        )
        timing("sigstop", "its partitions offline (leader -1) after expiry", took)
        time.sleep(max(0.0, 2 * TTL - (time.monotonic() - paused_at)))
    finally:
        victim.resume()
    resumed_at = time.monotonic()
    # Right after it notices, it leads nothing. Stepping down and being elected again
    # can take less than one scrape on a busy machine (CI once sampled 6 leaders 695
    # times and never 0), so the broker's own count of lost leaderships is asserted:
    # every partition it led stepped down. The samples are printed for the record.
    samples = []
    lost = 0
    while time.monotonic() - resumed_at < 2 * TTL + SLACK:
        try:
            samples.append(victim.leader_count())
            lost = victim.metric("runnel_replica_leadership_lost_total") - lost_before
        except OSError:
            continue
        if lost >= leading_before and samples[-1] >= leading_before:
            break
        time.sleep(0.01)
    print(f"after SIGCONT: leadership lost {lost} times; leader_count samples {samples[:10]}...{samples[-5:]}")
    assert lost >= leading_before, (lost, leading_before, samples)
    epoch_after, took = wait_until("a new registration", lambda: cluster.etcd.broker_epoch(victim.id), 2 * TTL + SLACK)
    timing("sigstop", "re-registered after SIGCONT", time.monotonic() - resumed_at)
    assert epoch_after > epoch_before

    def back():
        now = {p: cluster.etcd.partition(topic, p) for p in mine}
        return all(r["leader"] == victim.id and r["isr"] == [{"broker": victim.id, "broker_epoch": epoch_after}] for r in now.values()) and now

    records_after, _ = wait_until("leadership back on the new epoch", back, 2 * TTL + SLACK)
    timing("sigstop", "leader again (new epoch in the ISR) after SIGCONT", time.monotonic() - resumed_at)
    for p in mine:
        # Offline, then back: two leadership changes.
        assert records_after[p]["leader_epoch"] == records_before[p]["leader_epoch"] + 2, (records_before[p], records_after[p])
    _, took = wait_until("its leader count back", lambda: victim.leader_count() == leading_before, 5)
    _, took = wait_until("it ready again", victim.ready, 5)
    assert cluster.controller_id() == controller
    log = victim.log_text()
    assert "registration lease lost" in log
    assert victim.alive()
    produce(cluster.bootstrap, topic, 6, 5)
    assert len(consume(victim.bootstrap, topic, 6, 30)) == 30


def test_kill9_controller_fails_over_and_restart_gets_partitions_back(cluster, topic):
    create(cluster.bootstrap, topic, 6)
    victim_id = cluster.controller_id()
    victim = cluster.broker(victim_id)
    survivor = cluster.non_controller()
    mine = sorted(p for p, (leader, _) in leaders(cluster.bootstrap, topic).items() if leader == victim_id)
    assert len(mine) == 2, mine
    epoch_before = cluster.etcd.broker_epoch(victim_id)

    victim.kill()
    killed_at = time.monotonic()
    new_controller, took = cluster.wait_controller(exclude={victim_id}, timeout=TTL + SLACK)
    timing("kill -9", "new controller elected after kill -9 of the controller", took)
    assert new_controller != victim_id
    assert took < TTL + SLACK

    def offline():
        now = leaders(survivor.bootstrap, topic)
        return all(now[p] == (-1, LEADER_NOT_AVAILABLE) for p in mine) and now

    now, took = wait_until("the killed broker's partitions offline", offline, SLACK)
    timing("kill -9", "its RF 1 partitions offline (leader -1, LEADER_NOT_AVAILABLE)", time.monotonic() - killed_at)
    # The new controller counts every partition without a leader (this topic's and the
    # module's earlier ones led by the dead broker), the others count none.
    offline_total = sum(1 for t in all_partitions(survivor.bootstrap) if t[1] == -1)
    assert offline_total >= 2
    counts = {b.id: int(b.metric("kafka_controller_offline_partitions_count")) for b in cluster.brokers if b.alive()}
    assert counts == {b: (offline_total if b == new_controller else 0) for b in counts}, counts
    # The new controller took office once, wrote one leadership change per partition it
    # took offline, and none of its transactions was refused as a stale term's.
    successor = cluster.broker(new_controller)
    assert successor.metric("runnel_controller_elections_total") == 1
    assert successor.metric("runnel_controller_leader_changes_total") == offline_total
    assert successor.metric("runnel_controller_fenced_transactions_total") == 0
    assert all(now[p][0] in (0, 1, 2) and now[p][0] != victim_id for p in now if p not in mine)

    survivors = ",".join(b.bootstrap for b in cluster.brokers if b.alive())
    again = f"{topic}-after"
    started = time.monotonic()
    create(survivors, again, 4)
    timing("kill -9", "CreateTopics through the survivors", time.monotonic() - started)
    placed = leaders(survivor.bootstrap, again)
    assert sorted(leader for leader, _ in placed.values()) == sorted(
        2 * [b.id for b in cluster.brokers if b.id != victim_id]
    ), placed

    # Back with the same id and data directory, after the old lease has expired.
    started = time.monotonic()
    took = victim.start()
    timing("kill -9", "restarted broker ready", took)
    assert victim.alive()
    epoch_after = cluster.etcd.broker_epoch(victim_id)
    assert epoch_after > epoch_before
    _, took = wait_until(
        "its partitions led by it again",
        lambda: all(leaders(survivor.bootstrap, topic)[p] == (victim_id, 0) for p in mine),
        SLACK,
    )
    timing("kill -9", "leader again for its partitions after restart", time.monotonic() - started)
    assert cluster.controller_id() == new_controller
    produce(victim.bootstrap, topic, 6, 10)
    assert len(consume(survivor.bootstrap, topic, 6, 60)) == 60


def test_kill9_and_immediate_restart_waits_out_the_old_lease(cluster, topic):
    """A pod restarted at once finds its previous registration still alive: it must retry
    until that lease expires, not exit (crash-loop)."""
    create(cluster.bootstrap, topic, 3)
    victim = cluster.non_controller()
    produce(victim.bootstrap, topic, 3, 10)
    mine = sorted(p for p, (leader, _) in leaders(cluster.bootstrap, topic).items() if leader == victim.id)
    assert len(mine) == 1, mine
    epoch_before = cluster.etcd.broker_epoch(victim.id)
    victim.kill()
    started = time.monotonic()
    victim.start(wait=False)
    took = victim.wait_ready(timeout=2 * TTL + SLACK + 10)
    timing("kill -9 + immediate restart", "ready (after waiting out the old lease)", took)
    assert victim.alive()
    assert cluster.etcd.broker_epoch(victim.id) > epoch_before
    log = victim.log_text()
    assert log.count("waiting for it to expire") == 1
    _, took = wait_until(
        "its partition led by it again",
        lambda: all(leaders(cluster.bootstrap, topic)[p] == (victim.id, 0) for p in mine),
        2 * TTL + SLACK,
    )
    timing("kill -9 + immediate restart", "leader again", time.monotonic() - started)
    # Nothing acknowledged was lost (acks=all waits for fsync).
    assert len(consume(cluster.bootstrap, topic, 3, 30)) == 30
