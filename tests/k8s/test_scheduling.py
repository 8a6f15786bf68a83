"""Several nodes in three zones: where pods land (anti-affinity, cordon, taints), what a
pod knows of its node, and `kubectl drain` against a PodDisruptionBudget."""

import datetime
import json
import threading
import time
from contextlib import contextmanager

from bedtools import ready, wait_for

NODES = ["testbed-node-0", "testbed-node-1", "testbed-node-2"]
ZONE = "topology.kubernetes.io/zone"


def node_labels(bed):
    nodes = json.loads(bed.kubectl("get", "nodes", "-o", "json"))["items"]
    return {n["metadata"]["name"]: n["metadata"]["labels"] for n in nodes}


@contextmanager
def cordoned(bed, *nodes):
    for n in nodes:
        bed.kubectl("cordon", n)
    try:
        yield
    finally:
        for n in nodes:
            bed.kubectl("uncordon", n)


def test_nodes_are_ready_in_three_zones_with_renewed_leases(bed):
    labels = node_labels(bed)
    assert {n: labels[n][ZONE] for n in NODES} == dict(zip(NODES, ["zone-a", "zone-b", "zone-c"]))

    def renewals():
        leases = json.loads(bed.kubectl("get", "leases", "-n", "kube-node-lease", "-o", "json"))["items"]
        return {lease["metadata"]["name"]: lease["spec"]["renewTime"] for lease in leases}

    first = renewals()
    assert set(first) == set(NODES)
    later = wait_for(lambda: (r := renewals()) and all(r[n] != first[n] for n in NODES) and r, timeout=25,
                     what="every node's Lease to be renewed")
    now = datetime.datetime.now(datetime.timezone.utc)
    ages = [(now - datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))).total_seconds() for t in later.values()]
    assert all(age < 15 for age in ages), later


ZONED = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: zoned}
spec:
  serviceName: zoned
  replicas: 3
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: zoned}}
  template:
    metadata: {labels: {app: zoned}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            - {labelSelector: {matchLabels: {app: zoned}}, topologyKey: topology.kubernetes.io/zone}
      containers:
        - {name: main, image: busybox, command: ["sleep", "3600"]}
"""


def test_zone_anti_affinity_puts_three_pods_in_three_zones_and_a_fourth_waits(bed, ns):
    ns.apply(ZONED)
    pods = wait_for(lambda: (p := ns.pods("app=zoned")) and len(p) == 3 and all(ready(x) for x in p) and p,
                    what="three ready pods")
    labels = node_labels(bed)
    assert sorted(labels[p["spec"]["nodeName"]][ZONE] for p in pods) == ["zone-a", "zone-b", "zone-c"]
    ns.kubectl("scale", "statefulset", "zoned", "--replicas=4")
    pending = ns.wait_pod("zoned-3", lambda p: any(c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable"
                                                   for c in p["status"].get("conditions") or []), "to be unschedulable")
    assert not pending["spec"].get("nodeName")
    events = [e["message"] for e in ns.events("zoned-3") if e["reason"] == "FailedScheduling"]
    assert events == ["0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."]
    ns.delete("statefulset", "zoned")


SPREAD = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 4
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      containers:
        - {name: main, image: busybox, command: ["sleep", "3600"]}
"""

TAINTED = """
apiVersion: v1
kind: Pod
metadata: {name: NAME}
spec:
  nodeSelector: {kubernetes.io/hostname: testbed-node-1}
  TOLERATIONS
  containers:
    - {name: main, image: busybox, command: ["sleep", "3600"]}
"""


def test_a_cordoned_node_gets_no_new_pod_and_taints_keep_out_pods_without_tolerations(bed, ns):
    with cordoned(bed, "testbed-node-0"):
        ns.apply(SPREAD)
        pods = wait_for(lambda: (p := ns.pods("app=spread")) and len(p) == 4 and all(ready(x) for x in p) and p,
                        what="four ready pods")
        assert {p["spec"]["nodeName"] for p in pods} == {"testbed-node-1", "testbed-node-2"}
    ns.delete("deployment", "spread", wait=False)

    bed.kubectl("taint", "nodes", "testbed-node-1", "dedicated=kafka:NoSchedule")
    try:
        ns.apply(TAINTED.replace("NAME", "intolerant").replace("TOLERATIONS", ""))
        ns.apply(TAINTED.replace("NAME", "tolerant").replace(
            "TOLERATIONS", "tolerations: [{key: dedicated, operator: Equal, value: kafka, effect: NoSchedule}]"))
        tolerant = ns.wait_pod("tolerant", ready, "to be ready on the tainted node")
        assert tolerant["spec"]["nodeName"] == "testbed-node-1"
        message = wait_for(lambda: next((e["message"] for e in ns.events("intolerant")
                                         if e["reason"] == "FailedScheduling"), None), what="FailedScheduling")
        assert "1 node(s) had untolerated taint {dedicated: kafka}" in message, message
        assert "2 node(s) didn't match Pod's node affinity/selector" in message, message
        assert not ns.pod("intolerant")["spec"].get("nodeName")
    finally:
        bed.kubectl("taint", "nodes", "testbed-node-1", "dedicated=kafka:NoSchedule-")


IDENTITY = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: node-reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: NS-node-reader}
rules: [{apiGroups: [""], resources: [nodes], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: NS-node-reader}
subjects: [{kind: ServiceAccount, name: node-reader, namespace: NS}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: NS-node-reader}
---
apiVersion: v1
kind: Pod
metadata: {name: where-am-i}
spec:
  serviceAccountName: node-reader
  restartPolicy: Never
  containers:
    - name: main
      image: python:3
      env:
        - {name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
        - {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
      args:
        - -c
        - |
          import json, os, ssl, urllib.request
          sa = "/var/run/secrets/kubernetes.io/serviceaccount"
          ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
          url = "https://%s:%s/api/v1/nodes/%s" % (
              os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"], os.environ["NODE_NAME"])
          request = urllib.request.Request(url, headers={"Authorization": "Bearer " + open(sa + "/token").read()})
          node = json.load(urllib.request.urlopen(request, context=ctx))
          print(os.environ["NODE_NAME"], os.environ["HOST_IP"], node["metadata"]["labels"]["topology.kubernetes.io/zone"])
"""


def test_a_pod_reads_its_node_from_the_downward_api_and_the_zone_from_the_api(bed, ns):
    ns.apply(IDENTITY.replace("NS", ns.name))
    pod = ns.wait_pod("where-am-i", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), "to finish")
    assert pod["status"]["phase"] == "Succeeded", ns.log(pod, "main")
    node = pod["spec"]["nodeName"]
    addresses = json.loads(bed.kubectl("get", "node", node, "-o", "json"))["status"]["addresses"]
    internal = next(a["address"] for a in addresses if a["type"] == "InternalIP")
    assert ns.log(pod, "main").split() == [node, internal, node_labels(bed)[node][ZONE]]
    assert pod["status"]["hostIP"] == internal


DRAINED = """
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: drained}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: drained}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: drained}
spec:
  serviceName: drained
  replicas: 2
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: drained}}
  template:
    metadata: {labels: {app: drained}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
        - name: main
          image: busybox
          # Two seconds of shutdown keep an evicted pod visible while it terminates.
          command: ["sh", "-c", "trap 'sleep 2; exit 0' TERM; while true; do sleep 0.2; done"]
          readinessProbe: {exec: {command: ["true"]}, initialDelaySeconds: 3, periodSeconds: 1}
"""


class Recorder:
    """Snapshots of a label's pods, (time, [pod]), taken in a thread."""

    def __init__(self, ns, selector):
        self.ns, self.selector = ns, selector
        self.snapshots = []
        self.running = True
        self.thread = threading.Thread(target=self.record, daemon=True)
        self.thread.start()

    def record(self):
        while self.running:
            self.snapshots.append((time.time(), self.ns.pods(self.selector)))
            time.sleep(0.2)

    def stop(self):
        self.running = False
        self.thread.join()


def test_drain_evicts_through_the_api_and_a_budget_of_one_waits_for_the_replacement(bed, ns):
    with cordoned(bed, "testbed-node-1", "testbed-node-2"):
        ns.apply(DRAINED)
        originals = wait_for(lambda: (p := ns.pods("app=drained")) and len(p) == 2 and all(ready(x) for x in p) and p,
                             what="two ready pods on testbed-node-0")
    assert {p["spec"]["nodeName"] for p in originals} == {"testbed-node-0"}
    wait_for(lambda: json.loads(ns.kubectl("get", "pdb", "drained", "-o", "json"))["status"].get("disruptionsAllowed") == 1,
             what="the budget to allow one disruption")
    recorder = Recorder(ns, "app=drained")
    try:
        drain = bed.kubectl_run("drain", "testbed-node-0", "--ignore-daemonsets", "--delete-emptydir-data",
                                "--timeout=120s")
        assert drain.returncode == 0, drain.stderr
        final = wait_for(lambda: (p := ns.pods("app=drained")) and len(p) == 2 and all(ready(x) for x in p) and p,
                         what="both pods ready again")
    finally:
        recorder.stop()
        bed.kubectl("uncordon", "testbed-node-0")
    assert all(p["spec"]["nodeName"] != "testbed-node-0" for p in final)
    assert "Cannot evict pod as it would violate the pod's disruption budget" in drain.stderr, drain.stderr

    original_uids = {p["metadata"]["uid"] for p in originals}
    evicted_at = {}
    for at, pods in recorder.snapshots:
        for p in pods:
            if p["metadata"]["uid"] in original_uids and p["metadata"].get("deletionTimestamp"):
                evicted_at.setdefault(p["metadata"]["name"], at)
        available = [p for p in pods if ready(p) and not p["metadata"].get("deletionTimestamp")]
        assert available, "the budget kept one pod available throughout"
    first, second = sorted(evicted_at, key=evicted_at.get)
    replacement_ready = min(at for at, pods in recorder.snapshots for p in pods
                            if p["metadata"]["name"] == first and p["metadata"]["uid"] not in original_uids and ready(p))
    assert evicted_at[second] >= replacement_ready, "the second eviction waited for the first pod to be Ready elsewhere"
