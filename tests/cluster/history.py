"""A history recorder and checker for fault tests (the project's own Jepsen, small).

Every produce is an operation with its invocation and completion times and its outcome
(acknowledged with an offset, failed, or unknown). After the run the checker reads the
partition back and reports, per partition: acknowledged, lost (acknowledged, not read),
duplicated (a value read more than once), reordered (acknowledged values read in another
order than their offsets), the longest unavailability (the longest time with no
successful acknowledgement while operations were attempted), and compares every
replica's log byte for byte up to the high watermark (`replica_logs`)."""

import struct
import threading
import time
from collections import defaultdict
from pathlib import Path


class History:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = []  # dicts: value, partition, invoked, completed, outcome, offset, error

    def invoke(self, value, partition):
        op = {"value": value, "partition": partition, "invoked": time.monotonic(), "completed": None,
              "outcome": None, "offset": None, "error": None}
        with self.lock:
            self.ops.append(op)
        return op

    def ok(self, op, offset):
        op.update(completed=time.monotonic(), outcome="ok", offset=offset)

    def fail(self, op, error):
        op.update(completed=time.monotonic(), outcome="fail", error=str(error))

    def acknowledged(self):
        with self.lock:
            return [op for op in self.ops if op["outcome"] == "ok"]

    def longest_gap(self):
        """The longest time between successive acknowledgements (or from the first
        invocation to the first one): what a client saw as unavailability."""
        with self.lock:
            times = sorted(op["completed"] for op in self.ops if op["outcome"] == "ok")
            first = min((op["invoked"] for op in self.ops), default=None)
        if first is None or not times:
            return 0.0
        points = [first] + times
        return max(b - a for a, b in zip(points, points[1:]))

    def check(self, read):
        """`read`: partition → [(offset, value)] as read back after the run. Returns the
        report (a dict) with lost, duplicated and reordered lists."""
        acked = self.acknowledged()
        by_partition = defaultdict(list)
        for op in acked:
            by_partition[op["partition"]].append(op)
        report = {"acknowledged": len(acked), "attempted": len(self.ops), "lost": [], "duplicated": [],
                  "reordered": [], "offset_mismatch": [], "unknown_or_failed": len(self.ops) - len(acked)}
        for partition, records in read.items():
            seen = defaultdict(int)
            for _, value in records:
                seen[value] += 1
            report["duplicated"] += [(partition, v, n) for v, n in seen.items() if n > 1]
            position = {value: offset for offset, value in records}
            ops = by_partition.get(partition, [])
            report["lost"] += [(partition, op["value"]) for op in ops if op["value"] not in position]
            # The offset the broker acknowledged is where the value is.
            report["offset_mismatch"] += [
                (partition, op["value"], op["offset"], position[op["value"]])
                for op in ops
                if op["value"] in position and op["offset"] is not None and op["offset"] != position[op["value"]]
            ]
            # Values acknowledged in order (by offset) are read in that order.
            acked_order = [op["value"] for op in sorted(ops, key=lambda o: o["offset"]) if op["value"] in position]
            read_order = sorted(acked_order, key=lambda v: position[v])
            if acked_order != read_order:
                report["reordered"].append(partition)
        for partition in by_partition:
            if partition not in read:
                report["lost"] += [(partition, op["value"]) for op in by_partition[partition]]
        report["longest_unavailability_s"] = round(self.longest_gap(), 3)
        return report


def print_report(name, report, extra=None):
    lines = [f"history report: {name}"]
    for key in ("attempted", "acknowledged", "unknown_or_failed", "longest_unavailability_s"):
        lines.append(f"  {key}: {report[key]}")
    for key in ("lost", "duplicated", "reordered", "offset_mismatch"):
        lines.append(f"  {key}: {len(report[key])} {report[key][:5] if report[key] else ''}")
    for key, value in (extra or {}).items():
        lines.append(f"  {key}: {value}")
    print("\n".join(lines))


def assert_clean(report):
    assert report["acknowledged"] > 0, "nothing was acknowledged: the test proved nothing"
    assert not report["lost"], f"lost: {report['lost'][:10]}"
    assert not report["duplicated"], f"duplicated: {report['duplicated'][:10]}"
    assert not report["reordered"], f"reordered: {report['reordered']}"
    assert not report["offset_mismatch"], f"offset mismatch: {report['offset_mismatch'][:10]}"


def log_batches(partition_dir):
    """The batches stored in a partition directory's segments, in offset order:
    [(base offset, last offset, bytes)]."""
    batches = []
    for segment in sorted(Path(partition_dir).glob("*.log")):
        data = segment.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            base, length = struct.unpack(">qi", data[pos:pos + 12])
            end = pos + 12 + length
            if length < 49 or end > len(data):
                break
            last_delta = struct.unpack(">i", data[pos + 23:pos + 27])[0]
            batches.append((base, base + last_delta, data[pos:end]))
            pos = end
    return batches


def replica_bytes(partition_dir, high_watermark):
    """The stored bytes of every batch wholly below `high_watermark`."""
    return b"".join(b for base, last, b in log_batches(partition_dir) if last < high_watermark)


def compare_replicas(dirs, high_watermark):
    """`dirs`: broker id → partition directory. Returns (identical, sizes by broker)."""
    contents = {broker: replica_bytes(d, high_watermark) for broker, d in dirs.items()}
    sizes = {broker: len(c) for broker, c in contents.items()}
    return len(set(contents.values())) == 1, sizes
