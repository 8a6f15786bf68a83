"""One consumer-group member (confluent-kafka) as its own process, so tests can stop it
cleanly (SIGTERM: it leaves the group) or kill it (SIGKILL: the session must expire).

usage: group_member.py BOOTSTRAP TOPIC GROUP OUT_FILE [SESSION_TIMEOUT_MS]

Each record is appended to OUT_FILE as "partition offset value" after its offset is
committed, so the file lists exactly what this member processed and committed."""

import signal
import sys

from confluent_kafka import Consumer

bootstrap, topic, group, out_path = sys.argv[1:5]
session = sys.argv[5] if len(sys.argv) > 5 else "6000"
stopping = False


def stop(*_):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)
consumer = Consumer(
    {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": session,
        "heartbeat.interval.ms": "500",
    }
)
assigned = []


def on_assign(_, partitions):
    with open(out_path + ".assign", "a") as f:
        f.write(" ".join(str(p.partition) for p in partitions) + "\n")


consumer.subscribe([topic], on_assign=on_assign)
with open(out_path, "a") as out:
    while not stopping:
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        consumer.commit(message=msg, asynchronous=False)
        out.write(f"{msg.partition()} {msg.offset()} {msg.value().decode()}\n")
        out.flush()
consumer.close()
