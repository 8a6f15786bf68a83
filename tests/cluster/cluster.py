"""A cluster of runnel-broker processes sharing one etcd, on free loopback ports.

Not in conftest.py: with tests/clients and tests/k8s beside this directory,
`from conftest import ...` would find whichever conftest pytest loaded last.

etcd is the 3.6 that scripts/build-etcd.sh builds (once per machine, cached), started as
production runs it (auto-compaction on, fsync on); `RUNNEL_ETCD_BIN` overrides it. Each
broker gets its own data directory under the cluster's, a rack (zone-a/b/c round-robin)
and a short lease TTL so failures are noticed within seconds."""

import base64
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("RUNNEL_BROKER_BIN", ROOT / "target" / "debug" / "runnel-broker"))
KAFKA_VERSION = "4.1.1"
CLUSTER_NAME = "test"
PREFIX = f"/runnel/{CLUSTER_NAME}/"
TTL_MS = 3000
RACKS = ("zone-a", "zone-b", "zone-c")
# Pass --admin.listener (the gRPC admin service other brokers forward to)? None: when the
# binary's --help lists the key; True/False force it on or off. (Off only for a binary
# without the key: with it, every broker would bind its default localhost:9096.)
ADMIN_LISTENER = None
# Pass --console.listener (the web console, one port per broker)? None: when the binary's
# --help lists the key (the console is on by default, and every broker would bind its
# default localhost:9097); True/False force it on or off.
CONSOLE_LISTENER = None


# (test, what, seconds): every timing the tests measured, for the terminal summary.
TIMINGS = []


def timing(test, what, seconds):
    TIMINGS.append((test, what, seconds))
    print(f"{test}: {what}: {seconds:.2f} s")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def etcd_binary():
    if os.environ.get("RUNNEL_ETCD_BIN"):
        return Path(os.environ["RUNNEL_ETCD_BIN"])
    # Builds etcd when it is missing (cached per machine): CI must never skip for want of it.
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-etcd.sh")], capture_output=True, text=True, timeout=1800
    )
    if out.returncode != 0:
        raise RuntimeError(f"scripts/build-etcd.sh failed: {out.stderr[-2000:]}")
    return Path(out.stdout.strip().splitlines()[-1]) / "etcd"


def admin_listener_supported():
    if ADMIN_LISTENER is not None:
        return ADMIN_LISTENER
    out = subprocess.run([str(BINARY), "--help"], capture_output=True, text=True, timeout=30)
    return "admin.listener" in out.stdout + out.stderr


def console_listener_supported():
    if CONSOLE_LISTENER is not None:
        return CONSOLE_LISTENER
    out = subprocess.run([str(BINARY), "--help"], capture_output=True, text=True, timeout=30)
    return "console.listener" in out.stdout + out.stderr


def http_get(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def wait_until(what, condition, timeout, interval=0.05):
    """Polls `condition` until it returns something truthy; returns (value, seconds taken)."""
    started = time.monotonic()
    deadline = started + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value, time.monotonic() - started
        except Exception as e:  # noqa: BLE001 - a condition may fail while things settle
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last_error!r})")


class Etcd:
    def __init__(self, directory, client_port=None, peer_port=None, host="127.0.0.1"):
        self.binary = etcd_binary()
        self.host = host
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.endpoint = f"http://{host}:{self.client_port}"
        self.process = None
        self.start()

    def start(self):
        peer = f"http://{self.host}:{self.peer_port}"
        log = open(self.dir / "etcd.log", "a")
        self.process = subprocess.Popen(
            [
                str(self.binary),
                "--name=runnel",
                f"--data-dir={self.dir / 'data'}",
                f"--listen-client-urls={self.endpoint}",
                f"--advertise-client-urls={self.endpoint}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=runnel={peer}",
                "--auto-compaction-mode=revision",
                "--auto-compaction-retention=1000",
                "--log-level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        wait_until("etcd /health", self.healthy, 30)

    def healthy(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"etcd exited with {self.process.returncode}; log: {self.dir / 'etcd.log'}")
        try:
            return '"health":"true"' in http_get(f"{self.endpoint}/health")[1]
        except OSError:
            return False

    def stop(self):
        """SIGTERM, as an operator's restart would."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def get(self, key):
        """The key's record (create_revision, mod_revision, lease as ints; value decoded),
        through etcd's JSON gateway, or None."""
        body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
        request = urllib.request.Request(f"{self.endpoint}/v3/kv/range", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=5) as r:
            answer = json.loads(r.read())
        kvs = answer.get("kvs") or []
        if not kvs:
            return None
        kv = kvs[0]
        return {
            "create_revision": int(kv.get("create_revision", 0)),
            "mod_revision": int(kv.get("mod_revision", 0)),
            "lease": int(kv.get("lease", 0)),
            "value": base64.b64decode(kv.get("value", "")).decode(errors="replace"),
        }

    def broker_epoch(self, broker_id):
        """The broker epoch: the create revision of brokers/<id> (None when unregistered)."""
        kv = self.get(f"{PREFIX}brokers/{broker_id}")
        return kv and kv["create_revision"]

    def partition(self, topic, index):
        """The partition record (replicas, leader, leader_epoch, isr, partition_epoch)."""
        kv = self.get(f"{PREFIX}partitions/{topic}/{index}")
        return kv and json.loads(kv["value"])

    def controller(self):
        """(controller broker id, controller epoch) from the election key, or None."""
        kv = self.get(f"{PREFIX}controller")
        return kv and (int(json.loads(kv["value"])), kv["create_revision"])


class ClusterBroker:
    def __init__(
        self, broker_id, directory, etcd_endpoint, rack, admin, extra_args=(), host="127.0.0.1", launcher=(), console=False
    ):
        """`host`: the address every listener binds; `launcher`: a command prefix the
        broker runs under (`ip netns exec <ns>` puts it in a network namespace);
        `console`: give the web console a port of its own (console_url)."""
        self.id = broker_id
        self.host = host
        self.launcher = list(launcher)
        self.dir = Path(directory)
        self.data = self.dir / "data"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rack = rack
        self.etcd_endpoint = etcd_endpoint
        self.kafka_port = free_port()
        self.http_port = free_port()
        self.admin_port = free_port() if admin else None
        self.console_port = free_port() if console else None
        self.bootstrap = f"{host}:{self.kafka_port}"
        self.process = None
        # A function of the broker (its id and ports are set by now) gives it its own.
        self.extra_args = list(extra_args(self) if callable(extra_args) else extra_args)

    @property
    def admin_endpoint(self):
        return self.admin_port and f"{self.host}:{self.admin_port}"

    @property
    def console_url(self):
        """The web console's base URL (None when the binary has no console)."""
        return self.console_port and f"http://{self.host}:{self.console_port}"

    def args(self):
        args = [
            *self.launcher,
            str(BINARY),
            f"--broker.id={self.id}",
            f"--cluster.name={CLUSTER_NAME}",
            f"--etcd.endpoints={self.etcd_endpoint}",
            f"--metadata.lease.ttl.ms={TTL_MS}",
            f"--listeners=PLAINTEXT://{self.host}:{self.kafka_port}",
            f"--http.listener={self.host}:{self.http_port}",
            f"--log.dirs={self.data}",
            f"--broker.rack={self.rack}",
        ]
        if self.admin_port:
            args.append(f"--admin.listener={self.host}:{self.admin_port}")
        if self.console_port:
            args.append(f"--console.listener={self.host}:{self.console_port}")
        return args + self.extra_args

    def start(self, wait=True):
        """Starts (or restarts, on the same data directory and ports) the broker."""
        log = open(self.dir / "broker.log", "a")
        # The broker reads RUNNEL_<KEY> variables as configuration; the test run's own
        # (RUNNEL_CACHE, RUNNEL_ETCD_BIN, RUNNEL_FULL, ...) must not configure it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNEL_")}
        self.process = subprocess.Popen(
            self.args(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=env
        )
        log.close()
        self.started = time.monotonic()
        if wait:
            return self.wait_ready()
        return None

    def ready(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"broker {self.id} exited with {self.process.returncode}; log: {self.log_path}")
        try:
            return http_get(f"http://{self.host}:{self.http_port}/readyz", timeout=1)[0] == 200
        except OSError:
            return False

    def wait_ready(self, timeout=30):
        _, took = wait_until(f"broker {self.id} /readyz", self.ready, timeout)
        return took

    @property
    def log_path(self):
        return self.dir / "broker.log"

    def log_text(self):
        """The broker's log without terminal colours."""
        return re.sub(r"\x1b\[[0-9;]*m", "", self.log_path.read_text(errors="replace"))

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def kill(self):
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self):
        """SIGTERM; returns the exit code."""
        if not self.alive():
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def pause(self):
        self.process.send_signal(signal.SIGSTOP)

    def resume(self):
        self.process.send_signal(signal.SIGCONT)

    def metrics(self):
        return http_get(f"http://{self.host}:{self.http_port}/metrics", timeout=5)[1]

    def metric(self, name):
        """The value of the series whose name and labels are exactly `name` (absent
        labelled series count 0; an absent unlabelled one is a misspelt name)."""
        for line in self.metrics().splitlines():
            key, _, value = line.rpartition(" ")
            if key == name:
                return float(value)
        assert "{" in name, f"metric {name} is not exported"
        return 0.0

    def leader_count(self):
        return int(self.metric("kafka_server_replicamanager_leader_count"))


class Cluster:
    """One etcd and `size` brokers (ids 0..size-1) under one directory; `extra_args` are
    given to every broker (a function of the ClusterBroker gives each its own). Everything
    is on loopback unless a `network` (netcut.Network) gives etcd and each broker an
    address and a network namespace of their own."""

    def __init__(self, size=3, directory=None, extra_args=(), network=None):
        self.dir = Path(directory or tempfile.mkdtemp(prefix="runnel-cluster-"))
        self.etcd = Etcd(self.dir / "etcd", host=network.etcd_host if network else "127.0.0.1")
        admin = admin_listener_supported()
        console = console_listener_supported()
        self.brokers = [
            ClusterBroker(
                i,
                self.dir / f"broker-{i}",
                self.etcd.endpoint,
                RACKS[i % len(RACKS)],
                admin,
                extra_args,
                host=network.broker_host(i) if network else "127.0.0.1",
                launcher=network.launcher(i) if network else (),
                console=console,
            )
            for i in range(size)
        ]
        started = time.monotonic()
        try:
            for b in self.brokers:
                b.start(wait=False)
            for b in self.brokers:
                b.wait_ready()
            self.wait_controller()
            # Ready means registered; the others may not have seen the last one yet: the
            # controller would place a topic created at once on fewer brokers, and a client
            # bootstrapping from a broker still behind keeps a broker list without it until
            # its next metadata refresh (minutes, in kafka-python).
            for b in self.brokers:
                wait_until(
                    f"broker {b.id}'s metadata to list all {size} brokers",
                    lambda b=b: self.brokers_seen_by(b.id) == size,
                    30,
                    interval=0.1,
                )
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        print(f"cluster of {size} ready in {self.startup_seconds:.2f} s under {self.dir}")
        for b in self.brokers:
            print(
                f"  broker {b.id} ({b.rack}): kafka {b.bootstrap}, http {b.host}:{b.http_port}, "
                f"admin {b.admin_endpoint}, console {b.console_url}"
            )

    @property
    def bootstrap(self):
        return ",".join(b.bootstrap for b in self.brokers if b.alive())

    def broker(self, broker_id):
        return self.brokers[broker_id]

    def controller_id(self):
        found = self.etcd.controller()
        return found[0] if found else None

    def wait_controller(self, exclude=(), timeout=None):
        """Waits until a registered broker not in `exclude` holds the election key; returns
        (controller id, seconds taken)."""

        def elected():
            found = self.etcd.controller()
            # A tuple: broker 0 is a falsy id.
            return found and found[0] not in exclude and (found[0],)

        (controller,), took = wait_until("a controller", elected, timeout or 30)
        return controller, took

    def brokers_seen_by(self, broker_id):
        """How many brokers broker `broker_id`'s Metadata lists."""
        from kafka.admin import KafkaAdminClient

        a = KafkaAdminClient(bootstrap_servers=self.brokers[broker_id].bootstrap, request_timeout_ms=5000)
        try:
            return len(a.describe_cluster()["brokers"])
        finally:
            a.close()

    def state_report(self, topic=None):
        """What each broker says of itself (a failed wait prints it): the partition record
        in etcd, and per broker its replication, flush, lease and controller counters,
        `topic`'s gauges and the last lines of its log that name `topic`, its lease or the
        ISR. Every read is best effort: a wedged broker shows as unreachable."""
        lines = []
        if topic:
            try:
                lines.append(f"etcd {topic}-0: {self.etcd.partition(topic, 0)}")
            except Exception as e:  # noqa: BLE001 - a report must not fail
                lines.append(f"etcd {topic}-0: unreadable ({e!r})")
        wanted = re.compile(
            r"^(runnel_replication_|runnel_replica_|runnel_flush_|runnel_etcd_lease|runnel_controller_leader_changes|runnel_log_offline)"
        )
        for b in self.brokers:
            lines.append(f"-- broker {b.id}: {'alive' if b.alive() else 'not running'}")
            try:
                for line in b.metrics().splitlines():
                    if line.startswith("#"):
                        continue
                    if wanted.match(line) or (topic and f'topic="{topic}"' in line):
                        lines.append(f"   {line}")
            except Exception as e:  # noqa: BLE001
                lines.append(f"   metrics unreachable: {e!r}")
            try:
                named = [
                    line
                    for line in b.log_text().splitlines()
                    if (topic and topic in line) or "lease" in line or "ISR" in line or "WARN" in line or "ERROR" in line
                ]
                lines.extend(f"   {line[:300]}" for line in named[-25:])
            except OSError as e:
                lines.append(f"   log unreadable: {e!r}")
        return "\n".join(lines)

    def non_controller(self):
        controller = self.controller_id()
        return next(b for b in self.brokers if b.id != controller and b.alive())

    def stop(self):
        codes = {}
        for b in self.brokers:
            if b.process is not None and b.alive():
                try:
                    b.resume()
                    codes[b.id] = b.stop()
                except subprocess.TimeoutExpired:
                    b.kill()
                    codes[b.id] = "killed after 60 s"
        self.etcd.stop()
        return codes
