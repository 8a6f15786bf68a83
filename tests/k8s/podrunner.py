"""The test bed's kubelets and scheduler: registers N Nodes in zones, binds pending pods
to them and runs their containers as local processes.

Nodes: `testbed-node-<i>` in zone `zone-a`, `zone-b`, `zone-c` (round robin), each with
an InternalIP 10.240.0.(10+i), a podCIDR 10.244.<i>.0/24, a Ready condition and a Lease
renewed every 10 s. All of them are this one process, and all pods share the test bed's
network namespace: a node is a name, a zone label and an address range, not an isolation
boundary.

Pods: scheduler.py picks the node; podspec.py refuses or reports what is not
implemented. Each pod gets an address from its node's range, its own HOME (an empty
directory), /etc/hosts and /etc/resolv.conf, and each container runs its
`command`/`args` (IMAGES maps images to local programs) in mount and UTS namespaces of its
own, where the pod's volumes are bind-mounted, the hostname is set and, with
readOnlyRootFilesystem, everything but the volumes is remounted read-only; `setpriv`
applies runAsUser/runAsGroup/groups/capabilities. Init containers run to completion in
order first. httpGet, tcpSocket and exec probes (startup, readiness, liveness) and
postStart/preStop hooks (exec, httpGet, sleep) run in worker threads, exec ones through
`nsenter` into the container's namespaces. Exits restart with backoff (1 s doubling to
20 s, back to 1 s after a minute of running). Deletion runs preStop, sends the stop
signal, waits out the grace period, kills, and removes the pod object.

Also here: the hostPath provisioner (provisioner.py), and cluster DNS plus the Service
proxy (network.py), fed from Services and EndpointSlices.

Runs inside the test bed's network namespace:
    python3 podrunner.py --pki DIR --api-port PORT --state DIR [--nodes N] [--image NAME=PROGRAM]
"""

import argparse
import base64
import concurrent.futures
import datetime
import json
import math
import os
import shlex
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import network  # noqa: E402
import podspec  # noqa: E402
import scheduler  # noqa: E402
from kubeapi import ApiError, Kube, parse_quantity  # noqa: E402
from provisioner import Provisioner  # noqa: E402

NODE_PREFIX = "testbed-node-"
ZONES = ["zone-a", "zone-b", "zone-c"]
DNS_ADDRESS = "10.96.0.10"
CAPACITY = {"cpu": "2", "memory": "24Gi", "ephemeral-storage": "100Gi", "pods": "110"}
BACKOFF_START = 1.0
BACKOFF_MAX = 20.0
# A container that ran this long restarts from BACKOFF_START again (the kubelet: 10 min).
BACKOFF_RESET = 60.0
HEARTBEAT = 10.0
COMPONENT = "testbed-runner"
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The first line of a container's setup script, by which a process still in setup is known.
SETUP_MARK = "# testbed container setup"

# image (without registry and tag) -> program run when the container gives no command;
# extend with --image NAME=PROGRAM. A program is looked up on the pod's PATH: the --bin
# directories (our binaries, the test bed's etcd), then the standard ones.
IMAGES = {
    "python": ["python3"],
    "busybox": ["sh"],
    "etcd": ["etcd"],
    "runnel": ["runnel-broker"],
    "runnel-broker": ["runnel-broker"],
}


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def log(*parts):
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


class NotReady(Exception):
    """A container or pod cannot start yet; `reason` is its waiting reason."""

    def __init__(self, message, reason="ContainerCreating"):
        super().__init__(message)
        self.reason = reason


class Backoff:
    """Restart delays: BACKOFF_START doubling to BACKOFF_MAX, reset by a long run."""

    def __init__(self, start=BACKOFF_START, cap=BACKOFF_MAX, reset_after=BACKOFF_RESET):
        self.start, self.cap, self.reset_after = start, cap, reset_after
        self.delay = start

    def next_delay(self, ran_for):
        if ran_for >= self.reset_after:
            self.delay = self.start
        delay = self.delay
        self.delay = min(self.delay * 2, self.cap)
        return delay


class Probe:
    def __init__(self, spec, now):
        self.spec = spec
        self.due = now + spec.get("initialDelaySeconds", 0)
        self.future = None
        self.successes = 0
        self.failures = 0


class Stop:
    """A container being stopped: preStop, then the stop signal, then SIGKILL."""

    def __init__(self, grace, hook):
        self.deadline = time.time() + grace
        self.hook = hook
        self.signalled = False
        self.kill_at = None


class Container:
    def __init__(self, spec, init=False):
        self.spec = spec
        self.name = spec["name"]
        self.init = init
        self.process = None
        self.env = None
        self.security = None
        self.restarts = 0
        self.backoff = Backoff()
        self.next_start = 0.0
        self.began = 0.0
        self.started_at = None
        self.last_exit = None
        self.done = False  # exited and will not run again
        self.waiting = None  # (reason, message) while it cannot start
        self.ready = False
        self.started = False  # startup probe passed and postStart finished
        self.post_start = None  # the postStart handler until it is submitted, then its Future
        self.probes = {}
        self.stop = None
        self.ready_for_exec = False

    def running(self):
        return self.process is not None and self.process.poll() is None

    def set_up(self):
        """Whether the container's namespaces are ready (mounts, hostname), i.e. its setup
        script has exec'd the program: only then may exec handlers enter them."""
        if self.ready_for_exec:
            return True
        try:
            cmdline = Path(f"/proc/{self.process.pid}/cmdline").read_bytes()
        except OSError:
            return False
        self.ready_for_exec = not cmdline.startswith(b"unshare\0") and SETUP_MARK.encode() not in cmdline
        return self.ready_for_exec


class LocalPod:
    def __init__(self, pod, node, ip, root):
        meta = pod["metadata"]
        self.uid, self.namespace, self.name = meta["uid"], meta["namespace"], meta["name"]
        self.node, self.ip, self.root = node, ip, root
        self.pod = pod
        self.inits = [Container(c, init=True) for c in pod["spec"].get("initContainers") or []]
        self.containers = [Container(c) for c in pod["spec"]["containers"]]
        self.refused = None
        self.volumes = None
        self.waiting = None
        self.terminating = False
        self.failed = None  # (reason, message) of a pod that failed as a whole
        self.admitted = time.time()
        self.last_status = None
        self.transitions = {}
        self.made = set()  # host paths the runner created for this pod's mounts

    def all_containers(self):
        return self.inits + self.containers

    def initialized(self):
        return all(c.done and c.last_exit and c.last_exit["exitCode"] == 0 for c in self.inits)


class Node:
    def __init__(self, index):
        self.index = index
        self.name = f"{NODE_PREFIX}{index}"
        self.zone = ZONES[index % len(ZONES)]
        self.ip = f"10.240.0.{10 + index}"
        self.free_ips = [f"10.244.{index}.{n}" for n in range(2, 255)]


class Runner:
    def __init__(self, kube, args):
        self.kube = kube
        self.state = Path(args.state)
        self.extra_bin = args.bin
        self.api_port = args.api_port
        self.images = dict(IMAGES)
        for item in args.image:
            name, _, program = item.partition("=")
            self.images[name] = shlex.split(program)
        self.nodes = {n.name: n for n in (Node(i) for i in range(args.nodes))}
        self.pods = {}
        self.stopping = False
        self.last_heartbeat = 0.0
        self.last_network = 0.0
        self.last_storage = 0.0
        self.services = []
        self.unschedulable = {}
        self.sent_events = set()
        self.errors = {}
        self.made = {}  # mount points the runner created on the host -> uids of the pods using them
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="check")
        self.dns = network.Dns(DNS_ADDRESS)
        self.proxy = network.Proxy(log)
        self.provisioner = Provisioner(kube, self.state.parent / "volumes", self.event)
        self.read_only_mounts = read_only_mount_points()
        self.path = f"{self.extra_bin}:{STANDARD_PATH}" if self.extra_bin else STANDARD_PATH
        if shutil.which("python3", path=STANDARD_PATH) is None:
            self.path += f":{os.path.dirname(sys.executable)}"

    # --- nodes -----------------------------------------------------------------------
    def register(self):
        for node in self.nodes.values():
            body = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": node.name,
                    "labels": {
                        "kubernetes.io/hostname": node.name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "topology.kubernetes.io/zone": node.zone,
                        "topology.kubernetes.io/region": "testbed",
                    },
                },
                "spec": {"podCIDR": f"10.244.{node.index}.0/24", "podCIDRs": [f"10.244.{node.index}.0/24"]},
            }
            try:
                self.kube.post("/api/v1/nodes", body)
            except ApiError as e:
                if e.status != 409:
                    raise
        self.heartbeat()

    def heartbeat(self):
        for node in self.nodes.values():
            status = {
                "status": {
                    "capacity": CAPACITY,
                    "allocatable": CAPACITY,
                    "addresses": [{"type": "InternalIP", "address": node.ip},
                                  {"type": "Hostname", "address": node.name}],
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "message": "the test bed's pod runner is running",
                            "lastHeartbeatTime": now_iso(),
                            "lastTransitionTime": self.started_at,
                        }
                    ],
                    "nodeInfo": {"kubeletVersion": "testbed", "operatingSystem": "linux", "architecture": "amd64",
                                 "containerRuntimeVersion": "testbed://local-processes"},
                }
            }
            self.kube.patch_status(f"/api/v1/nodes/{node.name}/status", status)
            path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node.name}"
            lease = self.kube.get_or_none(path)
            if lease is None:
                self.kube.post(
                    "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                    {"metadata": {"name": node.name},
                     "spec": {"holderIdentity": node.name, "leaseDurationSeconds": 40, "renewTime": now_micro()}},
                )
            else:
                lease["spec"]["renewTime"] = now_micro()
                self.kube.put(path, lease)
        self.last_heartbeat = time.time()

    # --- the loop --------------------------------------------------------------------
    def run(self):
        self.started_at = now_iso()
        self.register()
        while not self.stopping:
            self.tick()
            time.sleep(0.2)
        for local in list(self.pods.values()):
            self.kill_now(local)
            self.release(local)

    def attempt(self, what, fn, *args):
        """Runs one step of a tick; a failure (an API hiccup, a bug tripped by one object)
        is logged, once a minute per distinct error, and the other steps go on."""
        try:
            fn(*args)
            return True
        except Exception as e:
            key = (what, repr(e))
            if time.time() - self.errors.get(key, 0) > 60:
                self.errors[key] = time.time()
                log(f"{what} failed:", repr(e))
            return False

    def tick(self):
        now = time.time()
        if now - self.last_heartbeat > HEARTBEAT:
            self.attempt("heartbeat", self.heartbeat)
        if now - self.last_network > 0.5:
            self.attempt("network", self.update_network)
            self.last_network = now
        if now - self.last_storage > 1.0:
            self.attempt("storage", self.update_storage)
            self.last_storage = now
        pods = []
        if not self.attempt("listing pods", lambda: pods.extend(self.kube.get("/api/v1/pods")["items"])):
            return
        pending = [p for p in pods if not p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp")
                   and p["spec"].get("schedulerName", "default-scheduler") == "default-scheduler"]
        if pending:
            self.attempt("scheduling", self.schedule, pending, pods)
        seen = set()
        for pod in pods:
            if pod["spec"].get("nodeName") in self.nodes:
                seen.add(pod["metadata"]["uid"])
                self.attempt(f"pod {pod['metadata']['namespace']}/{pod['metadata']['name']}", self.handle, pod)
        for uid in [u for u in self.pods if u not in seen]:
            local = self.pods.pop(uid)
            self.kill_now(local)
            self.release(local)

    def update_storage(self):
        claims = self.kube.get("/api/v1/persistentvolumeclaims")["items"]
        volumes = self.kube.get("/api/v1/persistentvolumes")["items"]
        self.provisioner.reconcile(claims, volumes)

    # --- scheduling --------------------------------------------------------------------
    def schedule(self, pending, pods):
        nodes = self.kube.get("/api/v1/nodes")["items"]
        ours = [n for n in nodes if n["metadata"]["name"] in self.nodes]
        placed = [p for p in pods if p["spec"].get("nodeName")
                  and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        namespaces = {}
        if any("namespaceSelector" in json.dumps(p["spec"].get("affinity") or {}) for p in pending + placed):
            namespaces = {n["metadata"]["name"]: n["metadata"].get("labels") or {}
                          for n in self.kube.get("/api/v1/namespaces")["items"]}
        cluster = scheduler.Cluster(ours, placed, namespaces)
        for pod in sorted(pending, key=lambda p: p["metadata"]["creationTimestamp"]):
            try:
                selectors = self.volume_selectors(pod)
                node, message = scheduler.schedule(pod, cluster, selectors)
            except NotReady as e:
                node, message = None, str(e)
            if node is None:
                self.unschedulable_pod(pod, message)
                continue
            if self.bind(pod, node):
                cluster.place(pod, node)

    def volume_selectors(self, pod):
        """The node selectors of the pod's bound volumes; NotReady while a claim is unbound."""
        selectors = []
        ns = pod["metadata"]["namespace"]
        for v in pod["spec"].get("volumes") or []:
            name = claim_name(pod, v)
            if name is None:
                continue
            pvc = self.kube.get_or_none(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}")
            if pvc is None:
                raise NotReady(f'persistentvolumeclaim "{name}" not found')
            if (pvc.get("status") or {}).get("phase") != "Bound":
                raise NotReady("pod has unbound immediate PersistentVolumeClaims")
            pv = self.kube.get_or_none(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}")
            required = (((pv or {}).get("spec") or {}).get("nodeAffinity") or {}).get("required")
            if required:
                selectors.append(required)
        return selectors

    def unschedulable_pod(self, pod, message):
        meta = pod["metadata"]
        if self.unschedulable.get(meta["uid"]) == message:
            return
        self.unschedulable[meta["uid"]] = message
        self.event("Pod", pod, "Warning", "FailedScheduling", message)
        condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                     "lastTransitionTime": now_iso()}
        try:
            self.kube.patch_strategic(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                                      {"status": {"conditions": [condition]}})
        except ApiError as e:
            if e.status != 404:
                raise

    def bind(self, pod, node):
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            self.kube.post(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", body)
        except ApiError as e:
            if e.status in (404, 409):
                return False
            raise
        self.unschedulable.pop(meta["uid"], None)
        self.event("Pod", pod, "Normal", "Scheduled",
                   f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}")
        log("bound", meta["namespace"], meta["name"], node)
        return True

    # --- pods ----------------------------------------------------------------------------
    def handle(self, pod):
        meta = pod["metadata"]
        local = self.pods.get(meta["uid"])
        if local is None:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return
            node = self.nodes[pod["spec"]["nodeName"]]
            if not node.free_ips:
                return
            local = LocalPod(pod, node, node.free_ips.pop(0), self.state / "pods" / meta["uid"])
            self.pods[meta["uid"]] = local
            self.admit(local)
        local.pod = pod
        if meta.get("deletionTimestamp"):
            self.terminate(local)
            return
        if local.refused is None and local.failed is None:
            self.run_pod(local)
        elif local.failed is not None:
            self.wind_down(local)
        self.update_status(local)

    def admit(self, local):
        pod = local.pod
        log("admitted", local.namespace, local.name, local.node.name, local.ip)
        review = podspec.review(pod)
        if review.ignored:
            self.event("Pod", pod, "Warning", "Ignored",
                       "the test bed ignores: " + "; ".join(review.ignored))
        if review.refused:
            local.refused = "; ".join(review.refused)
            self.event("Pod", pod, "Warning", podspec.UNSUPPORTED, "the test bed cannot run this pod: " + local.refused)
            log("refused", local.namespace, local.name, local.refused)
        for d in (local.root, local.root / "home", local.root / "etc", local.root / "bin"):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o755)
        os.chmod(local.root / "home", 0o1777)
        self.write_pod_files(local)

    def run_pod(self, local):
        if local.volumes is None:
            try:
                local.volumes = self.prepare(local)
                local.waiting = None
            except NotReady as e:
                if local.waiting != (e.reason, str(e)):
                    self.event("Pod", local.pod, "Warning", "FailedMount", str(e))
                local.waiting = (e.reason, str(e))
                return
        deadline = local.pod["spec"].get("activeDeadlineSeconds")
        if deadline is not None and time.time() - local.admitted > deadline:
            self.fail_pod(local, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
            return
        if not local.initialized():
            self.run_inits(local)
            return
        for c in local.containers:
            self.supervise(local, c)

    def wind_down(self, local):
        """A failed pod's containers: stopped (preStop, signal, grace), exits recorded."""
        for c in local.all_containers():
            if c.running():
                self.advance_stop(c)
            elif c.process is not None:
                self.exited(local, c)

    def fail_pod(self, local, reason, message):
        local.failed = (reason, message)
        self.event("Pod", local.pod, "Warning", reason, message)
        grace = local.pod["spec"].get("terminationGracePeriodSeconds", 30)
        for c in local.all_containers():
            c.done = True
            if c.running() and c.stop is None:
                self.begin_stop(local, c, grace)

    def run_inits(self, local):
        policy = local.pod["spec"].get("restartPolicy", "Always")
        for c in local.inits:
            if c.done and c.last_exit and c.last_exit["exitCode"] == 0:
                continue
            if c.process is not None and c.process.poll() is not None:
                code = self.exited(local, c)
                if code == 0:
                    c.done = True
                    continue
                if policy == "Never":
                    c.done = True
                    self.fail_pod(local, "Failed", f"init container {c.name} exited with {code}")
                    return
                c.restarts += 1
                c.next_start = time.time() + c.backoff.next_delay(time.time() - c.began)
            if c.process is None and time.time() >= c.next_start:
                self.try_start(local, c)
            return

    def supervise(self, local, c):
        policy = local.pod["spec"].get("restartPolicy", "Always")
        if c.process is not None and c.process.poll() is not None:
            code = self.exited(local, c)
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                c.done = True
            else:
                c.restarts += 1
                c.next_start = time.time() + c.backoff.next_delay(time.time() - c.began)
        if c.done:
            return
        if c.process is None:
            if time.time() >= c.next_start:
                self.try_start(local, c)
            return
        if c.stop is not None:
            self.advance_stop(c)
            return
        self.check_health(local, c)

    def exited(self, local, c):
        code = c.process.returncode
        if code < 0:
            code = 128 - code  # killed by a signal, as a runtime reports it
        c.last_exit = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                       "startedAt": c.started_at, "finishedAt": now_iso(), "containerID": f"testbed://{c.process.pid}"}
        log("exited", local.namespace, local.name, c.name, code)
        c.process = None
        c.ready = c.started = False
        c.stop = None
        c.post_start = None
        return code

    def try_start(self, local, c):
        try:
            self.start(local, c)
            c.waiting = None
        except NotReady as e:
            if c.waiting != (e.reason, str(e)):
                self.event("Pod", local.pod, "Warning", "Failed", f"container {c.name}: {e}")
            c.waiting = (e.reason, str(e))
            c.next_start = time.time() + 1

    # --- volumes -----------------------------------------------------------------------------
    def prepare(self, local):
        """The host directory or file behind each volume, {name: (path, read_only)}."""
        pod, ns = local.pod, local.namespace
        vols = local.root / "volumes"
        vols.mkdir(parents=True, exist_ok=True)
        os.chmod(vols, 0o755)
        fs_group = (pod["spec"].get("securityContext") or {}).get("fsGroup")
        sources = {}
        for v in pod["spec"].get("volumes") or []:
            target, read_only, owned = vols / v["name"], False, True
            if "emptyDir" in v:
                target.mkdir(exist_ok=True)
                os.chmod(target, 0o777)
            elif "configMap" in v:
                src = v["configMap"]
                data = self.configmap(ns, src["name"], src.get("optional"))
                self.write_keys(target, data, src.get("items"), src.get("defaultMode", 0o644))
            elif "secret" in v:
                src = v["secret"]
                data = self.secret(ns, src["secretName"], src.get("optional"))
                self.write_keys(target, data, src.get("items"), src.get("defaultMode", 0o644))
            elif "projected" in v:
                self.projected(local, target, v["projected"])
            elif "downwardAPI" in v:
                src = v["downwardAPI"]
                self.downward(local, target, src.get("items") or [], src.get("defaultMode", 0o644))
            elif "persistentVolumeClaim" in v or "ephemeral" in v:
                target = self.claim(ns, claim_name(pod, v))
                read_only = bool((v.get("persistentVolumeClaim") or {}).get("readOnly"))
            elif "hostPath" in v:
                target, owned = self.host_path(v["hostPath"]), False
            else:
                raise NotReady(f"volume {v['name']}: unsupported type", podspec.UNSUPPORTED)
            if fs_group is not None and owned:
                give_group(target, fs_group)
            sources[v["name"]] = (target, read_only)
        return sources

    @staticmethod
    def host_path(source):
        path, kind = Path(source["path"]), source.get("type", "")
        if kind in ("", "DirectoryOrCreate"):
            path.mkdir(parents=True, exist_ok=True)
        elif kind == "FileOrCreate":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=True)
        else:
            checks = {"Directory": os.path.isdir, "File": os.path.isfile, "Socket": is_socket,
                      "CharDevice": is_char_device, "BlockDevice": is_block_device}
            if not checks.get(kind, os.path.exists)(path):
                raise NotReady(f"hostPath type check failed: {path} is not a {kind}")
        return path

    def configmap(self, ns, name, optional=False):
        cm = self.kube.get_or_none(f"/api/v1/namespaces/{ns}/configmaps/{name}")
        if cm is None:
            if optional:
                return {}
            raise NotReady(f'configmap "{name}" not found')
        data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
        return data

    def secret(self, ns, name, optional=False):
        s = self.kube.get_or_none(f"/api/v1/namespaces/{ns}/secrets/{name}")
        if s is None:
            if optional:
                return {}
            raise NotReady(f'secret "{name}" not found')
        return {k: base64.b64decode(v) for k, v in (s.get("data") or {}).items()}

    @staticmethod
    def write_keys(target, data, items, mode):
        target.mkdir(parents=True, exist_ok=True)
        chosen = [(i["key"], i.get("path", i["key"]), i.get("mode", mode)) for i in items] if items else [
            (k, k, mode) for k in data]
        for key, path, file_mode in chosen:
            if key not in data:
                if items:
                    raise NotReady(f"key {key} not found")
                continue
            out = target / path
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data[key])
            os.chmod(out, file_mode)

    def projected(self, local, target, projected):
        target.mkdir(parents=True, exist_ok=True)
        pod, ns = local.pod, local.namespace
        mode = projected.get("defaultMode", 0o644)
        for source in projected.get("sources") or []:
            if "serviceAccountToken" in source:
                sat = source["serviceAccountToken"]
                account = pod["spec"].get("serviceAccountName", "default")
                request = {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenRequest",
                    "spec": {
                        "expirationSeconds": sat.get("expirationSeconds", 3607),
                        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": local.name, "uid": local.uid},
                    },
                }
                if sat.get("audience"):
                    request["spec"]["audiences"] = [sat["audience"]]
                token = self.kube.post(f"/api/v1/namespaces/{ns}/serviceaccounts/{account}/token", request)
                out = target / sat["path"]
                out.write_text(token["status"]["token"])
                os.chmod(out, mode)
            elif "configMap" in source:
                src = source["configMap"]
                self.write_keys(target, self.configmap(ns, src["name"], src.get("optional")), src.get("items"), mode)
            elif "secret" in source:
                src = source["secret"]
                self.write_keys(target, self.secret(ns, src["name"], src.get("optional")), src.get("items"), mode)
            elif "downwardAPI" in source:
                self.downward(local, target, source["downwardAPI"].get("items") or [], mode)

    def downward(self, local, target, items, mode):
        target.mkdir(parents=True, exist_ok=True)
        for item in items:
            if "fieldRef" in item:
                value = field(local.pod, item["fieldRef"]["fieldPath"], local, volume=True)
            else:
                value = resource_field(local.pod, item["resourceFieldRef"], None)
            out = target / item["path"]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(value)
            os.chmod(out, item.get("mode", mode))

    def claim(self, ns, name):
        pvc = self.kube.get_or_none(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}")
        if pvc is None or (pvc.get("status") or {}).get("phase") != "Bound":
            raise NotReady(f'persistentvolumeclaim "{name}" is not bound')
        pv = self.kube.get(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}")
        path = (pv["spec"].get("hostPath") or pv["spec"].get("local") or {}).get("path")
        if not path:
            raise NotReady(f"persistentvolume {pv['metadata']['name']} is neither hostPath nor local",
                           podspec.UNSUPPORTED)
        Path(path).mkdir(parents=True, exist_ok=True)
        return Path(path)

    # --- environment ------------------------------------------------------------------------
    def environment(self, local, spec):
        pod, ns = local.pod, local.namespace
        env = {"PATH": self.path, "HOSTNAME": pod_hostname(pod), "HOME": str(local.root / "home")}
        kubernetes = next((s for s in self.services if s["metadata"]["namespace"] == "default"
                           and s["metadata"]["name"] == "kubernetes"), None)
        links = [kubernetes] if kubernetes else []
        if pod["spec"].get("enableServiceLinks", True):
            links += [s for s in self.services if s["metadata"]["namespace"] == ns and s is not kubernetes]
        for svc in links:
            env.update(service_link_env(svc))
        for source in spec.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                ref = source["configMapRef"]
                data = self.configmap(ns, ref["name"], ref.get("optional"))
            else:
                ref = source["secretRef"]
                data = self.secret(ns, ref["name"], ref.get("optional"))
            env.update({prefix + k: v.decode(errors="replace") for k, v in data.items()})
        for item in spec.get("env") or []:
            name = item["name"]
            if "valueFrom" not in item:
                env[name] = expand(item.get("value", ""), env)
                continue
            ref = item["valueFrom"]
            if "fieldRef" in ref:
                env[name] = field(pod, ref["fieldRef"]["fieldPath"], local)
            elif "resourceFieldRef" in ref:
                env[name] = resource_field(pod, ref["resourceFieldRef"], spec["name"])
            elif "configMapKeyRef" in ref:
                key = ref["configMapKeyRef"]
                data = self.configmap(ns, key["name"], key.get("optional"))
                if key["key"] in data:
                    env[name] = data[key["key"]].decode(errors="replace")
                elif not key.get("optional"):
                    raise NotReady(f'couldn\'t find key {key["key"]} in ConfigMap {ns}/{key["name"]}',
                                   podspec.CONFIG_ERROR)
            elif "secretKeyRef" in ref:
                key = ref["secretKeyRef"]
                data = self.secret(ns, key["name"], key.get("optional"))
                if key["key"] in data:
                    env[name] = data[key["key"]].decode(errors="replace")
                elif not key.get("optional"):
                    raise NotReady(f'couldn\'t find key {key["key"]} in Secret {ns}/{key["name"]}',
                                   podspec.CONFIG_ERROR)
        return env

    # --- processes ----------------------------------------------------------------------------
    def argv(self, spec, env):
        image = spec.get("image", "").split("@")[0].rsplit("/", 1)[-1].split(":")[0]
        command = [expand(a, env) for a in spec.get("command") or []]
        args = [expand(a, env) for a in spec.get("args") or []]
        if not command:
            if image not in self.images:
                raise NotReady(f"image {spec.get('image')} has no local program and the container no command",
                               podspec.UNSUPPORTED)
            command = list(self.images[image])
        program = shutil.which(command[0], path=env["PATH"]) or command[0]
        return [program, *command[1:], *args]

    def mounts(self, local, c, env):
        out = []
        for m in c.spec.get("volumeMounts") or []:
            src, read_only = local.volumes[m["name"]]
            sub = m.get("subPath") or expand(m.get("subPathExpr", ""), env)
            if sub:
                src = src / sub
                if not src.exists():
                    src.mkdir(parents=True)
                    os.chmod(src, 0o777)
            out.append((str(src), m["mountPath"], read_only or bool(m.get("readOnly"))))
        return out

    def make_mount_point(self, local, path, is_dir):
        """Creates a missing mount point (or working directory) on the host, where a bind
        mount needs it, and notes what it created so that the last pod relying on it
        removes it again (`release`)."""
        missing, p = [], Path(path)
        while not os.path.lexists(p):
            missing.append(p)
            p = p.parent
        for i, q in enumerate(reversed(missing)):
            try:
                if i == len(missing) - 1 and not is_dir:
                    q.touch()
                else:
                    q.mkdir()
            except OSError:
                break
            self.made.setdefault(str(q), set())
        p = Path(path)
        while p != p.parent:
            if str(p) in self.made:
                self.made[str(p)].add(local.uid)
                local.made.add(str(p))
            p = p.parent

    def forget_mount_points(self, local):
        # Deepest first; only what is still empty, and only once no pod relies on it.
        for path in sorted(local.made, key=len, reverse=True):
            users = self.made.get(path)
            if users is None:
                continue
            users.discard(local.uid)
            if users:
                continue
            del self.made[path]
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    os.rmdir(path)
                elif os.path.getsize(path) == 0:
                    os.unlink(path)
            except OSError:
                pass
        local.made.clear()

    def start(self, local, c):
        sec = podspec.security(local.pod, c.spec)
        if isinstance(sec, str):
            raise NotReady(sec, podspec.CONFIG_ERROR)
        env = self.environment(local, c.spec)
        argv = self.argv(c.spec, env)
        mounts = self.mounts(local, c, env)
        script = [SETUP_MARK, "set -e", f"echo {shlex.quote(pod_hostname(local.pod))} > /proc/sys/kernel/hostname"]
        for name in ("hosts", "resolv.conf"):
            script.append(f"mount --bind {shlex.quote(str(local.root / 'etc' / name))} /etc/{name}")
        for src, dst, read_only in mounts:
            self.make_mount_point(local, dst, os.path.isdir(src))
            q_src, q_dst = shlex.quote(src), shlex.quote(dst)
            # Again inside the namespace: a mount point may lie inside an earlier volume.
            if os.path.isdir(src):
                script.append(f"mkdir -p {q_dst}")
            else:
                script.append(f"mkdir -p $(dirname {q_dst}) && touch {q_dst}")
            script.append(f"mount --bind {q_src} {q_dst}")
            if read_only:
                script.append(f"mount -o remount,bind,ro {q_dst}")
        if sec["uid"] not in (None, 0) and os.path.isabs(argv[0]) and not reachable_by_others(argv[0]):
            # The program lives under a directory the user cannot enter (/root/...): show
            # it to the container at a path it can reach.
            shown = local.root / "bin" / os.path.basename(argv[0])
            shown.touch()
            script.append(f"mount --bind {shlex.quote(argv[0])} {shlex.quote(str(shown))}")
            argv[0] = str(shown)
        workdir = c.spec.get("workingDir") or str(local.root)
        self.make_mount_point(local, workdir, True)
        script.append(f"mkdir -p {shlex.quote(workdir)}")
        if sec["read_only_root"]:
            for point in self.read_only_mounts:
                script.append(f"mount -o remount,bind,ro {shlex.quote(point)}")
        script.append(f"cd {shlex.quote(workdir)}")
        script.append('exec "$@"')
        out = open(local.root / f"{c.name}.log", "ab")
        c.process = subprocess.Popen(
            ["unshare", "--mount", "--uts", "--propagation", "private", "--", "sh", "-c", "\n".join(script), "pod",
             *podspec.setpriv_args(sec), *argv],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        c.env, c.security = env, sec
        c.ready_for_exec = False
        c.began = time.time()
        c.started_at = now_iso()
        c.ready = c.started = False
        c.probes = {kind: Probe(c.spec[f"{kind}Probe"], c.began)
                    for kind in ("startup", "readiness", "liveness") if c.spec.get(f"{kind}Probe")}
        c.post_start = (c.spec.get("lifecycle") or {}).get("postStart")
        log("started", local.namespace, local.name, c.name, "pid", c.process.pid, shlex.join(argv))

    # --- probes and hooks ----------------------------------------------------------------------
    def check_health(self, local, c):
        if not c.set_up():
            return
        if isinstance(c.post_start, dict):
            c.post_start = self.pool.submit(self.run_handler, local, c, c.post_start, 30)
        if c.post_start is not None:
            if not c.post_start.done():
                return
            ok, message = c.post_start.result()
            c.post_start = None
            if not ok:
                self.event("Pod", local.pod, "Warning", "FailedPostStartHook", f"container {c.name}: {message}")
                self.begin_stop(local, c, local.pod["spec"].get("terminationGracePeriodSeconds", 30))
                return
        if not c.started:
            if "startup" not in c.probes:
                c.started = True
            elif self.probe(local, c, "startup"):
                c.started = True
            else:
                return
        if "readiness" not in c.probes:
            c.ready = True
        else:
            self.probe(local, c, "readiness")
        if "liveness" in c.probes:
            self.probe(local, c, "liveness")

    def probe(self, local, c, kind):
        """Advances one probe; True once it has passed (its successThreshold in a row)."""
        p = c.probes[kind]
        spec = p.spec
        if p.future is None:
            if time.time() >= p.due:
                p.future = self.pool.submit(self.run_handler, local, c, spec, spec.get("timeoutSeconds", 1))
            return kind == "readiness" and c.ready
        if not p.future.done():
            return kind == "readiness" and c.ready
        ok, message = p.future.result()
        p.future = None
        p.due = time.time() + spec.get("periodSeconds", 10)
        if ok:
            p.failures = 0
            p.successes += 1
            if kind == "readiness" and p.successes >= spec.get("successThreshold", 1):
                c.ready = True
            return kind != "readiness" or c.ready
        p.successes = 0
        p.failures += 1
        if p.failures < spec.get("failureThreshold", 3):
            return kind == "readiness" and c.ready
        label = kind.capitalize()
        self.event("Pod", local.pod, "Warning", "Unhealthy", f"{label} probe failed: {message}")
        if kind == "readiness":
            c.ready = False
            return False
        self.event("Pod", local.pod, "Normal", "Killing", f"Container {c.name} failed {kind} probe, will be restarted")
        log(kind, "failed; restarting", local.name, c.name)
        grace = spec.get("terminationGracePeriodSeconds", local.pod["spec"].get("terminationGracePeriodSeconds", 30))
        self.begin_stop(local, c, grace)
        return False

    def run_handler(self, local, c, handler, timeout):
        """Runs a probe or hook handler; (ok, message). In a worker thread."""
        try:
            if "exec" in handler:
                out = subprocess.run(
                    ["nsenter", f"--target={c.process.pid}", "--mount", "--uts", "--wd",
                     *podspec.setpriv_args(c.security), *handler["exec"]["command"]],
                    env=c.env, capture_output=True, timeout=timeout, check=False,
                )
                text = (out.stdout + out.stderr).decode(errors="replace").strip()[-300:]
                return out.returncode == 0, f"exit code {out.returncode}: {text}"
            if "httpGet" in handler:
                get = handler["httpGet"]
                scheme = get.get("scheme", "HTTP").lower()
                host = get.get("host") or local.ip
                url = f"{scheme}://{host}:{self.port(c, get['port'])}{get.get('path', '/')}"
                headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
                request = urllib.request.Request(url, headers=headers)
                context = ssl._create_unverified_context() if scheme == "https" else None
                with urllib.request.urlopen(request, timeout=timeout, context=context) as r:
                    return 200 <= r.status < 400, f"HTTP {r.status}"
            if "tcpSocket" in handler:
                tcp = handler["tcpSocket"]
                address = (tcp.get("host") or local.ip, self.port(c, tcp["port"]))
                with socket.create_connection(address, timeout=timeout):
                    return True, "connected"
            if "sleep" in handler:
                time.sleep(handler["sleep"]["seconds"])
                return True, "slept"
        except subprocess.TimeoutExpired:
            return False, f"timed out after {timeout}s"
        except Exception as e:  # the failure is the probe's result
            return False, repr(e)
        return False, "no handler"

    @staticmethod
    def port(c, port):
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        return next((p["containerPort"] for p in c.spec.get("ports") or [] if p.get("name") == port), 0)

    # --- stopping ---------------------------------------------------------------------------------
    def begin_stop(self, local, c, grace):
        hook = (c.spec.get("lifecycle") or {}).get("preStop")
        future = self.pool.submit(self.run_handler, local, c, hook, grace) if hook and c.running() and c.set_up() \
            else None
        c.stop = Stop(grace, future)
        c.ready = False

    def advance_stop(self, c):
        stop, now = c.stop, time.time()
        if not c.running():
            return
        if not stop.signalled and (stop.hook is None or stop.hook.done() or now >= stop.deadline):
            name = (c.spec.get("lifecycle") or {}).get("stopSignal", "SIGTERM")
            kill_group(c.process, getattr(signal, name, signal.SIGTERM))
            stop.signalled = True
            # A preStop hook that used up the grace period gets the kubelet's 2 s more.
            stop.kill_at = stop.deadline if now < stop.deadline else now + 2
        if stop.signalled and now >= stop.kill_at:
            kill_group(c.process, signal.SIGKILL)

    def terminate(self, local):
        if not local.terminating:
            local.terminating = True
            grace = local.pod["metadata"].get("deletionGracePeriodSeconds", 30)
            for c in local.all_containers():
                c.done = True
                if c.running() and c.stop is None:
                    self.begin_stop(local, c, grace)
            log("terminating", local.namespace, local.name, f"grace {grace}s")
        alive = [c for c in local.all_containers() if c.running()]
        for c in alive:
            self.advance_stop(c)
        if alive:
            return
        self.release(local)
        self.pods.pop(local.uid, None)
        try:
            self.kube.delete(
                f"/api/v1/namespaces/{local.namespace}/pods/{local.name}",
                {"gracePeriodSeconds": 0, "preconditions": {"uid": local.uid}},
            )
        except ApiError as e:
            if e.status not in (404, 409):
                raise
        log("removed", local.namespace, local.name)

    @staticmethod
    def kill_now(local):
        for c in local.all_containers():
            if c.running():
                kill_group(c.process, signal.SIGKILL)
                c.process.wait()

    def release(self, local):
        if local.ip not in local.node.free_ips:
            local.node.free_ips.append(local.ip)
        shutil.rmtree(local.root / "volumes", ignore_errors=True)
        self.forget_mount_points(local)

    # --- status -----------------------------------------------------------------------------------
    def container_status(self, local, c):
        if c.running():
            state = {"running": {"startedAt": c.started_at}}
        elif local.refused:
            state = {"waiting": {"reason": podspec.UNSUPPORTED, "message": local.refused}}
        elif c.done and c.last_exit is not None:
            state = {"terminated": c.last_exit}
        elif c.waiting:
            state = {"waiting": {"reason": c.waiting[0], "message": c.waiting[1]}}
        elif local.waiting:
            state = {"waiting": {"reason": local.waiting[0], "message": local.waiting[1]}}
        elif c.last_exit is not None:
            state = {"waiting": {"reason": "CrashLoopBackOff",
                                 "message": f"back-off restarting failed container {c.name}"}}
        elif not c.init and not local.initialized():
            state = {"waiting": {"reason": "PodInitializing"}}
        else:
            state = {"waiting": {"reason": "ContainerCreating"}}
        status = {
            "name": c.name,
            "image": c.spec.get("image", ""),
            "imageID": "",
            "ready": c.ready and c.running(),
            "started": c.started and c.running(),
            "restartCount": c.restarts,
            "state": state,
        }
        if c.running():
            status["containerID"] = f"testbed://{c.process.pid}"
        if c.last_exit and "terminated" not in state:
            status["lastState"] = {"terminated": c.last_exit}
        return status

    def phase(self, local):
        if local.failed:
            return "Failed"
        if local.refused or not local.initialized():
            return "Pending"
        if all(c.done for c in local.containers):
            ok = all(c.last_exit and c.last_exit["exitCode"] == 0 for c in local.containers)
            return "Succeeded" if ok else "Failed"
        if any(c.running() or c.last_exit for c in local.containers):
            return "Running"
        return "Pending"

    def update_status(self, local):
        pod = local.pod
        phase = self.phase(local)
        containers_ready = phase == "Running" and all(c.ready and c.running() for c in local.containers)
        have = {c["type"]: c.get("status") for c in (pod.get("status") or {}).get("conditions") or []}
        gates = [g["conditionType"] for g in pod["spec"].get("readinessGates") or []]
        ready = containers_ready and all(have.get(g) == "True" for g in gates)
        conditions = {"PodScheduled": True, "Initialized": local.initialized(), "ContainersReady": containers_ready,
                      "Ready": ready}
        status = {
            "phase": phase,
            "hostIP": local.node.ip,
            "hostIPs": [{"ip": local.node.ip}],
            "podIP": local.ip,
            "podIPs": [{"ip": local.ip}],
            "conditions": [{"type": t, "status": "True" if ok else "False"} for t, ok in conditions.items()],
            "containerStatuses": [self.container_status(local, c) for c in local.containers],
            "initContainerStatuses": [self.container_status(local, c) for c in local.inits],
        }
        if local.failed:
            status["reason"], status["message"] = local.failed
        elif local.refused:
            status["reason"], status["message"] = podspec.UNSUPPORTED, local.refused
        key = json.dumps(status, sort_keys=True)
        if key == local.last_status:
            return
        for condition in status["conditions"]:
            old = local.transitions.get(condition["type"])
            if old is None or old[0] != condition["status"]:
                local.transitions[condition["type"]] = (condition["status"], now_iso())
            condition["lastTransitionTime"] = local.transitions[condition["type"]][1]
        if gates and not ready and containers_ready:
            missing = [g for g in gates if have.get(g) != "True"]
            status["conditions"][-1].update(reason="ReadinessGatesNotReady",
                                             message=f"corresponding condition of pod readiness gate {missing} "
                                                     "does not exist.")
        status["startTime"] = (pod.get("status") or {}).get("startTime") or now_iso()
        try:
            self.kube.patch_strategic(f"/api/v1/namespaces/{local.namespace}/pods/{local.name}/status",
                                      {"status": status})
            local.last_status = key
        except ApiError as e:
            if e.status != 404:
                raise

    # --- events -------------------------------------------------------------------------------------
    def event(self, kind, obj, etype, reason, message):
        """Records a core/v1 Event about `obj` once per (object, reason, message)."""
        meta = obj["metadata"]
        key = (meta.get("uid"), reason, message)
        if key in self.sent_events:
            return
        self.sent_events.add(key)
        ns = meta.get("namespace") or "default"
        body = {
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": ns},
            "involvedObject": {"kind": kind, "apiVersion": "v1", "name": meta["name"],
                               "namespace": meta.get("namespace"), "uid": meta.get("uid")},
            "reason": reason,
            "message": message[:1024],
            "type": etype,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
            "firstTimestamp": now_iso(),
            "lastTimestamp": now_iso(),
            "count": 1,
        }
        try:
            self.kube.post(f"/api/v1/namespaces/{ns}/events", body)
        except ApiError as e:
            log("event not recorded:", repr(e))

    # --- names ----------------------------------------------------------------------------------------
    def update_network(self):
        self.services = self.kube.get("/api/v1/services")["items"]
        slices = self.kube.get("/apis/discovery.k8s.io/v1/endpointslices")["items"]
        names, routes = network.tables(self.services, slices)
        self.dns.update(names)
        self.proxy.update(routes)
        for svc in self.services:
            limits = network.service_limits(svc)
            if limits:
                self.event("Service", svc, "Warning", podspec.UNSUPPORTED, "the test bed: " + "; ".join(limits))

    def write_pod_files(self, local):
        """The pod's /etc/hosts (itself and hostAliases, as the kubelet writes it) and
        /etc/resolv.conf (cluster DNS with the pod's namespace first in the search list)."""
        pod = local.pod
        lines = ["# Kubernetes-managed hosts file (the test bed's pod runner).", "127.0.0.1\tlocalhost",
                 "::1\tlocalhost ip6-localhost ip6-loopback"]
        host = (pod["spec"].get("hostname") or pod["metadata"]["name"])[:63]
        fqdn = pod_fqdn(pod)
        lines.append(f"{local.ip}\t{fqdn}\t{host}" if fqdn else f"{local.ip}\t{host}")
        for alias in pod["spec"].get("hostAliases") or []:
            lines.append(f"{alias['ip']}\t{' '.join(alias.get('hostnames') or [])}")
        (local.root / "etc" / "hosts").write_text("\n".join(lines) + "\n")
        ns = local.namespace
        (local.root / "etc" / "resolv.conf").write_text(
            f"search {ns}.svc.{network.DOMAIN} svc.{network.DOMAIN} {network.DOMAIN}\n"
            f"nameserver {DNS_ADDRESS}\noptions ndots:5\n")
        for name in ("hosts", "resolv.conf"):
            os.chmod(local.root / "etc" / name, 0o644)


# --- helpers ------------------------------------------------------------------------------------------
def kill_group(process, sig):
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def claim_name(pod, volume):
    if "persistentVolumeClaim" in volume:
        return volume["persistentVolumeClaim"]["claimName"]
    if "ephemeral" in volume:
        return f"{pod['metadata']['name']}-{volume['name']}"
    return None


def give_group(path, gid):
    """fsGroup: the volume's files belong to the group, which may read and write them."""
    for root, dirs, files in os.walk(path):
        for p in [root, *(os.path.join(root, f) for f in files)]:
            os.chown(p, -1, gid)
            mode = os.stat(p).st_mode
            extra = stat.S_IRGRP | stat.S_IWGRP | ((stat.S_IXGRP | stat.S_ISGID) if os.path.isdir(p) else 0)
            os.chmod(p, stat.S_IMODE(mode) | extra)


def reachable_by_others(path):
    """Whether every directory above `path` lets any user through."""
    p = Path(path).resolve().parent
    while True:
        if not os.stat(p).st_mode & stat.S_IXOTH:
            return False
        if p.parent == p:
            return True
        p = p.parent


def is_socket(p):
    return os.path.exists(p) and stat.S_ISSOCK(os.stat(p).st_mode)


def is_char_device(p):
    return os.path.exists(p) and stat.S_ISCHR(os.stat(p).st_mode)


def is_block_device(p):
    return os.path.exists(p) and stat.S_ISBLK(os.stat(p).st_mode)


def read_only_mount_points():
    """Mount points to remount read-only for readOnlyRootFilesystem: all but the kernel's
    (/proc, /sys, /dev); the pod's volumes are mounted on top of these afterwards and
    keep their own flags."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if any(point == p or point.startswith(p + "/") for p in ("/proc", "/sys", "/dev")):
            continue
        if point not in points:
            points.append(point)
    return points


def pod_hostname(pod):
    """The pod's hostname: the kernel's (UTS namespace) and $HOSTNAME."""
    host = (pod["spec"].get("hostname") or pod["metadata"]["name"])[:63]
    return (pod_fqdn(pod) or host) if pod["spec"].get("setHostnameAsFQDN") else host


def pod_fqdn(pod):
    """host.subdomain.ns.svc.cluster.local for a pod with a subdomain, else None."""
    spec, meta = pod["spec"], pod["metadata"]
    if not spec.get("subdomain"):
        return None
    host = (spec.get("hostname") or meta["name"])[:63]
    return f"{host}.{spec['subdomain']}.{meta['namespace']}.svc.{network.DOMAIN}"


def service_link_env(svc):
    """The docker-link style variables the kubelet sets for a Service with a ClusterIP."""
    ip = svc["spec"].get("clusterIP")
    ports = svc["spec"].get("ports") or []
    if ip in (None, "", "None") or not ports:
        return {}
    prefix = svc["metadata"]["name"].upper().replace("-", "_")
    first = ports[0]
    env = {f"{prefix}_SERVICE_HOST": ip, f"{prefix}_SERVICE_PORT": str(first["port"]),
           f"{prefix}_PORT": f"{first.get('protocol', 'TCP').lower()}://{ip}:{first['port']}"}
    for port in ports:
        proto = port.get("protocol", "TCP")
        if port.get("name"):
            env[f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port["port"])
        base = f"{prefix}_PORT_{port['port']}_{proto}"
        env.update({base: f"{proto.lower()}://{ip}:{port['port']}", f"{base}_PROTO": proto.lower(),
                    f"{base}_PORT": str(port["port"]), f"{base}_ADDR": ip})
    return env


def field(pod, path, local, volume=False):
    """A downward API fieldRef value."""
    meta = pod["metadata"]
    if path.startswith("metadata.labels['") or path.startswith("metadata.annotations['"):
        kind, key = path.split("['", 1)
        return (meta.get(kind.split(".")[1]) or {}).get(key[:-2], "")
    if path in ("metadata.labels", "metadata.annotations") and volume:
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    return {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta["uid"],
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.podIP": local.ip,
        "status.podIPs": local.ip,
        "status.hostIP": local.node.ip,
        "status.hostIPs": local.node.ip,
    }.get(path, "")


def resource_field(pod, ref, default_container):
    """A downward API resourceFieldRef: the container's limit or request over the divisor,
    rounded up; an unset limit is the node's allocatable, an unset request 0."""
    name = ref.get("containerName") or default_container
    spec = next((c for c in pod["spec"]["containers"] + (pod["spec"].get("initContainers") or [])
                 if c["name"] == name), {})
    kind, _, resource = ref["resource"].partition(".")
    value = ((spec.get("resources") or {}).get(kind) or {}).get(resource)
    if value is None:
        value = CAPACITY.get(resource, "0") if kind == "limits" else "0"
    divisor = parse_quantity(ref.get("divisor") or "1")
    return str(math.ceil(parse_quantity(value) / divisor))


def expand(value, env):
    """Kubernetes' $(VAR) expansion of env values, command and args."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("$(", i) and ")" in value[i:]:
            end = value.index(")", i)
            name = value[i + 2:end]
            out.append(env.get(name, value[i:end + 1]))
            i = end + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pki", required=True)
    parser.add_argument("--api-port", type=int, required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--bin", default="")
    parser.add_argument("--image", action="append", default=[], help="NAME=PROGRAM: run PROGRAM for image NAME")
    a = parser.parse_args()
    pki = Path(a.pki)
    kube = Kube("127.0.0.1", a.api_port, str(pki / "ca.crt"), str(pki / "runner.crt"), str(pki / "runner.key"))
    runner = Runner(kube, a)

    def stop(*_):
        runner.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    runner.run()


if __name__ == "__main__":
    main()
