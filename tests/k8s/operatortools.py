"""What the operator's end-to-end modules share: installing the chart, the operator's
pods, logs and metrics, KafkaCluster conditions, and the Kafka clients of opload.py run
inside the bed's network namespace."""

import json
import os
import sys
from pathlib import Path

from bedtools import fetch, wait_for

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHART = ROOT / "charts" / "runnel-operator"
OPERATOR_NS = "runnel-system"


def container_pid(pod, name):
    status = next(s for s in pod["status"]["containerStatuses"] if s["name"] == name)
    return int(status["containerID"].removeprefix("testbed://"))


def condition(obj, type_):
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return c
    return None


def is_true(obj, type_):
    c = condition(obj, type_)
    return c is not None and c["status"] == "True" and c.get("observedGeneration") == obj["metadata"]["generation"]


def helm(bed, *args):
    out = bed.run(str(bed.bin / "helm"), *args, f"--kubeconfig={bed.kubeconfig}", check=False, timeout=180)
    assert out.returncode == 0, f"helm {' '.join(args)}: {out.stdout}\n{out.stderr}"
    return out.stdout


def client(bed, *args, timeout=120):
    """opload.py inside the bed's network namespace; its JSON answer."""
    out = bed.run(sys.executable, str(HERE / "opload.py"), *args, check=False, timeout=timeout)
    assert out.returncode == 0, f"opload {args}: {out.stdout}\n{out.stderr}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def operator_pods(bed):
    out = bed.kubectl("-n", OPERATOR_NS, "get", "pods", "-l", "app.kubernetes.io/name=runnel-operator", "-o", "json")
    return json.loads(out)["items"]


def operator_logs(bed):
    text = ""
    for pod in operator_pods(bed):
        path = Path(bed.base) / "runner" / "pods" / pod["metadata"]["uid"] / "operator.log"
        if path.exists():
            text += path.read_text()
    return text


def usage(pid):
    """(CPU seconds, RSS MiB) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return cpu, rss


def leader(bed):
    lease = json.loads(bed.kubectl("-n", OPERATOR_NS, "get", "lease", "runnel-operator", "-o", "json"))
    return lease["spec"].get("holderIdentity")


def leader_pid(bed):
    pod = next(p for p in operator_pods(bed) if p["metadata"]["name"] == leader(bed))
    return container_pid(pod, "operator")


def leader_metrics(bed):
    pod = next(p for p in operator_pods(bed) if p["metadata"]["name"] == leader(bed))
    return fetch(bed, f"http://{pod['status']['podIP']}:8080/metrics") or ""


def install_operator(bed, *values):
    """helm install of the chart into OPERATOR_NS (extra `--set` values), once its leader
    holds the lease."""
    # An earlier module's uninstall deletes the namespace without waiting.
    wait_for(lambda: not bed.kubectl("get", "namespace", OPERATOR_NS, check=False), timeout=120,
             what=f"namespace {OPERATOR_NS} gone")
    bed.kubectl("create", "namespace", OPERATOR_NS)
    sets = [arg for v in values for arg in ("--set", v)]
    out = helm(bed, "install", "runnel-operator", str(CHART), "-n", OPERATOR_NS, *sets, "--wait", "--timeout", "120s")
    print(out)
    wait_for(lambda: bed.kubectl("-n", OPERATOR_NS, "get", "lease", "runnel-operator", check=False),
             timeout=60, what="the operator's leader lease")


def uninstall_operator(bed):
    """Checks the operator's logs for refused calls, then removes the chart."""
    logs = operator_logs(bed)
    assert 'forbidden: User "system:serviceaccount' not in logs, "an operator call was refused by RBAC:\n" + logs[-5000:]
    assert "Forbidden: updates to statefulset spec" not in logs, "the operator changed an immutable field"
    helm(bed, "uninstall", "runnel-operator", "-n", OPERATOR_NS)
    bed.kubectl("delete", "namespace", OPERATOR_NS, "--wait=false", check=False)


def apply_cluster(ns, name="demo", timeout=240):
    """examples/cluster.yaml (3 brokers, a managed 3-member etcd) as `name`, once Ready."""
    manifest = (ROOT / "examples" / "cluster.yaml").read_text().replace("name: demo", f"name: {name}", 1)
    ns.apply(manifest)
    return wait_for(lambda: (k := ns.get("kafkacluster", name)) and is_true(k, "Ready") and k,
                    timeout=timeout, what=f"cluster {name} Ready")


def bootstrap(ns, name="demo"):
    return f"{name}-bootstrap.{ns.name}.svc.cluster.local:9092"
