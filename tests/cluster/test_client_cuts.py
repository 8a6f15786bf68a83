"""T8: a client's connections to a replicated partition's leader cut mid-produce (every
fifth produce response is dropped and its connection closed, by the proxy of
tests/clients/faults.py in front of each broker): the idempotent producer retries on a
new connection and the leader recognises the retries, so nothing is written twice; the
replicas stay identical."""

import sys
import time

from cluster import ROOT, timing, wait_until
from history import assert_clean, compare_replicas, print_report
from replicated import Load, create, describe, end_offset, partition_dirs, read_all, wait_in_sync

sys.path.insert(0, str(ROOT / "tests" / "clients"))
from faults import LossyProxy  # noqa: E402

PROXIES = {i: LossyProxy(None, every=5) for i in range(3)}


def BROKER_ARGS(broker):  # noqa: N802 - the name the cluster fixture looks for
    """Each broker advertises its proxy, which forwards to it."""
    PROXIES[broker.id].upstream_port = broker.kafka_port
    return [f"--advertised.listeners=PLAINTEXT://127.0.0.1:{PROXIES[broker.id].port}"]


def test_cut_connections_to_the_leader_duplicate_nothing(cluster, topic):
    bootstrap = ",".join(f"127.0.0.1:{p.port}" for p in PROXIES.values())
    create(bootstrap, topic, 1, 3, {"min.insync.replicas": "2"})
    wait_in_sync(cluster, topic, 0, 3, 30)
    leader = cluster.broker(describe(bootstrap, topic)[0][0])
    before = leader.metric("runnel_produce_duplicate_batches_total")
    dropped_before = sum(p.dropped for p in PROXIES.values())
    started = time.monotonic()
    load = Load(bootstrap, topic)
    try:
        wait_until("responses dropped", lambda: sum(p.dropped for p in PROXIES.values()) >= dropped_before + 10, 120)
        wait_until("more acknowledgements", lambda: load.acked() >= 2000, 120)
    finally:
        load.stop()
    timing("client cuts", "load with cut connections", time.monotonic() - started)
    hw = end_offset(bootstrap, topic, 0)
    report = load.history.check({0: read_all(bootstrap, topic, 0, hw)})
    duplicates = leader.metric("runnel_produce_duplicate_batches_total") - before
    dropped = sum(p.dropped for p in PROXIES.values()) - dropped_before
    print_report("cut produce connections", report, {"responses dropped": dropped, "retries recognised by the leader": duplicates})
    assert_clean(report)
    assert duplicates >= 1, "no retry reached the leader, so the test proved nothing"
    wait_until("replicas identical up to the high watermark", lambda: compare_replicas(partition_dirs(cluster, topic, 0), hw)[0], 30)
    print(f"replicas up to hw {hw}: {compare_replicas(partition_dirs(cluster, topic, 0), hw)[1]}")
