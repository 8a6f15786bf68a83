"""Kafka clients for the operator's tests, run inside the test bed's network namespace
(where the cluster's Service and pod names resolve), each printing one JSON line.

  opload.py load BOOTSTRAP TOPIC        an idempotent acks=all producer until SIGTERM, then
                                        reads the partition back and checks the history
                                        (tests/cluster/history.py): lost, duplicated,
                                        reordered, longest stall
  opload.py roundtrip BOOTSTRAP TOPIC N  produces N records, consumes them back
  opload.py metadata BOOTSTRAP           the brokers Metadata lists, and each topic's
                                         partitions (leader, replicas, isr)
"""

import json
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))

from history import History  # noqa: E402
from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402
from kafka.errors import TopicAlreadyExistsError  # noqa: E402


def ensure_topic(bootstrap, topic, partitions=1):
    """Operator-managed clusters do not auto-create topics: create it (the cluster's
    default replication factor)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic(topic, partitions, -1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def read_back(bootstrap, topic, partition, timeout=60):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, request_timeout_ms=15000)
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    end = consumer.end_offsets([tp])[tp]
    got = []
    deadline = time.monotonic() + timeout
    while (not got or got[-1][0] < end - 1) and end > 0 and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            got.extend((r.offset, r.value.decode()) for r in batch)
    consumer.close()
    return got


def load(bootstrap, topic):
    ensure_topic(bootstrap, topic)
    history = History()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=2,
                             request_timeout_ms=8000, delivery_timeout_ms=120000, retry_backoff_ms=100,
                             metadata_max_age_ms=1000)
    print(json.dumps({"started": True}), flush=True)
    i = 0
    while not stopping.is_set():
        value = f"v{i:07d}"
        op = history.invoke(value, 0)
        try:
            future = producer.send(topic, value.encode(), partition=0)
        except Exception as e:  # a full buffer: the op failed
            history.fail(op, e)
            time.sleep(0.05)
            continue
        future.add_callback(lambda md, op=op: history.ok(op, md.offset))
        future.add_errback(lambda e, op=op: history.fail(op, e))
        i += 1
        if i % 20 == 0:
            time.sleep(0.01)
    producer.flush(timeout=120)
    producer.close(timeout=30)
    report = history.check({0: read_back(bootstrap, topic, 0)})
    report["longest_stall_s"] = round(history.longest_gap(), 2)
    print(json.dumps(report), flush=True)


def roundtrip(bootstrap, topic, n):
    ensure_topic(bootstrap, topic)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=15000)
    for i in range(n):
        producer.send(topic, f"r{i}".encode())
    producer.flush(timeout=60)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=20000)
    values = sorted(r.value.decode() for r in consumer)
    consumer.close()
    print(json.dumps({"produced": n, "consumed": len(values), "distinct": len(set(values))}), flush=True)


def metadata(bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    cluster = admin.describe_cluster()
    topics = admin.describe_topics()
    admin.close()
    print(json.dumps({
        "brokers": sorted((b["broker_id"], b["host"], b["port"]) for b in cluster["brokers"]),
        "controller": cluster["controller_id"],
        "topics": {t.get("name") or t.get("topic"): [
            {"partition": p["partition_index"], "leader": p["leader_id"], "replicas": p["replica_nodes"],
             "isr": p["isr_nodes"]} for p in t["partitions"]] for t in topics},
    }), flush=True)


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "load":
        load(*args)
    elif command == "roundtrip":
        roundtrip(args[0], args[1], int(args[2]))
    elif command == "metadata":
        metadata(args[0])
    else:
        sys.exit(f"unknown command {command}")
