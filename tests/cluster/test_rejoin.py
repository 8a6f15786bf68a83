"""A broker that lost its lease (SIGSTOP past the TTL) registers again and is ready again
on its own, with nothing else changing in the cluster: no topics here, so no partition
record is rewritten after it re-registers to wake anything up.

Its own cluster: the other module's topics would give the controller partitions to
rewrite, which hides a readiness check that only wakes on metadata changes."""

import time

from cluster import TTL_MS, timing, wait_until

TTL = TTL_MS / 1000
SLACK = 3.0


def test_ready_again_after_losing_the_lease(cluster):
    for cycle in range(3):
        victim = cluster.non_controller()
        epoch_before = cluster.etcd.broker_epoch(victim.id)
        victim.pause()
        try:
            wait_until("its registration to expire", lambda: cluster.etcd.broker_epoch(victim.id) is None, TTL + SLACK)
            time.sleep(0.5)
        finally:
            victim.resume()
        resumed = time.monotonic()
        epoch_after, _ = wait_until("a new registration", lambda: cluster.etcd.broker_epoch(victim.id), TTL + SLACK)
        assert epoch_after > epoch_before
        _, took = wait_until(f"broker {victim.id} ready again (cycle {cycle})", victim.ready, TTL + SLACK)
        timing("rejoin", f"cycle {cycle}: ready again after SIGCONT", time.monotonic() - resumed)
        assert victim.alive()
        assert sorted(b.id for b in cluster.brokers if b.ready()) == [0, 1, 2]
