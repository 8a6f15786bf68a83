"""Admin requests sent to a broker that is not the controller are forwarded to it (over
the gRPC admin service) and answered with the same error codes the controller gives; the
broker that took the request sees the change as soon as it answers (read-your-writes).

Every request here goes to one chosen broker: kafka-python's admin client would send
them to the controller itself (and retry there on NOT_CONTROLLER, which would hide a
broker that does not forward)."""

import time
import uuid

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from cluster import timing

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_CONFIG = 40
NOT_CONTROLLER = 41


class OneBroker:
    """An admin client whose controller requests all go to `node` (no retry elsewhere)."""

    def __init__(self, bootstrap, node):
        self.node = node
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)

        async def to_node(request, get_errors_fn=lambda r: (), raise_errors=True, ignore_errors=()):
            return await self.admin._manager.send(request, node_id=node)

        self.admin._send_request_to_controller = to_node

    def send(self, request):
        async def go():
            return await self.admin._manager.send(request, node_id=self.node)

        return self.admin._manager.run(go)

    def create(self, name, partitions=1, configs=None):
        spec = {"num_partitions": partitions, "replication_factor": 1}
        if configs:
            spec["configs"] = configs
        [t] = self.admin.create_topics({name: spec}, raise_errors=False)["topics"]
        return t["error_code"]

    def delete(self, name):
        [t] = self.admin.delete_topics([name], raise_errors=False)["topics"]
        return t["error_code"]

    def add_partitions(self, name, total):
        response = self.admin.create_partitions({name: total}, raise_errors=False)
        [r] = response.results
        if r.error_code not in (NONE, INVALID_PARTITIONS):
            print(f"CreatePartitions {name} to {total} on broker {self.node}: {r.error_code} {r.error_message}")
        return r.error_code

    def alter_topic(self, name, key, value):
        resource = ConfigResource(ConfigResourceType.TOPIC, name, {key: value})
        request = self.admin._alter_configs_request([resource], incremental=True)
        [r] = self.send(request).responses
        return r.error_code

    def topic_config(self, name, key):
        request = self.admin._describe_configs_request([ConfigResource(ConfigResourceType.TOPIC, name, [key])])
        [r] = self.send(request).results
        assert r.error_code == 0, r
        return {c.name: c.value for c in r.configs}.get(key)

    def metadata(self, name):
        """(topic error code, partition count, leaders) from this broker's Metadata."""
        from kafka.protocol.metadata import MetadataRequest

        topics = [MetadataRequest.MetadataRequestTopic(name=name)]
        response = self.send(MetadataRequest(topics=topics, allow_auto_topic_creation=False))
        [t] = response.topics
        return t.error_code, len(t.partitions), sorted(p.leader_id for p in t.partitions)

    def close(self):
        self.admin.close()


@pytest.fixture(scope="module")
def clients(cluster):
    controller, _ = cluster.wait_controller()
    other = cluster.non_controller()
    assert other.id != controller, (other.id, controller)
    c = OneBroker(cluster.bootstrap, controller)
    o = OneBroker(cluster.bootstrap, other.id)
    yield c, o
    c.close()
    o.close()


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_create_topics_forwarded(clients):
    on_controller, forwarded = clients
    topic = name("fwd")
    started = time.monotonic()
    code = forwarded.create(topic, 3)
    timing("forwarding", "CreateTopics through a non-controller", time.monotonic() - started)
    assert code == NONE
    # Read-your-writes: the broker that answered already knows the topic and its leaders.
    assert forwarded.metadata(topic) == (NONE, 3, [0, 1, 2])

    assert (forwarded.create(topic), on_controller.create(topic)) == (TOPIC_ALREADY_EXISTS, TOPIC_ALREADY_EXISTS)
    zero = name("zero")
    assert (forwarded.create(zero, 0), on_controller.create(zero, 0)) == (INVALID_PARTITIONS, INVALID_PARTITIONS)
    bad = name("bad")
    invalid = {"retention.ms": "not-a-number"}
    assert (forwarded.create(bad, 1, invalid), on_controller.create(bad, 1, invalid)) == (INVALID_CONFIG, INVALID_CONFIG)
    assert forwarded.metadata(bad)[0] == UNKNOWN_TOPIC_OR_PARTITION


def test_create_partitions_forwarded(clients):
    on_controller, forwarded = clients
    topic = name("grow")
    assert on_controller.create(topic, 2) == NONE
    # Back to back: each request must see the previous one's partitions, on the broker
    # that forwarded it and on the controller (whose cache may lag its own write).
    for total in range(3, 9):
        assert forwarded.add_partitions(topic, total) == NONE
        assert forwarded.metadata(topic)[:2] == (NONE, total)
        assert (forwarded.add_partitions(topic, total - 1), on_controller.add_partitions(topic, total - 1)) == (
            INVALID_PARTITIONS,
            INVALID_PARTITIONS,
        )
        assert forwarded.add_partitions(topic, total) == INVALID_PARTITIONS


def test_delete_topics_forwarded(clients):
    on_controller, forwarded = clients
    topic = name("del")
    assert on_controller.create(topic, 2) == NONE
    started = time.monotonic()
    code = forwarded.delete(topic)
    timing("forwarding", "DeleteTopics through a non-controller", time.monotonic() - started)
    assert code == NONE
    assert forwarded.metadata(topic)[0] == UNKNOWN_TOPIC_OR_PARTITION
    missing = name("missing")
    assert (forwarded.delete(missing), on_controller.delete(missing)) == (
        UNKNOWN_TOPIC_OR_PARTITION,
        UNKNOWN_TOPIC_OR_PARTITION,
    )


def test_incremental_alter_configs_forwarded(clients):
    on_controller, forwarded = clients
    topic = name("cfg")
    assert on_controller.create(topic, 1) == NONE
    started = time.monotonic()
    code = forwarded.alter_topic(topic, "retention.ms", "123456")
    timing("forwarding", "IncrementalAlterConfigs through a non-controller", time.monotonic() - started)
    assert code == NONE
    assert forwarded.topic_config(topic, "retention.ms") == "123456"
    assert (
        forwarded.alter_topic(topic, "retention.ms", "soon"),
        on_controller.alter_topic(topic, "retention.ms", "soon"),
    ) == (INVALID_CONFIG, INVALID_CONFIG)
    assert forwarded.topic_config(topic, "retention.ms") == "123456"


def test_the_non_controller_really_forwarded(cluster, clients):
    # Guards the tests above against passing vacuously on the controller itself.
    _, forwarded = clients
    [broker] = [b for b in cluster.brokers if b.id == forwarded.node]
    assert broker.metric("runnel_admin_forwarded_total") >= 10
