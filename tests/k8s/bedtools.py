"""Helpers for the test bed's tests: a namespace handle over kubectl, waiting, and reading
what pods wrote."""

import json
import os
import time
from pathlib import Path


def wait_for(predicate, timeout=90, what="condition", interval=0.5):
    """The first truthy value of `predicate()`, polled until `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def ready(pod):
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def waiting_reason(pod, container=None):
    """The waiting reason of the pod's (named or first) container, or None."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if container in (None, status["name"]):
            return (status.get("state") or {}).get("waiting", {}).get("reason")
    return None


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


class Namespace:
    """A Kubernetes namespace of the shared test bed, one per test module."""

    def __init__(self, bed, name):
        self.bed = bed
        self.name = name

    def kubectl(self, *args, stdin=None):
        return self.bed.kubectl("-n", self.name, *args, stdin=stdin)

    def apply(self, manifest):
        self.kubectl("apply", "-f", "-", stdin=manifest)

    def get(self, kind, name):
        """The object as a dict, or None when the apiserver says NotFound (any other
        kubectl failure raises)."""
        out = self.bed.kubectl_run("-n", self.name, "get", kind, name, "-o", "json")
        if out.returncode == 0:
            return json.loads(out.stdout)
        if "NotFound" in out.stderr or "not found" in out.stderr:
            return None
        raise RuntimeError(f"kubectl get {kind} {name} failed: {out.stderr}")

    def pod(self, name):
        return self.get("pod", name)

    def pods(self, selector):
        return json.loads(self.kubectl("get", "pods", "-l", selector, "-o", "json"))["items"]

    def delete(self, kind, name, wait=True, timeout=60):
        self.kubectl("delete", kind, name, f"--wait={'true' if wait else 'false'}", f"--timeout={timeout}s")

    def events(self, name):
        """The Events whose involved object has this name, oldest first."""
        out = self.kubectl("get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json")
        return json.loads(out)["items"]

    def wait_pod(self, name, predicate, what, timeout=90):
        """The pod once `predicate(pod)` holds."""
        return wait_for(lambda: (p := self.pod(name)) and predicate(p) and p, timeout=timeout, what=f"{name}: {what}")

    def log(self, pod, container):
        """What the container has written so far (stdout and stderr)."""
        path = Path(self.bed.base) / "runner" / "pods" / pod["metadata"]["uid"] / f"{container}.log"
        return path.read_text() if path.exists() else ""


def fetch(bed, url, timeout=5):
    """The body at `url`, fetched from inside the bed's network namespace, or None."""
    script = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout={timeout}).read().decode())"
    out = bed.run("python3", "-c", script, check=False)
    return out.stdout.strip() if out.returncode == 0 else None
