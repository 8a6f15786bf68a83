#!/usr/bin/env python3
"""Three-broker clusters on this machine: Runnel (on one etcd 3.6) beside Apache Kafka
(three KRaft nodes, each broker and controller), replication factor 3,
min.insync.replicas=2, acks=all, under the same loads from the same generators as
bench/bench.py (bench/java/Load.java, 1 KiB records), over loopback.

Every broker of a cluster shares the machine's two cores with the other two and with the
generator: these figures compare the two systems doing three brokers' work on one
machine, not what three machines would do.

Per cluster kind and repetition (kinds interleaved, the first rotating per repetition),
each on fresh processes and data directories:

  max rate     start the cluster (spawn to every broker answering Metadata with all
               three), idle RSS per broker after --settle-seconds; then one producer as fast as it can
               into a 3-partition topic (a leader on each broker): records/s, MiB/s,
               broker CPU (the three summed), peak RSS per broker
  fixed rate   a share (--fixed-share, default half) of Kafka's max rate (the slowest of
               --calibration-runs, lowered until Kafka holds it: bench.held_rate), latency from each record's scheduled send time to its
               callback; the run fails below 98% of the target. Runnel's follower lag is
               sampled from its metrics every 0.5 s (records and milliseconds behind the
               leader's log end)
  failover     --failover-rate records/s into a 1-partition topic; --kill-after seconds
               into the run the partition's leader is killed with SIGKILL. The longest
               send-to-acknowledgement time is the failover as a producer sees it (the
               record due at the kill waits for it); afterwards the partition must hold
               exactly the records sent: nothing lost, nothing written twice (the
               producer is idempotent, as the Java client is by default)

  bench/cluster.sh [--reps 3] [--records 300000] [--quick] ...
"""

import argparse
import datetime
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the single-broker benchmark: generators, probes, Kafka's JVM options)

ROOT = bench.ROOT
SIZE = 3
RACKS = ("zone-a", "zone-b", "zone-c")
MIN_ISR = "2"
TOPIC_CONFIGS = {"min.insync.replicas": MIN_ISR}


class Node:
    """One broker process of a cluster; what bench.produce needs of a broker is on the cluster."""

    def __init__(self, cluster, node_id):
        self.cluster = cluster
        self.id = node_id
        self.work = cluster.work / f"node-{node_id}"
        self.work.mkdir(parents=True)
        self.data = self.work / "data"
        self.port = bench.free_port()
        self.addr = ("127.0.0.1", self.port)
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.process = None

    def spawn(self):
        log = open(self.work / "broker.log", "a")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNEL_")}
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.work, env=env)
        log.close()

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def status(self, field):
        return bench.proc_mib(self.process.pid, field)

    def cpu_seconds(self):
        return bench.proc_cpu_seconds(self.process.pid)

    def kill9(self):
        self.process.kill()
        self.process.wait()


class RunnelNode(Node):
    def __init__(self, cluster, node_id):
        super().__init__(cluster, node_id)
        self.http_port = bench.free_port()

    def command(self):
        return [
            self.cluster.settings.broker_bin,
            f"--broker.id={self.id}",
            "--cluster.name=bench",
            f"--etcd.endpoints={self.cluster.etcd_endpoint}",
            f"--broker.rack={RACKS[self.id % len(RACKS)]}",
            f"--listeners=PLAINTEXT://127.0.0.1:{self.port}",
            f"--http.listener=127.0.0.1:{self.http_port}",
            f"--admin.listener=127.0.0.1:{bench.free_port()}",
            f"--console.listener=127.0.0.1:{bench.free_port()}",
            f"--log.dirs={self.data}",
            *self.cluster.flags,
        ]

    def follower_lag(self):
        """(records, ms): the largest lag of any follower of a partition this node leads."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return 0.0, 0.0
        worst = {"messages": 0.0, "ms": 0.0}
        for m in re.finditer(r"^runnel_replication_follower_lag_(messages|ms)\{[^}]*\} (\S+)$", text, re.M):
            worst[m.group(1)] = max(worst[m.group(1)], float(m.group(2)))
        return worst["messages"], worst["ms"]


class KafkaNode(Node):
    def __init__(self, cluster, node_id):
        super().__init__(cluster, node_id)
        self.controller_port = bench.free_port()

    def configure(self, voters, cluster_id):
        (self.work / "server.properties").write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    f"node.id={self.id}",
                    f"controller.quorum.voters={voters}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"broker.rack={RACKS[self.id % len(RACKS)]}",
                    f"log.dirs={self.data}",
                    f"min.insync.replicas={MIN_ISR}",
                    "offsets.topic.replication.factor=3",
                    "transaction.state.log.replication.factor=3",
                    f"transaction.state.log.min.isr={MIN_ISR}",
                    "",
                ]
            )
        )
        bench.write_kafka_log4j(self.work)
        subprocess.run(
            bench.java(self.cluster.settings.jars, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.work / "server.properties")),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def command(self):
        return bench.kafka_command(self.cluster.settings.jars, self.work)

    def follower_lag(self):
        return None


class Cluster:
    """Three brokers; `bootstrap`, `settings`, `name` and `cpu_seconds` make it a broker to
    bench.produce."""

    name = ""
    node_class = Node

    def __init__(self, work, settings):
        self.work = Path(work)
        self.settings = settings
        self.nodes = [self.node_class(self, i) for i in range(SIZE)]
        self.bootstrap = ",".join(n.bootstrap for n in self.nodes)

    def prepare(self):
        """Work before the first start, not timed."""

    def start(self, timeout=180):
        """Starts every node; returns seconds from the first spawn until each answers
        Metadata listing all of them."""
        began = time.monotonic()
        for n in self.nodes:
            n.spawn()
        while time.monotonic() - began < timeout:
            if all(bench.brokers_known(n.addr) == SIZE for n in self.nodes):
                return time.monotonic() - began
            for n in self.nodes:
                if not n.alive():
                    raise RuntimeError(f"{self.name} node {n.id} exited at start; see {n.work / 'broker.log'}")
            time.sleep(0.01)
        raise RuntimeError(f"{self.name}: not every node saw {SIZE} brokers within {timeout} s")

    def live(self):
        return [n for n in self.nodes if n.alive()]

    def cpu_seconds(self):
        return sum(n.cpu_seconds() for n in self.live())

    def rss(self, field):
        return [n.status(field) for n in self.live()]

    def extra_rss_mib(self):
        """Memory of processes the cluster needs besides its brokers."""
        return 0.0

    def stop(self):
        """SIGTERM to every node at once, SIGKILL to any still running 20 s later. Not
        measured: one at a time, the last Kafka node waits for a controller quorum that
        left with the others."""
        for n in self.live():
            n.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for n in self.nodes:
            if n.process is None:
                continue
            try:
                n.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                n.process.kill()
                n.process.wait()


class RunnelCluster(Cluster):
    name = "runnel"
    node_class = RunnelNode
    flags = ()

    def prepare(self):
        port, peer = bench.free_port(), bench.free_port()
        self.etcd_endpoint = f"http://127.0.0.1:{port}"
        log = open(self.work / "etcd.log", "a")
        self.etcd = subprocess.Popen(
            [
                self.settings.etcd_bin,
                "--name=bench",
                f"--data-dir={self.work / 'etcd'}",
                f"--listen-client-urls={self.etcd_endpoint}",
                f"--advertise-client-urls={self.etcd_endpoint}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=bench=http://127.0.0.1:{peer}",
                "--auto-compaction-mode=revision",
                "--auto-compaction-retention=1000",
                "--log-level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.etcd_endpoint}/health", timeout=1) as r:
                    if b'"health":"true"' in r.read():
                        return
            except OSError:
                pass
            if self.etcd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"etcd did not start; see {self.work / 'etcd.log'}")
            time.sleep(0.05)

    def extra_rss_mib(self):
        return bench.proc_mib(self.etcd.pid, "VmRSS")

    def stop(self):
        super().stop()
        if getattr(self, "etcd", None) is not None and self.etcd.poll() is None:
            self.etcd.terminate()
            self.etcd.wait(timeout=60)


class RunnelIntervalCluster(RunnelCluster):
    name = "runnel-interval"
    flags = ("--log.flush.mode=interval",)


class KafkaCluster(Cluster):
    name = "kafka"
    node_class = KafkaNode

    def prepare(self):
        voters = ",".join(f"{n.id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        cluster_id = bench.random_cluster_id()
        for n in self.nodes:
            n.configure(voters, cluster_id)


KINDS = {cls.name: cls for cls in (KafkaCluster, RunnelCluster, RunnelIntervalCluster)}


class fresh:
    """A started cluster on new directories; stopped and removed afterwards (kept, with
    its logs, when the measurement failed)."""

    def __init__(self, cls, settings):
        self.cls, self.settings = cls, settings

    def __enter__(self):
        os.sync()
        self.work = Path(tempfile.mkdtemp(prefix=f"bench-cluster-{self.cls.name}-"))
        self.cluster = self.cls(self.work, self.settings)
        try:
            self.cluster.prepare()
            self.cluster.ready_s = self.cluster.start()
            # Three JVMs just started compile on two cores for tens of seconds: without a
            # pause Kafka's first seconds measure its JIT (a smoke run held 478 of 496
            # rec/s, p50 140 ms, right after start). Runnel gets the same pause.
            time.sleep(self.settings.settle_seconds)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self.cluster

    def __exit__(self, kind, value, tb):
        self.cluster.stop()
        if kind is None:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            print(f"   {self.cls.name}: measurement failed; its directory is kept: {self.work}", flush=True)
        return False


def create_topic(cluster, topic, partitions):
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=120000)
    try:
        admin.create_topics([NewTopic(topic, partitions, SIZE, topic_configs=TOPIC_CONFIGS)], timeout_ms=120000)
    finally:
        admin.close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if all(end_offset(cluster, topic, p) is not None for p in range(partitions)):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{cluster.name}: topic {topic} has no leaders")


def end_offset(cluster, topic, partition):
    """The partition's high watermark from whichever live node leads it (None if none does)."""
    for n in cluster.live():
        found = bench.end_offset(n.addr, topic, partition)
        if found is not None:
            return found
    return None


def leader_of(cluster, topic, partition):
    """The partition's leader from Metadata; retried while the answering broker has not
    learned of the topic yet (brokers learn of it a little after the controller)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=30000)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            [t] = admin.describe_topics([topic])
            leaders = [p["leader_id"] for p in t["partitions"] if p["partition_index"] == partition]
            if leaders and leaders[0] >= 0:
                return leaders[0]
            time.sleep(0.1)
    finally:
        admin.close()
    raise RuntimeError(f"{cluster.name}: {topic}-{partition} has no leader in Metadata")


class LagSampler(threading.Thread):
    """Samples the cluster's largest follower lag every 0.5 s while a run goes on."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.samples = []
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.5):
            seen = [n.follower_lag() for n in self.cluster.live()]
            seen = [s for s in seen if s is not None]
            if seen:
                self.samples.append((max(s[0] for s in seen), max(s[1] for s in seen)))

    def figures(self):
        self.done.set()
        self.join()
        if not self.samples:
            return {}
        records = sorted(s[0] for s in self.samples)
        millis = sorted(s[1] for s in self.samples)
        return {
            "lag_records_p50": statistics.median(records),
            "lag_records_max": records[-1],
            "lag_ms_p50": statistics.median(millis),
            "lag_ms_max": millis[-1],
        }


# --- measurements: each on a fresh cluster, each returns a dict of figures ---


def max_rate(cls, settings):
    with fresh(cls, settings) as cluster:
        idle = cluster.rss("VmRSS")
        figures = {"start_to_ready_s": cluster.ready_s, "idle_rss_mib": idle, "extra_idle_rss_mib": cluster.extra_rss_mib()}
        create_topic(cluster, "bench", SIZE)
        figures.update(bench.produce(cluster, "bench", settings.records, -1, "all", warmup=settings.records // 5))
        figures["peak_rss_mib"] = cluster.rss("VmHWM")
        return figures


def fixed_rate(cls, settings, rate):
    with fresh(cls, settings) as cluster:
        create_topic(cluster, "bench", SIZE)
        lag = LagSampler(cluster)
        lag.start()
        records = max(1, int(rate * settings.fixed_seconds))
        try:
            figures = bench.produce(cluster, "bench", records, rate, "all", warmup=int(rate * settings.warmup_seconds))
        finally:
            figures_lag = lag.figures()
        figures.update(figures_lag)
        figures["peak_rss_mib"] = cluster.rss("VmHWM")
        return figures


def failover(cls, settings):
    with fresh(cls, settings) as cluster:
        create_topic(cluster, "failover", 1)
        leader = leader_of(cluster, "failover", 0)
        victim = cluster.nodes[leader]
        killed = {}

        def kill():
            killed["at"] = time.monotonic()
            victim.kill9()

        warmup = int(settings.failover_rate * settings.warmup_seconds)
        records = int(settings.failover_rate * settings.failover_seconds)
        timer = threading.Timer(settings.kill_after, kill)
        timer.start()
        try:
            figures = bench.produce(cluster, "failover", records, settings.failover_rate, "all", warmup=warmup)
        finally:
            timer.cancel()
        if "at" not in killed:
            raise RuntimeError(f"{cls.name}: the run ended before the leader was killed; raise --failover-seconds")
        stored = end_offset(cluster, "failover", 0)
        figures.update(killed_node=leader, sent=warmup + records, stored=stored, exact=stored == warmup + records)
        if not figures["exact"]:
            raise RuntimeError(f"{cls.name}: {warmup + records} records acknowledged, the partition holds {stored}")
        return figures


# --- the run ---


def calibrate(settings, journal):
    print("== fixed rate: Kafka's max rate (3 brokers, RF 3, acks=all)", flush=True)
    seen = []
    for _ in range(settings.calibration_runs):
        run = max_rate(KafkaCluster, settings)
        journal.add(0, "kafka", "calibration", None, run)
        seen.append(run["records_per_s"])
    print(f"   Kafka max {', '.join(f'{r:.0f}' for r in seen)} rec/s", flush=True)
    first = max(1, int(min(seen) * settings.fixed_share))
    return bench.held_rate("3p acks=all", first, lambda rate: fixed_rate(KafkaCluster, settings, rate), journal)


def run_repetition(rep, order, settings, rate, journal):
    print(f"== repetition {rep}: {', '.join(cls.name for cls in order)}", flush=True)

    def measure(cls, kind, fn, *args):
        began = time.monotonic()
        run = fn(cls, settings, *args)
        journal.add(rep, cls.name, kind, None, run)
        return run, time.monotonic() - began

    for cls in order:
        run, took = measure(cls, "max", max_rate)
        print(
            f"   {cls.name:>16} max: ready in {run['start_to_ready_s']:.1f} s, {run['records_per_s']:.0f} rec/s "
            f"({run['mib_per_s']:.1f} MiB/s), broker CPU {run['broker_cpu_s']:.1f} s, peak RSS "
            f"{', '.join(f'{r:.0f}' for r in run['peak_rss_mib'])} MiB ({took:.0f} s)",
            flush=True,
        )
    for cls in order:
        run, took = measure(cls, "fixed", fixed_rate, rate)
        lag = f", follower lag max {run['lag_records_max']:.0f} records / {run['lag_ms_max']:.0f} ms" if "lag_records_max" in run else ""
        print(
            f"   {cls.name:>16} at {rate} rec/s: achieved {run['achieved_per_s']:.0f}, p50 {run['p50_us'] / 1000:.2f} / "
            f"p99 {run['p99_us'] / 1000:.2f} / p99.9 {run['p999_us'] / 1000:.2f} ms{lag} ({took:.0f} s)",
            flush=True,
        )
        bench.check_rate(cls.name, "3p acks=all", rep, run)
    for cls in order:
        run, took = measure(cls, "failover", failover)
        print(
            f"   {cls.name:>16} failover: leader {run['killed_node']} killed, longest wait {run['max_us'] / 1e6:.2f} s, "
            f"{run['stored']} of {run['sent']} records stored ({took:.0f} s)",
            flush=True,
        )


def samples(runs):
    out = {}

    def put(broker, figure, value):
        out.setdefault(broker, {}).setdefault(figure, []).append(value)

    for run in runs:
        broker, f = run["broker"], run["figures"]
        if run["kind"] == "max":
            put(broker, "ready", f["start_to_ready_s"])
            put(broker, "idle", statistics.mean(f["idle_rss_mib"]))
            if f["extra_idle_rss_mib"]:
                put(broker, "extra", f["extra_idle_rss_mib"])
            put(broker, "records_per_s", f["records_per_s"])
            put(broker, "mib_per_s", f["mib_per_s"])
            put(broker, "cpu_per_mib", f["broker_cpu_s"] / (f["records"] * bench.RECORD_SIZE / 2**20) * 1000)
            put(broker, "peak", max(f["peak_rss_mib"]))
        elif run["kind"] == "fixed":
            for field in ("p50_us", "p99_us", "p999_us"):
                put(broker, field, f[field] / 1000)
            put(broker, "peak_fixed", max(f["peak_rss_mib"]))
            for field in ("lag_records_p50", "lag_records_max", "lag_ms_max"):
                if field in f:
                    put(broker, field, f[field])
        elif run["kind"] == "failover":
            put(broker, "failover", f["max_us"] / 1e6)
            put(broker, "failover_p999", f["p999_us"] / 1e3)
    return out


def report(doc):
    meta, rate = doc["meta"], doc["fixed_rate"]
    data = samples(doc["runs"])
    names = [n for n in meta["kinds"] if n in data]
    others = [n for n in names if n != "kafka"] if "kafka" in data else []
    rows = [
        ("ready", "start to ready, 3 brokers (s)", "lower"),
        ("idle", "idle RSS per broker (MiB, mean of 3)", "lower"),
        ("extra", "idle RSS of etcd (MiB; Kafka's controllers are inside its brokers)", "-"),
        ("records_per_s", "max rate (records/s)", "higher"),
        ("mib_per_s", "max rate (MiB/s)", "higher"),
        ("cpu_per_mib", "broker CPU at max rate, 3 brokers (ms per MiB)", "lower"),
        ("peak", "peak RSS of the largest broker at max rate (MiB)", "lower"),
        ("p50_us", f"at {rate} rec/s: p50 (ms)", "lower"),
        ("p99_us", f"at {rate} rec/s: p99 (ms)", "lower"),
        ("p999_us", f"at {rate} rec/s: p99.9 (ms)", "lower"),
        ("lag_records_p50", f"at {rate} rec/s: follower lag, median sample (records)", "lower"),
        ("lag_records_max", f"at {rate} rec/s: follower lag, largest sample (records)", "lower"),
        ("lag_ms_max", f"at {rate} rec/s: follower lag, largest sample (ms since caught up)", "lower"),
        ("failover", f"leader kill -9 at {meta['failover_rate']} rec/s: longest wait for an ack (s)", "lower"),
        ("failover_p999", f"leader kill -9 at {meta['failover_rate']} rec/s: p99.9 (ms)", "lower"),
    ]
    reps = meta["reps"]
    spread = (
        f"{reps} repetitions, each cell the median (min–max); ratio = median Runnel / median Kafka"
        if reps > 1
        else "1 repetition: a smoke run, not a result"
    )
    lines = [
        f"# 3-broker clusters: Runnel vs Apache Kafka {meta['kafka_version']} — {meta['date']}",
        "",
        f"Commit {meta['commit']}. Machine: {meta['machine']}; all three brokers of a cluster, its etcd (Runnel) "
        "and the load generator share it, over loopback. Topics: replication factor 3, min.insync.replicas=2, "
        "acks=all, leaders spread one per broker (3 partitions). Kafka: three KRaft nodes, each broker and "
        "controller (JVM options of kafka-server-start.sh, 1 GiB heap each). Runnel: three brokers on one etcd "
        f"3.6; `runnel` acknowledges after fsync on min.insync.replicas brokers, `runnel-interval` from the page "
        f"cache as Kafka does. Every measurement on fresh processes and directories, after {meta['settle_seconds']:g} s idle (three JVMs compile for tens of seconds after start); {spread}. Max rate: "
        f"{meta['records']} measured records after a fifth as many unmeasured. Fixed rate: {meta['fixed_share']:.0%} "
        f"of Kafka's slowest of {meta['calibration_runs']} calibration runs, lowered until a fixed-rate Kafka run "
        f"held it, {meta['warmup_seconds']:g} s warmup "
        f"then {meta['fixed_seconds']:g} s measured, latency from each record's scheduled send time (no "
        "coordinated omission), every run at least 98% of the target. Follower lag: Runnel's own gauges (leader's "
        "log end minus the follower's), sampled every 0.5 s; Kafka publishes its follower lag only over JMX and "
        "measures it against the leader's high watermark, which under acks=all moves only after the followers "
        f"fetch, so it is not shown. Failover: 1 partition at {meta['failover_rate']} rec/s, its leader killed "
        f"{meta['kill_after']:g} s after the generator started, default failure detection (Runnel: etcd lease "
        "10 s; Kafka: broker.session.timeout.ms 9 s); every run stored exactly the records sent.",
        "",
        "| Figure | " + " | ".join(names) + "".join(f" | {n} / kafka" for n in others) + " | Better |",
        "|---" * (len(names) + len(others) + 2) + "|",
    ]
    for figure, label, better in rows:
        values = {n: data[n].get(figure, []) for n in names}
        if not any(values.values()):
            continue
        cells = [bench.cell(values[n]) for n in names] + [bench.ratio(values[n], values.get("kafka")) for n in others]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {better} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jars", required=True)
    parser.add_argument("--classes", required=True)
    parser.add_argument("--broker-bin", required=True)
    parser.add_argument("--etcd-bin", required=True)
    parser.add_argument("--commit", default="unknown")
    parser.add_argument("--kafka-version", default="4.1.1")
    parser.add_argument("--kinds", default="kafka,runnel,runnel-interval")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--records", type=int, default=100_000, help="measured records per max-rate run (default 100000)")
    parser.add_argument("--fixed-seconds", type=float, default=15)
    parser.add_argument("--warmup-seconds", type=float, default=10, help="unmeasured seconds at the fixed rate first (default 10)")
    parser.add_argument("--settle-seconds", type=float, default=15, help="idle seconds between a cluster's start and its measurement (default 15)")
    parser.add_argument("--fixed-share", type=float, default=0.5)
    parser.add_argument("--calibration-runs", type=int, default=2)
    parser.add_argument("--failover-rate", type=float, default=2000, help="records/s in the failover run (default 2000)")
    parser.add_argument("--failover-seconds", type=float, default=25, help="measured seconds of the failover run (default 25)")
    parser.add_argument("--kill-after", type=float, default=10, help="seconds after the generator starts that the leader is killed (default 10)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 repetition, 30000 records, 1 calibration run, 5 s fixed rate")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.records, args.calibration_runs, args.fixed_seconds = 1, 30_000, 1, 5
    kinds = [KINDS[k] for k in args.kinds.split(",")]
    settings = argparse.Namespace(
        jars=args.jars,
        classes=args.classes,
        broker_bin=args.broker_bin,
        etcd_bin=args.etcd_bin,
        records=args.records,
        fixed_seconds=args.fixed_seconds,
        warmup_seconds=args.warmup_seconds,
        settle_seconds=args.settle_seconds,
        fixed_share=args.fixed_share,
        calibration_runs=max(1, args.calibration_runs),
        failover_rate=args.failover_rate,
        failover_seconds=args.failover_seconds,
        kill_after=args.kill_after,
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    meta = {
        "date": now.strftime("%Y-%m-%d %H:%M UTC"),
        "commit": args.commit,
        "machine": f"{os.cpu_count()} cores, {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, {platform.platform()}",
        "kafka_version": args.kafka_version,
        "kinds": [cls.name for cls in kinds],
        "reps": args.reps,
        "records": args.records,
        "fixed_seconds": args.fixed_seconds,
        "warmup_seconds": args.warmup_seconds,
        "settle_seconds": args.settle_seconds,
        "fixed_share": args.fixed_share,
        "calibration_runs": settings.calibration_runs,
        "failover_rate": args.failover_rate,
        "failover_seconds": args.failover_seconds,
        "kill_after": args.kill_after,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    stem = out / (now.strftime("%Y%m%dT%H%M%SZ") + "-cluster" + ("-quick" if args.quick else ""))
    journal = bench.Journal(stem.with_suffix(".json"), meta)
    began = time.monotonic()
    try:
        rate = calibrate(settings, journal) if "kafka" in meta["kinds"] else int(args.failover_rate)
        journal.doc["fixed_rate"] = rate
        for rep in range(1, args.reps + 1):
            shift = (rep - 1) % len(kinds)
            run_repetition(rep, kinds[shift:] + kinds[:shift], settings, rate, journal)
    except bench.RateNotHeld as e:
        journal.doc["failed"] = str(e)
        journal.save()
        print(f"\nbench FAILED: {e}\nwhat was measured is in {journal.path}", file=sys.stderr)
        return 1
    meta["wall_s"] = round(time.monotonic() - began)
    journal.save()
    text = report(journal.doc)
    print()
    print(text)
    stem.with_suffix(".md").write_text(text)
    print(f"written to {stem}.{{md,json}} in {meta['wall_s'] / 60:.0f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
