"""Network cuts (netcut.py: each broker in a network namespace of its own, packets dropped
in both directions without either side being told) under an idempotent acks=all load on
RF 3, min.insync.replicas=2, lease TTL 3 s:

- the leader cut off from everything: the others elect a new leader and keep
  acknowledging; healed, the old leader finds its lease gone, steps down, truncates what
  it alone wrote and is back in the ISR;
- the leader cut off from etcd only (peers and clients still reach it): the same, with the
  cut leader still answering clients the whole time, which must not make it acknowledge
  anything the new leader lacks;
- a follower cut off from its peers: it leaves the ISR, the other two go on, and healed,
  it catches up and comes back.

Each asserts 0 lost and 0 duplicated over the whole history, the broker-side counters that
show the fault happened, and every replica's log identical up to the high watermark."""

import time

from cluster import TTL_MS, timing, wait_until
from history import assert_clean, print_report
from replicated import (
    Load,
    assert_replicas_identical,
    create,
    describe,
    end_offset,
    read_all,
    wait_every_broker_names,
    wait_in_sync,
)

OWN_NETWORK = True
TTL = TTL_MS / 1000
LAG_MS = 4000
BROKER_ARGS = (f"--replica.lag.time.max.ms={LAG_MS}",)
# How long a leader's cut lasts: past its lease, past the replica lag time of the followers
# it no longer hears from, and a little more, so each of its attempts to go on alone runs.
LEADER_CUT_S = TTL + LAG_MS / 1000 + 4


def loaded_topic(cluster, topic):
    create(cluster.bootstrap, topic, 1, 3, {"min.insync.replicas": "2"})
    wait_in_sync(cluster, topic, 0, 3, 30)
    load = Load(cluster.bootstrap, topic)
    wait_until("the load running", lambda: load.acked() >= 200, 30)
    return load


def counter(broker, name):
    return broker.metric(f"runnel_replication_{name}_total")


def cut_the_leader(cluster, network, topic, cut_from, scenario):
    """Cuts the partition's leader off from `cut_from` under load for LEADER_CUT_S, heals
    it, and checks the history, the replicas and that the cut leader stepped down."""
    load = loaded_topic(cluster, topic)
    leader = describe(cluster.bootstrap, topic)[0][0]
    victim = cluster.broker(leader)
    try:
        before = cluster.etcd.partition(topic, 0)
        epoch_before = cluster.etcd.broker_epoch(leader)
        failures_before = counter(victim, "isr_write_failures")
        acked = load.acked()
        network.cut(leader, *cut_from)
        cut = time.monotonic()
        wait_until(
            "a new leader in etcd",
            lambda: (lambda r: r["leader"] not in (-1, leader))(cluster.etcd.partition(topic, 0)),
            TTL + 15,
            interval=0.2,
        )
        timing(scenario, "new leader elected", time.monotonic() - cut)
        wait_until("acknowledgements through the new leader", lambda: load.acked() > acked + 100, 60)
        timing(scenario, "producing again", time.monotonic() - cut)
        time.sleep(max(0.0, LEADER_CUT_S - (time.monotonic() - cut)))
        network.heal(leader)
        healed = time.monotonic()
        # Until it hears from etcd again the cut broker answers from what it knew (itself
        # leader, the old ISR and HW): wait for its new registration and for every broker's
        # Metadata to agree before reading anything back.
        wait_until("the cut broker registered again", lambda: (cluster.etcd.broker_epoch(leader) or 0) > epoch_before, 30, interval=0.2)
        timing(scenario, "cut broker registered again after the heal", time.monotonic() - healed)
        new_leader = cluster.etcd.partition(topic, 0)["leader"]
        wait_every_broker_names(cluster, topic, 0, new_leader, 30)
        wait_until("all three in the ISR in etcd", lambda: len(cluster.etcd.partition(topic, 0)["isr"]) == 3, 60, interval=0.2)
        timing(scenario, "healed broker back in the ISR", time.monotonic() - healed)
        acked = load.acked()
        wait_until("acknowledgements after the heal", lambda: load.acked() > acked + 100, 60)
    except AssertionError:
        print(cluster.state_report(topic))
        raise
    finally:
        network.heal(leader)
        load.stop()
    hw = end_offset(cluster.bootstrap, topic, 0)
    report = load.history.check({0: read_all(cluster.bootstrap, topic, 0, hw)})
    after = cluster.etcd.partition(topic, 0)
    failures = counter(victim, "isr_write_failures") - failures_before
    print_report(
        scenario,
        report,
        {
            "cut for s": round(healed - cut, 1),
            "leader epoch": f"{before['leader_epoch']} -> {after['leader_epoch']}",
            "cut broker's epoch": f"{epoch_before} -> {cluster.etcd.broker_epoch(leader)}",
            "cut broker's truncations": counter(victim, "truncations"),
            "cut broker's refused or failed ISR writes": failures,
        },
    )
    assert_clean(report)
    assert after["leader_epoch"] > before["leader_epoch"]
    # Healed, the cut broker learned its lease had expired and registered again: a new
    # broker epoch, and everything it led was given up.
    assert "registration lease lost" in victim.log_text()
    assert cluster.etcd.broker_epoch(leader) > epoch_before
    assert_replicas_identical(cluster, topic, 0, 3)
    return victim, failures


def test_a_leader_cut_off_from_everything(cluster, network, topic):
    cut_the_leader(cluster, network, topic, ("etcd", "peers", "clients"), "leader cut off from everything")


def test_a_leader_cut_off_from_etcd_alone(cluster, network, topic):
    _, failures = cut_the_leader(cluster, network, topic, ("etcd",), "leader cut off from etcd")
    # Its followers left for the new leader, so it tried to shrink the ISR to itself: the
    # write never reached etcd, or was refused by its compare once it did.
    assert failures > 0


def test_a_follower_cut_off_from_its_peers(cluster, network, topic):
    scenario = "follower cut off from its peers"
    load = loaded_topic(cluster, topic)
    leader, replicas, _, _ = describe(cluster.bootstrap, topic)[0]
    follower = next(r for r in replicas if r != leader)
    head = cluster.broker(leader)
    try:
        shrinks, expands = counter(head, "isr_shrinks"), counter(head, "isr_expands")
        network.cut(follower, "peers")
        cut = time.monotonic()
        wait_until(
            "the follower out of the ISR",
            lambda: follower not in [m["broker"] for m in cluster.etcd.partition(topic, 0)["isr"]],
            LAG_MS / 1000 + 15,
            interval=0.2,
        )
        timing(scenario, "out of the ISR", time.monotonic() - cut)
        acked = load.acked()
        wait_until("acknowledgements with two in sync", lambda: load.acked() > acked + 100, 60)
        network.heal(follower)
        took = wait_in_sync(cluster, topic, 0, 3, 60)
        timing(scenario, "back in the ISR after the heal", took)
    except AssertionError:
        print(cluster.state_report(topic))
        raise
    finally:
        network.heal(follower)
        load.stop()
    hw = end_offset(cluster.bootstrap, topic, 0)
    report = load.history.check({0: read_all(cluster.bootstrap, topic, 0, hw)})
    print_report(scenario, report, {"leader's ISR shrinks": counter(head, "isr_shrinks") - shrinks})
    assert_clean(report)
    assert counter(head, "isr_shrinks") > shrinks
    assert counter(head, "isr_expands") > expands
    # The leader stayed: cutting a follower off must not move leadership.
    assert describe(cluster.bootstrap, topic)[0][0] == leader
    assert_replicas_identical(cluster, topic, 0, 3)
