"""Topic resources end to end in the test bed: the operator from the chart (resync every
5 s, so drift shows within a test's patience), examples/cluster.yaml's 3 brokers, and
Topics created, adopted (from topics made with Apache Kafka's kafka-topics from Maven),
refused, duplicated, drifted and deleted; their status compared with what a Kafka
client's Metadata says, through a broker kill, and the status writes a killed broker
causes counted at the apiserver."""

import json
import os
import signal
import subprocess
import time

import pytest

from bedtools import wait_for
from operatortools import (
    ROOT,
    apply_cluster,
    bootstrap,
    client,
    condition,
    container_pid,
    install_operator,
    is_true,
    uninstall_operator,
)

BROKERS = "app.kubernetes.io/instance=demo,app.kubernetes.io/component=broker"
TOPICS_TOOL = "org.apache.kafka.tools.TopicCommand"
CONFIGS_TOOL = "kafka.admin.ConfigCommand"


@pytest.fixture(scope="module")
def operator(bed):
    install_operator(bed, "topicResyncSeconds=5")
    yield
    uninstall_operator(bed)


@pytest.fixture(scope="module")
def demo(bed, ns, operator):
    return apply_cluster(ns)


@pytest.fixture(scope="module")
def kafka_jars():
    out = subprocess.run([str(ROOT / "scripts" / "kafka-jars.sh")], capture_output=True, text=True, check=True,
                         timeout=900)
    return out.stdout.strip().splitlines()[-1] + "/libs"


@pytest.fixture(scope="module")
def tool(bed, ns, kafka_jars):
    """Runs one of Apache Kafka's command-line tools against the cluster, in the bed."""
    def run(main, *args):
        out = bed.run("java", "-cp", f"{kafka_jars}/*", main, "--bootstrap-server", bootstrap(ns), *args,
                      check=False, timeout=120)
        assert out.returncode == 0, f"{main} {args}: {out.stdout}\n{out.stderr[-3000:]}"
        return out.stdout
    return run


def topic_manifest(name, partitions, rf=3, **spec):
    body = {"clusterRef": "demo", "partitions": partitions, "replicationFactor": rf, **spec}
    return json.dumps({"apiVersion": "runnel.dev/v1alpha1", "kind": "Topic", "metadata": {"name": name},
                       "spec": body})


def ready_topic(ns, name, timeout=60, check=lambda t: True):
    return wait_for(lambda: (t := ns.get("topic", name)) and is_true(t, "Ready") and check(t) and t,
                    timeout=timeout, what=f"Topic {name} Ready")


def live_config(tool, topic):
    """The topic's dynamic config overrides, as kafka-configs describes them."""
    out = tool(CONFIGS_TOOL, "--entity-type", "topics", "--entity-name", topic, "--describe")
    pairs = {}
    for line in out.splitlines():
        line = line.strip()
        if "=" in line and not line.startswith("Dynamic") and not line.startswith("All"):
            key, value = line.split(" ", 1)[0].split("=", 1)
            pairs[key] = value
    return pairs


def as_metadata(status):
    return {p["partition"]: (p["leader"], p["replicas"], sorted(p["isr"])) for p in status["partitionStates"]}


def from_client(meta, topic):
    return {p["partition"]: (p["leader"], p["replicas"], sorted(p["isr"])) for p in meta["topics"].get(topic, [])}


def test_a_topic_becomes_ready_and_its_status_is_what_clients_see(bed, ns, demo):
    ns.apply(topic_manifest("orders", 6))
    topic = ready_topic(ns, "orders", check=lambda t: t["status"]["partitions"] == 6)
    assert topic["status"]["replicationFactor"] == 3 and topic["status"]["topicId"]
    assert "runnel.dev/topic" in topic["metadata"]["finalizers"]

    def agree():
        status = ns.get("topic", "orders")["status"]
        meta = client(bed, "metadata", bootstrap(ns))
        return as_metadata(status) == from_client(meta, "orders") and status
    status = wait_for(agree, timeout=30, what="Topic status equal to the clients' Metadata")
    assert len(status["partitionStates"]) == 6
    assert status["leadersOn"] == ",".join(str(b) for b in sorted({p["leader"] for p in status["partitionStates"]}))
    table = ns.kubectl("get", "topics")
    print(table)
    for column in ("CLUSTER", "PARTITIONS", "RF", "UNDER-REPLICATED", "LEADERS-ON", "READY"):
        assert column in table
    assert any(e.get("reason") == "Created" for e in ns.events("orders"))


def test_a_killed_broker_shows_in_the_topic_status_then_heals(bed, ns, demo):
    before = ns.get("topic", "orders")["status"]
    # The broker leading partition 0, so at least one leader must move.
    victim = before["partitionStates"][0]["leader"]
    started = time.monotonic()
    # Stopped before it is killed: a killed broker's container restarts at once, registers
    # the moment its old lease expires and is back in every ISR within a second, which
    # the watch stream's one-second debounce can fold into a status that never showed
    # the loss. Stopped, it stays lost (its lease expires, the controller moves its
    # leaderships) until the status shows it; then the kill restarts it.
    pid = container_pid(ns.pod(f"demo-{victim}"), "broker")
    os.kill(pid, signal.SIGSTOP)

    def moved():
        s = ns.get("topic", "orders")["status"]
        return (s["underReplicatedPartitions"] > 0
                and all(p["leader"] != victim and victim not in p["isr"] for p in s["partitionStates"]) and s)
    try:
        status = wait_for(moved, timeout=60, what="new leaders and the under-replicated count in status", interval=0.2)
    finally:
        os.kill(pid, signal.SIGKILL)
    took = time.monotonic() - started
    print(f"Topic status showed the broker's loss {took:.1f} s after it stopped: "
          f"{status['underReplicatedPartitions']} under-replicated, leaders on {status['leadersOn']}")
    # Detection is the broker's lease (the example's metadata.lease.ttl.ms) plus the
    # watch stream's one-second debounce.
    assert took < 30
    wait_for(lambda: (t := ns.get("topic", "orders")) and t["status"]["underReplicatedPartitions"] == 0
             and condition(t, "Degraded")["status"] == "False", timeout=120, what="healthy again")
    print(f"healthy again {time.monotonic() - started - took:.1f} s after kill -9")
    assert any(e.get("reason") == "LeadersChanged" for e in ns.events("orders"))


def test_an_existing_topic_is_adopted_with_its_config_recorded(bed, ns, demo, tool):
    tool(TOPICS_TOOL, "--create", "--topic", "legacy", "--partitions", "3", "--replication-factor", "3",
         "--config", "retention.ms=3600000")
    ns.apply(topic_manifest("legacy", 4))
    topic = ready_topic(ns, "legacy", check=lambda t: t["status"]["partitions"] == 4)
    assert topic["status"]["adoptedConfig"] == {"retention.ms": "3600000"}
    # An override the spec does not name is left alone.
    assert live_config(tool, "legacy").get("retention.ms") == "3600000"
    assert any(e.get("reason") == "Adopted" for e in ns.events("legacy"))


def test_a_second_topic_for_the_same_name_gets_conflict(bed, ns, demo):
    ns.apply(topic_manifest("orders-again", 6, topicName="orders"))
    dup = wait_for(lambda: (t := ns.get("topic", "orders-again")) and is_true(t, "Conflict") and t, timeout=30,
                   what="Conflict")
    print("Conflict:", condition(dup, "Conflict")["message"])
    assert "orders" in condition(dup, "Conflict")["message"]
    assert is_true(ns.get("topic", "orders"), "Ready")
    # Deleting the duplicate (deletionPolicy Delete) must not delete the topic it never owned.
    ns.kubectl("delete", "topic", "orders-again", "--wait=true", "--timeout=60s")
    assert "orders" in client(bed, "metadata", bootstrap(ns))["topics"]


def test_what_cannot_be_done_is_refused(bed, ns, demo, tool):
    # Fewer partitions: the apiserver refuses the edit (CEL)...
    out = bed.kubectl_run("-n", ns.name, "patch", "topic", "orders", "--type=merge", "-p",
                          json.dumps({"spec": {"partitions": 2}}))
    assert out.returncode != 0 and "partitions can only increase" in out.stderr, out.stderr
    # Naming another topic later (topicName was unset) would switch topics: refused too.
    out = bed.kubectl_run("-n", ns.name, "patch", "topic", "orders", "--type=merge", "-p",
                          json.dumps({"spec": {"topicName": "elsewhere"}}))
    assert out.returncode != 0 and "topicName is immutable" in out.stderr, out.stderr
    # ...and a Topic adopting a topic that has more, or another replication factor, is
    # refused with a condition and an Event; the topic is left as it is.
    tool(TOPICS_TOOL, "--create", "--topic", "wide", "--partitions", "6", "--replication-factor", "2")
    ns.apply(topic_manifest("wide", 3, rf=3))
    topic = wait_for(lambda: (t := ns.get("topic", "wide")) and is_true(t, "Refused") and t, timeout=60,
                     what="Refused")
    message = condition(topic, "Refused")["message"]
    print("Refused:", message)
    assert "PartitionDecrease" in condition(topic, "Refused")["reason"]
    assert "ReplicationFactorChange" in condition(topic, "Refused")["reason"]
    assert len(client(bed, "metadata", bootstrap(ns))["topics"]["wide"]) == 6
    assert any(e.get("reason") == "Refused" for e in ns.events("wide"))
    # An invalid config value is refused by the brokers' own rules.
    ns.apply(topic_manifest("badconfig", 1, config={"retention.ms": "soon"}))
    topic = wait_for(lambda: (t := ns.get("topic", "badconfig")) and is_true(t, "Refused") and t, timeout=60,
                     what="Refused for an invalid config")
    print("Refused:", condition(topic, "Refused")["message"])


def test_config_drift_is_reset_or_reported_as_the_policy_says(bed, ns, demo, tool):
    for name, policy in (("drift-enforce", "Enforce"), ("drift-report", "Report")):
        ns.apply(topic_manifest(name, 1, config={"retention.ms": "600000"}, driftPolicy=policy))
        ready_topic(ns, name)
        assert live_config(tool, name)["retention.ms"] == "600000"
        tool(CONFIGS_TOOL, "--entity-type", "topics", "--entity-name", name, "--alter", "--add-config",
             "retention.ms=5000")
    # Enforce: set back within the resync period (5 s here).
    wait_for(lambda: live_config(tool, "drift-enforce").get("retention.ms") == "600000", timeout=30,
             what="the Enforce topic's config reset")
    # Report: listed in status, left as it is.
    topic = wait_for(lambda: (t := ns.get("topic", "drift-report")) and t["status"].get("configDrift") and t,
                     timeout=30, what="drift reported")
    assert topic["status"]["configDrift"] == [{"key": "retention.ms", "spec": "600000", "live": "5000"}]
    assert live_config(tool, "drift-report")["retention.ms"] == "5000"
    # A spec edit is applied under Report too, and the drift entry goes.
    ns.kubectl("patch", "topic", "drift-report", "--type=merge", "-p",
               json.dumps({"spec": {"config": {"retention.ms": "700000"}}}))
    wait_for(lambda: live_config(tool, "drift-report").get("retention.ms") == "700000", timeout=30,
             what="the spec edit applied")
    wait_for(lambda: not ns.get("topic", "drift-report")["status"].get("configDrift"), timeout=30,
             what="no drift left")


def test_deletion_follows_the_deletion_policy(bed, ns, demo):
    ns.apply(topic_manifest("doomed", 1))
    ns.apply(topic_manifest("kept", 1, deletionPolicy="Retain"))
    ready_topic(ns, "doomed")
    ready_topic(ns, "kept")
    ns.kubectl("delete", "topic", "doomed", "kept", "--wait=true", "--timeout=60s")
    topics = wait_for(lambda: (m := client(bed, "metadata", bootstrap(ns))["topics"]) and "doomed" not in m and m,
                      timeout=30, what="topic doomed deleted")
    assert "kept" in topics
    # A Topic whose cluster does not exist says so, and its deletion never hangs.
    ns.apply(topic_manifest("stray", 1).replace('"clusterRef": "demo"', '"clusterRef": "nosuch"'))
    stray = wait_for(lambda: (t := ns.get("topic", "stray")) and condition(t, "Ready")
                     and condition(t, "Ready")["reason"] == "ClusterNotFound" and t, timeout=30,
                     what="ClusterNotFound")
    print("stray:", condition(stray, "Ready")["message"])
    ns.kubectl("delete", "topic", "stray", "--wait=true", "--timeout=30s")


def status_patches(bed):
    """PATCH requests on topics/status the apiserver has served (its own counter)."""
    total = 0
    for line in bed.kubectl("get", "--raw", "/metrics").splitlines():
        if (line.startswith("apiserver_request_total{") and 'resource="topics"' in line
                and 'subresource="status"' in line and 'verb="PATCH"' in line):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_a_killed_broker_with_300_replicas_costs_bounded_status_writes(bed, ns, demo):
    names = [f"bulk-{i}" for i in range(3)]
    for name in names:
        ns.apply(topic_manifest(name, 100))
    for name in names:
        ready_topic(ns, name, timeout=120, check=lambda t: t["status"]["partitions"] == 100
                    and t["status"]["underReplicatedPartitions"] == 0)
    victim = 2
    replicas = sum(victim in p["replicas"] for n in names for p in client(bed, "metadata", bootstrap(ns))["topics"][n])
    assert replicas == 300
    time.sleep(3)
    before = status_patches(bed)
    started = time.monotonic()
    os.kill(container_pid(ns.pod(f"demo-{victim}"), "broker"), signal.SIGKILL)
    # (The restarted broker may rejoin some ISRs before others leave: any count shows it.)
    wait_for(lambda: all(ns.get("topic", n)["status"]["underReplicatedPartitions"] > 0 for n in names),
             timeout=60, what="every bulk Topic under-replicated in status")
    wait_for(lambda: all((t := ns.get("topic", n))["status"]["underReplicatedPartitions"] == 0
                         and condition(t, "Degraded")["status"] == "False" for n in names),
             timeout=180, what="healthy again")
    elapsed = time.monotonic() - started
    writes = status_patches(bed) - before
    # At most one write per Topic per debounce window (1 s), for every Topic of the
    # cluster (orders and the others as well as the bulk ones).
    topics = len(json.loads(ns.kubectl("get", "topics", "-o", "json"))["items"])
    bound = topics * (int(elapsed) + 2)
    print(f"a broker with {replicas} replicas killed and back in {elapsed:.1f} s: {writes} Topic status writes "
          f"for {topics} Topics (bound {bound}: one per Topic per second)")
    assert 0 < writes <= bound
