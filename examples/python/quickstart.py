"""Produce and consume with kafka-python against a local Runnel broker.

    ./scripts/run-broker.sh                 # in one terminal
    python3 examples/python/quickstart.py   # in another
"""

import json

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

BOOTSTRAP = "localhost:9092"
TOPIC = "quickstart"

# kafka-python 3's defaults: idempotent, acks=all.
producer = KafkaProducer(
    bootstrap_servers=BOOTSTRAP,
    compression_type="zstd",
    value_serializer=lambda v: json.dumps(v).encode(),
)
for i in range(10):
    metadata = producer.send(TOPIC, key=f"user-{i % 3}".encode(), value={"n": i}).get(timeout=10)
    print(f"produced n={i} to partition {metadata.partition} at offset {metadata.offset}")
producer.close()

consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, consumer_timeout_ms=3000)
partition = TopicPartition(TOPIC, 0)
consumer.assign([partition])
consumer.seek_to_beginning(partition)
for message in consumer:
    print(f"consumed offset {message.offset}: key={message.key!r} value={json.loads(message.value)}")
consumer.close()
