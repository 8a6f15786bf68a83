"""Where a consumer group lives: its coordinator is the leader of the __consumer_offsets
partition Kafka's own function picks (abs(String.hashCode) % partitions)."""

from kafka.admin import KafkaAdminClient

OFFSETS_PARTITIONS = 50


def java_string_hash(text):
    h = 0
    for unit in text.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def offsets_partition(group):
    return abs(java_string_hash(group)) % OFFSETS_PARTITIONS


def coordinator(bootstrap, group):
    """The broker id leading the group's offsets partition, from Metadata (-1: none)."""
    a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        [t] = a.describe_topics(["__consumer_offsets"])
    finally:
        a.close()
    index = offsets_partition(group)
    return next(p["leader_id"] for p in t["partitions"] if p["partition_index"] == index)


def committed(bootstrap, group, topic, partition=0):
    """The group's committed offset for the partition (-1: none), from its coordinator."""
    a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        offsets = a.list_group_offsets(group).get(group, {})
    finally:
        a.close()
    for tp, meta in offsets.items():
        if tp.topic == topic and tp.partition == partition:
            return meta.offset
    return -1
