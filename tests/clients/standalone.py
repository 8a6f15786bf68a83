"""A standalone runnel-broker process on free loopback ports, for the real-client tests.

Not in conftest.py: with tests/k8s beside this directory, `from conftest import ...`
would find whichever conftest pytest loaded last."""

import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KAFKA_VERSION = "4.1.1"
BINARY = Path(os.environ.get("RUNNEL_BROKER_BIN", ROOT / "target" / "debug" / "runnel-broker"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, extra=(), kafka_port=None, data_dir=None):
        """`data_dir` restarts on an earlier broker's directory (`Broker.dir`)."""
        if not BINARY.exists():
            raise RuntimeError(f"{BINARY} is missing: run `cargo build` first")
        self.dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="runnel-py-"))
        self.kafka_port = kafka_port or free_port()
        self.http_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.kafka_port}"
        self.log = open(self.dir / "broker.log", "a")
        self.process = subprocess.Popen(
            [
                str(BINARY),
                f"--listeners=PLAINTEXT://127.0.0.1:{self.kafka_port}",
                f"--http.listener=127.0.0.1:{self.http_port}",
                "--admin.listener=127.0.0.1:0",
                "--console.listener=127.0.0.1:0",
                f"--log.dirs={self.dir / 'data'}",
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"broker did not become ready; log: {self.dir / 'broker.log'}")

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def metric(self, name):
        """The value of the metric line whose name and labels are exactly `name`.

        A labelled series appears with its first event (absent means 0); an unlabelled one
        always exists, so its absence is a misspelt or unregistered metric."""
        for line in self.metrics().splitlines():
            key, _, value = line.rpartition(" ")
            if key == name:
                return float(value)
        assert "{" in name, f"metric {name} is not exported"
        return 0.0

    def errors(self, request, error):
        """How many times the broker answered `request` (an API name) with `error` (a Kafka
        error name): proof that a refusal came from the broker, not from the client."""
        return self.metric(f'kafka_network_errors_total{{request="{request}",error="{error}"}}')

    def create_topic(self, name, partitions):
        """Creates a topic through the admin API (librdkafka's AdminClient)."""
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(10)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self.log.close()
        return code
