#!/usr/bin/env python3
"""Runnel against Apache Kafka (KRaft, single node) on this machine, in one run.

Both brokers get the same load from the same generators, over loopback: bench/java/Load.java
(Kafka's Java client with default producer settings but acks, 1 KiB records, latency from
send() to callback as ProducerPerformance measures it, but with an unmeasured warmup and
microsecond percentiles) and bench/java/AssignConsumer.java. For each broker, one after the other:

  start to ready      spawn to the first Metadata answer naming a broker (fresh data dir)
  idle RSS            two seconds after ready
  per workload        1, 8, 100, 1000 partitions x acks=1, acks=all:
                        max rate: records/s, MB/s, p50/p99/p99.9 produce latency,
                        broker CPU seconds; consume MB/s of what was written;
                        fixed rate: half of Kafka's max rate for the workload, latencies
  generator ceiling   acks=0 at max rate, one partition (the broker only reads)
  peak RSS            the broker's high-water mark over all of the above
  recovery            1 GiB into one partition with acks=1, kill -9, restart: time until
                      ListOffsets answers with the full end offset

Kafka runs first so that its max rates set the fixed rates for both. Figures are printed
as a table with the ratio Runnel/Kafka and written to bench/results/.

  bench/run.sh [--quick] [--records N] [--kafka-version V]
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD_SIZE = 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- a few Kafka requests by hand: the probes must not depend on either broker's tools ---


def _recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _call(addr, api_key, version, body, timeout=2.0):
    client = b"runnel-bench"
    header = struct.pack(">hhih", api_key, version, 1, len(client)) + client
    with socket.create_connection(addr, timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        size = struct.unpack(">i", _recv_exact(sock, 4))[0]
        return _recv_exact(sock, size)[4:]  # after the correlation id


def brokers_known(addr):
    """Metadata v1 for all topics: the number of brokers in the answer (0 on failure)."""
    try:
        return struct.unpack(">i", _call(addr, 3, 1, struct.pack(">i", -1))[:4])[0]
    except (OSError, ConnectionError, struct.error):
        return 0


def end_offset(addr, topic, partition=0):
    """ListOffsets v1 latest for one partition: the offset, or None on any error."""
    name = topic.encode()
    body = struct.pack(">ii", -1, 1) + struct.pack(">h", len(name)) + name + struct.pack(">iiq", 1, partition, -1)
    try:
        r = _call(addr, 2, 1, body)
    except (OSError, ConnectionError):
        return None
    pos = 4  # topics array length
    (name_len,) = struct.unpack_from(">h", r, pos)
    pos += 2 + name_len + 4  # name, partitions array length
    _, error, _, offset = struct.unpack_from(">ihqq", r, pos)
    return None if error else offset


# --- brokers ---


class Broker:
    name = ""

    def __init__(self, work, jars):
        self.work = Path(work)
        self.jars = jars
        self.port = free_port()
        self.addr = ("127.0.0.1", self.port)
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.process = None
        self.data = self.work / "data"

    def command(self):
        raise NotImplementedError

    def prepare(self):
        """Work done once per data dir before the first start (not timed)."""

    def start(self, timeout=120):
        """Starts the broker; returns seconds from spawn to the first Metadata answer."""
        self.log = open(self.work / "broker.log", "a")
        began = time.monotonic()
        self.process = subprocess.Popen(self.command(), stdout=self.log, stderr=subprocess.STDOUT, cwd=self.work)
        while time.monotonic() - began < timeout:
            if brokers_known(self.addr) > 0:
                return time.monotonic() - began
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; see {self.work / 'broker.log'}")
            time.sleep(0.002)
        raise RuntimeError(f"{self.name} not ready in {timeout} s")

    def _proc(self, field):
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def rss_mib(self):
        return self._proc("VmRSS") / 1024

    def peak_rss_mib(self):
        return self._proc("VmHWM") / 1024

    def cpu_seconds(self):
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()

    def kill9(self):
        self.process.kill()
        self.process.wait()
        self.log.close()


class Runnel(Broker):
    name = "runnel"
    flags = ()

    def command(self):
        return [
            str(ROOT / "target" / "release" / "runnel-broker"),
            f"--listeners=PLAINTEXT://127.0.0.1:{self.port}",
            f"--http.listener=127.0.0.1:{free_port()}",
            f"--log.dirs={self.data}",
            *self.flags,
        ]


class RunnelInterval(Runnel):
    """Kafka's durability semantics: acknowledged from the page cache, fsync left to the OS."""

    name = "runnel-interval"
    flags = ("--log.flush.mode=interval",)


class Kafka(Broker):
    name = "kafka"

    def prepare(self):
        self.controller_port = free_port()
        (self.work / "server.properties").write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={self.data}",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "",
                ]
            )
        )
        (self.work / "log4j.properties").write_text(
            "log4j.rootLogger=INFO, f\nlog4j.appender.f=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.f.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.f.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        )
        subprocess.run(
            java(self.jars, "kafka.tools.StorageTool", "format", "-t", random_cluster_id(), "-c", str(self.work / "server.properties")),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def command(self):
        # The JVM options kafka-server-start.sh and kafka-run-class.sh use.
        return [
            "java",
            "-Xmx1G",
            "-Xms1G",
            "-server",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.work / 'log4j.properties'}",
            "-cp",
            f"{self.jars}/*",
            "kafka.Kafka",
            str(self.work / "server.properties"),
        ]


def random_cluster_id():
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def java(jars, main, *args, heap="512m", extra_cp=None):
    cp = f"{jars}/*" + (f":{extra_cp}" if extra_cp else "")
    return ["java", f"-Xmx{heap}", "-Dlog4j.configuration=file:/dev/null", "-Dlog4j2.level=ERROR", "-cp", cp, main, *args]


# --- load ---


def admin(broker):
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=120000)


def create_topic(broker, topic, partitions):
    from kafka.admin import NewTopic

    a = admin(broker)
    a.create_topics([NewTopic(topic, partitions, 1)], timeout_ms=120000)
    a.close()
    # Wait until every partition has a leader that answers.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if all(end_offset(broker.addr, topic, p) is not None for p in {0, partitions - 1}):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{broker.name}: topic {topic} has no leaders")


def delete_topic(broker, topic):
    a = admin(broker)
    a.delete_topics([topic], timeout_ms=120000)
    a.close()


def produce(broker, jars, classes, topic, records, rate, acks, warmup):
    """bench/java/Load.java; returns its figures with the broker's and generator's CPU."""
    cpu_before = broker.cpu_seconds()
    gen_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    out = subprocess.run(
        java(
            jars,
            "Load",
            broker.bootstrap,
            topic,
            acks,
            str(records),
            str(rate),
            str(warmup),
            heap="1g",
            extra_cp=classes,
        ),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    wall = time.monotonic() - began
    gen_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in out.stdout.splitlines() if line.startswith("records=")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{broker.name}: the load generator failed\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    figures = {k: float(v) for k, v in (kv.split("=") for kv in lines[-1].split())}
    if figures["errors"]:
        raise RuntimeError(f"{broker.name}: {int(figures['errors'])} sends failed\n{out.stderr[-3000:]}")
    figures.update(
        broker_cpu_s=broker.cpu_seconds() - cpu_before,
        generator_cpu_s=(gen_after.ru_utime + gen_after.ru_stime) - (gen_before.ru_utime + gen_before.ru_stime),
        wall_s=wall,
    )
    return figures


def consume(broker, jars, classes, topic, records):
    out = subprocess.run(
        java(jars, "AssignConsumer", broker.bootstrap, topic, str(records), heap="1g", extra_cp=classes),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{broker.name}: consumer failed\n{out.stderr[-3000:]}")
    count, size, millis = (int(x) for x in out.stdout.split()[-3:])
    return {"consume_mib_per_s": size / 2**20 / max(millis / 1000, 1e-3), "consume_records": count}


def run_broker(cls, jars, classes, workloads, records, fixed_rates, recovery_records):
    """Every figure for one broker. `fixed_rates` maps a workload to its fixed produce rate
    (None: half of this broker's own max rate, used for Kafka)."""
    results = {"workloads": {}}
    work = Path(tempfile.mkdtemp(prefix=f"bench-{cls.name}-"))
    broker = cls(work, jars)
    broker.prepare()
    print(f"== {cls.name}: starting ({work})", flush=True)
    results["start_to_ready_s"] = broker.start()
    time.sleep(2)
    results["idle_rss_mib"] = broker.rss_mib()
    try:
        for partitions, acks in workloads:
            key = f"{partitions}p acks={acks}"
            topic = f"bench-{partitions}-{acks}"
            create_topic(broker, topic, partitions)
            peak = produce(broker, jars, classes, topic, records, -1, acks, warmup=records // 5)
            peak.update(consume(broker, jars, classes, topic, records))
            rate = fixed_rates.get(key) if fixed_rates else None
            rate = rate or max(1, int(peak["records_per_s"] / 2))
            # 3 s of warmup at the rate, then 15 s measured.
            fixed = produce(broker, jars, classes, topic, rate * 15, rate, acks, warmup=rate * 3)
            fixed["rate"] = rate
            delete_topic(broker, topic)
            results["workloads"][key] = {"max": peak, "fixed": fixed}
            print(
                f"   {key:>16}: {peak['mib_per_s']:8.1f} MiB/s max, p99 {peak['p99_us'] / 1000:.1f} ms; "
                f"at {rate} rec/s p99 {fixed['p99_us'] / 1000:.1f} ms; consume {peak['consume_mib_per_s']:.0f} MiB/s; "
                f"broker CPU {peak['broker_cpu_s']:.1f} s",
                flush=True,
            )
        create_topic(broker, "ceiling", 1)
        results["acks0"] = produce(broker, jars, classes, "ceiling", records, -1, "0", warmup=records // 5)
        delete_topic(broker, "ceiling")
        results["peak_rss_mib"] = broker.peak_rss_mib()
        results["total_cpu_s"] = broker.cpu_seconds()
    finally:
        broker.stop()

    # Recovery of a 1 GiB partition after kill -9.
    shutil.rmtree(work)
    work.mkdir()
    broker = cls(work, jars)
    broker.prepare()
    broker.start()
    create_topic(broker, "recover", 1)
    produce(broker, jars, classes, "recover", recovery_records, -1, "1", warmup=0)
    broker.kill9()
    began = time.monotonic()
    broker.start()
    while end_offset(broker.addr, "recover") != recovery_records:
        if time.monotonic() - began > 600:
            raise RuntimeError(f"{cls.name}: the recovered partition never served {recovery_records} records")
        time.sleep(0.005)
    results["recovery_s"] = time.monotonic() - began
    broker.stop()
    shutil.rmtree(work, ignore_errors=True)
    print(f"   recovery of {recovery_records * RECORD_SIZE / 2**30:.2f} GiB: {results['recovery_s']:.2f} s", flush=True)
    return results


# --- report ---


def rows(results):
    """(figure, {broker: value}, better-when) rows."""

    def each(get):
        return {name: get(r) for name, r in results.items()}

    out = [
        ("start to ready (s)", each(lambda r: r["start_to_ready_s"]), "lower"),
        ("idle RSS (MiB)", each(lambda r: r["idle_rss_mib"]), "lower"),
        ("peak RSS under load (MiB)", each(lambda r: r["peak_rss_mib"]), "lower"),
        ("broker CPU, whole load (s)", each(lambda r: r["total_cpu_s"]), "lower"),
        ("1 GiB recovery after kill -9 (s)", each(lambda r: r["recovery_s"]), "lower"),
        ("generator ceiling: acks=0, 1p (MiB/s)", each(lambda r: r["acks0"]["mib_per_s"]), "higher"),
    ]
    for key in results["kafka"]["workloads"]:

        def w(part, field, key=key):
            return each(lambda r: r["workloads"][key][part][field])

        rate = results["kafka"]["workloads"][key]["fixed"]["rate"]
        out += [
            (f"{key}: max MiB/s", w("max", "mib_per_s"), "higher"),
            (f"{key}: max p50 / p99 / p99.9 (ms)", each(lambda r, key=key: lat(r["workloads"][key]["max"])), "lower"),
            (
                f"{key}: at {int(rate)} rec/s p50 / p99 / p99.9 (ms)",
                each(lambda r, key=key: lat(r["workloads"][key]["fixed"])),
                "lower",
            ),
            (f"{key}: consume MiB/s", w("max", "consume_mib_per_s"), "higher"),
            (f"{key}: broker CPU at max (s)", w("max", "broker_cpu_s"), "lower"),
            (f"{key}: generator CPU at max (s)", w("max", "generator_cpu_s"), "-"),
        ]
    return out


def lat(run):
    return tuple(round(run[k] / 1000, 2) for k in ("p50_us", "p99_us", "p999_us"))


def fmt(v):
    if isinstance(v, tuple):
        return " / ".join(str(x) for x in v)
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def ratio(r, k):
    if isinstance(r, tuple):
        return " / ".join("–" if b == 0 else f"{a / b:.2f}" for a, b in zip(r, k))
    return "–" if k == 0 else f"{r / k:.2f}"


def report(results, meta):
    names = [n for n in ("runnel", "runnel-interval", "kafka") if n in results]
    others = [n for n in names if n != "kafka"]
    lines = [
        f"# Runnel vs Apache Kafka {meta['kafka_version']} — {meta['date']}",
        "",
        f"Machine: {meta['machine']}. Load: bench/java/Load.java on Kafka's Java client "
        f"{meta['kafka_version']} (default producer settings but acks), {RECORD_SIZE}-byte random records, "
        f"{meta['records']} measured records per max-rate run after a fifth as many unmeasured; fixed rate = "
        "half of Kafka's max rate for the workload, for every broker, 3 s warmup then 15 s measured. "
        "Latency = send() to callback. Consume = bench/java/AssignConsumer.java reading the max-rate run's "
        "records back. `runnel` is the default (acks=1 and acks=all answered after fsync); "
        "`runnel-interval` is `log.flush.mode=interval`, Kafka's semantics (acknowledged from the page "
        "cache). Ratio = Runnel / Kafka; MiB = 2^20 bytes.",
        "",
        "| Figure | " + " | ".join(names) + " | " + " | ".join(f"{n} / kafka" for n in others) + " | Better |",
        "|---" * (len(names) + len(others) + 2) + "|",
    ]
    for name, values, better in rows(results):
        cells = [fmt(values[n]) for n in names] + [ratio(values[n], values["kafka"]) for n in others]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {better} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jars", required=True, help="directory of Apache Kafka's jars")
    parser.add_argument("--classes", required=True, help="compiled bench/java classes")
    parser.add_argument("--kafka-version", default="4.1.1")
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--recovery-records", type=int, default=2**20, help="1 KiB records for the recovery test (default 1 GiB)")
    parser.add_argument("--partitions", default="1,8,100,1000")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few records, 1 and 8 partitions")
    args = parser.parse_args()
    if args.quick:
        args.records, args.recovery_records, args.partitions = 20_000, 20_000, "1,8"
    workloads = [(int(p), acks) for p in args.partitions.split(",") for acks in ("1", "all")]

    results = {}
    results["kafka"] = run_broker(Kafka, args.jars, args.classes, workloads, args.records, None, args.recovery_records)
    fixed = {key: w["fixed"]["rate"] for key, w in results["kafka"]["workloads"].items()}
    for cls in (Runnel, RunnelInterval):
        results[cls.name] = run_broker(cls, args.jars, args.classes, workloads, args.records, fixed, args.recovery_records)

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, {platform.platform()}",
        "kafka_version": args.kafka_version,
        "records": args.records,
    }
    text = report(results, meta)
    print()
    print(text)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    suffix = "-quick" if args.quick else ""
    (out / f"{stamp}{suffix}.md").write_text(text)
    (out / f"{stamp}{suffix}.json").write_text(json.dumps({"meta": meta, **results}, indent=2))
    print(f"written to {out / (stamp + suffix)}.{{md,json}}")


if __name__ == "__main__":
    sys.exit(main())
