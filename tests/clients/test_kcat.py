"""kcat (Debian, librdkafka 2.0: an old client must work too) against a standalone broker."""

import json
import shutil
import subprocess
import zlib
from collections import Counter

import pytest

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")


def kcat(broker, *args, stdin=None):
    result = subprocess.run(
        ["kcat", "-b", broker.bootstrap, *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def read(broker, topic, *extra):
    out = kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%p %o %k %s\n", *extra)
    rows = []
    for line in out.splitlines():
        partition, offset, rest = line.split(" ", 2)
        key, _, value = rest.partition(" ")
        rows.append((int(partition), int(offset), key, value))
    return rows


def test_produce_and_consume_in_order_from_offset_zero(broker, topic):
    kcat(broker, "-P", "-t", topic, stdin="".join(f"line-{i}\n" for i in range(100)).encode())
    rows = read(broker, topic)
    assert [r[1] for r in rows] == list(range(100))
    assert [r[3] for r in rows] == [f"line-{i}" for i in range(100)]


def test_keyed_records_stay_on_one_partition_of_two(broker, topic):
    topic2 = topic + "-two"
    broker.create_topic(topic2, 2)
    lines = "".join(f"k{i % 8}:v{i}\n" for i in range(80)).encode()
    kcat(broker, "-P", "-t", topic2, "-K:", stdin=lines)
    rows = read(broker, topic2)
    # librdkafka's default partitioner (consistent_random): CRC-32 of the key, modulo the
    # partition count (k0-k3 go to 1, k4-k7 to 0).
    expected = {f"k{k}": zlib.crc32(f"k{k}".encode()) % 2 for k in range(8)}
    assert set(expected.values()) == {0, 1}
    assert Counter((key, partition) for partition, _, key, _ in rows) == {(k, p): 10 for k, p in expected.items()}
    assert sorted(r[3] for r in rows) == sorted(f"v{i}" for i in range(80))


def test_json_values_round_trip(broker, topic):
    docs = [{"n": i, "s": "x" * i} for i in range(20)]
    kcat(broker, "-P", "-t", topic, stdin="".join(json.dumps(d) + "\n" for d in docs).encode())
    assert [json.loads(r[3]) for r in read(broker, topic)] == docs


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_produce_round_trips_and_is_stored_compressed(broker, topic, codec):
    counter = f'runnel_produce_batches_total{{codec="{codec}"}}'
    before = broker.metric(counter)
    kcat(broker, "-P", "-t", topic, "-z", codec, stdin="".join(f"{codec}-{i}\n" for i in range(50)).encode())
    assert [r[3] for r in read(broker, topic)] == [f"{codec}-{i}" for i in range(50)]
    assert broker.metric(counter) > before


def test_metadata_listing(broker, topic):
    kcat(broker, "-P", "-t", topic, stdin=b"x\n")
    out = kcat(broker, "-L", "-t", topic)
    assert "1 brokers:" in out
    assert f'topic "{topic}" with 1 partitions' in out
    assert "leader 0, replicas: 0, isrs: 0" in out
