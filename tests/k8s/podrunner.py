"""The test bed's kubelet and scheduler: registers one Node, binds pending pods to it and
runs their containers as local processes.

Each pod gets its own loopback address (127.0.0.N) and a mount namespace in which its
volumes (configMap, secret, emptyDir, projected service-account token / root CA /
downward API, and PVCs bound to host-directory PVs) are bind-mounted where the pod
expects them. Images map to local programs (IMAGES). The runner writes phase, podIP,
conditions and container statuses, runs httpGet probes, restarts containers with
backoff, and on deletion sends SIGTERM, waits the grace period, sends SIGKILL and removes
the pod object. It also keeps the network namespace's hosts file mapping pod FQDNs and
Service names to pod addresses, since there is no cluster DNS.

Runs inside the test bed's network namespace:
    python3 podrunner.py --kubeconfig-dir DIR --api-port PORT --state DIR --hosts FILE
"""

import argparse
import base64
import datetime
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kubeapi import ApiError, Kube  # noqa: E402

NODE = "testbed-node"
ZONE = "zone-a"
BACKOFF_START = 1.0
BACKOFF_MAX = 20.0

# image (without registry and tag) -> program run when the container gives no command;
# a container's `command` is looked up on PATH, after the --bin directories (our own
# binaries, the test bed's etcd).
IMAGES = {
    "python": [sys.executable],
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


class Container:
    def __init__(self, spec):
        self.spec = spec
        self.name = spec["name"]
        self.process = None
        self.restarts = 0
        self.next_start = 0.0
        self.backoff = BACKOFF_START
        self.ready = False
        self.started_at = None
        self.last_exit = None
        self.probe_due = {"readiness": 0.0, "liveness": 0.0}
        self.failures = {"readiness": 0, "liveness": 0}


class LocalPod:
    def __init__(self, pod, ip, root):
        self.uid = pod["metadata"]["uid"]
        self.namespace = pod["metadata"]["namespace"]
        self.name = pod["metadata"]["name"]
        self.ip = ip
        self.root = root
        self.containers = [Container(c) for c in pod["spec"]["containers"]]
        self.mounts = None
        self.env = None
        self.terminating = False
        self.kill_at = None
        self.last_status = None
        self.phase = "Pending"
        self.message = ""


class Runner:
    def __init__(self, kube, state, hosts, extra_bin):
        self.kube = kube
        self.state = Path(state)
        self.hosts = Path(hosts)
        self.extra_bin = extra_bin
        self.pods = {}
        self.free_ips = [f"127.0.0.{n}" for n in range(10, 250)]
        self.last_heartbeat = 0.0
        self.stopping = False
        self.hosts_text = None

    # --- node -------------------------------------------------------------------
    def register(self):
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE,
                "labels": {
                    "kubernetes.io/hostname": NODE,
                    "kubernetes.io/os": "linux",
                    "topology.kubernetes.io/zone": ZONE,
                    "topology.kubernetes.io/region": "testbed",
                },
            },
        }
        try:
            self.kube.post("/api/v1/nodes", node)
        except ApiError as e:
            if e.status != 409:
                raise
        self.heartbeat()

    def heartbeat(self):
        status = {
            "status": {
                "capacity": {"cpu": "2", "memory": "24Gi", "pods": "110"},
                "allocatable": {"cpu": "2", "memory": "24Gi", "pods": "110"},
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE}],
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "the test bed's pod runner is running",
                        "lastHeartbeatTime": now_iso(),
                        "lastTransitionTime": now_iso(),
                    }
                ],
                "nodeInfo": {"kubeletVersion": "testbed", "operatingSystem": "linux", "architecture": "amd64"},
            }
        }
        self.kube.patch_status(f"/api/v1/nodes/{NODE}/status", status)
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE}"
        lease = self.kube.get_or_none(path)
        if lease is None:
            self.kube.post(
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                {
                    "metadata": {"name": NODE},
                    "spec": {"holderIdentity": NODE, "leaseDurationSeconds": 40, "renewTime": now_micro()},
                },
            )
        else:
            lease["spec"]["renewTime"] = now_micro()
            self.kube.put(path, lease)
        self.last_heartbeat = time.time()

    # --- the loop -----------------------------------------------------------------
    def run(self):
        self.register()
        while not self.stopping:
            try:
                if time.time() - self.last_heartbeat > 10:
                    self.heartbeat()
                self.reconcile()
            except Exception as e:  # keep the node alive through API hiccups
                log("reconcile failed:", repr(e))
            time.sleep(0.2)
        for local in list(self.pods.values()):
            self.kill(local, grace=0)

    def reconcile(self):
        pods = self.kube.get("/api/v1/pods")["items"]
        seen = set()
        for pod in pods:
            meta, spec = pod["metadata"], pod["spec"]
            if not spec.get("nodeName"):
                if not meta.get("deletionTimestamp"):
                    self.bind(pod)
                continue
            if spec["nodeName"] != NODE:
                continue
            seen.add(meta["uid"])
            self.handle(pod)
        for uid in [u for u in self.pods if u not in seen]:
            local = self.pods.pop(uid)
            self.kill(local, grace=0)
            self.release(local)
        self.write_hosts(pods)

    def bind(self, pod):
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": NODE},
        }
        try:
            self.kube.post(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", body)
            log("bound", meta["namespace"], meta["name"])
        except ApiError as e:
            if e.status not in (404, 409):
                raise

    def handle(self, pod):
        meta = pod["metadata"]
        local = self.pods.get(meta["uid"])
        if local is None:
            if not self.free_ips:
                return
            local = LocalPod(pod, self.free_ips.pop(0), self.state / "pods" / meta["uid"])
            self.pods[meta["uid"]] = local
            log("admitted", local.namespace, local.name, local.ip)
        if meta.get("deletionTimestamp"):
            self.terminate(local, pod)
            return
        if local.mounts is None:
            try:
                local.mounts, local.env = self.prepare(local, pod)
            except NotReady as e:
                local.message = str(e)
                self.update_status(local, pod)
                return
        for c in local.containers:
            self.supervise(local, pod, c)
        self.update_status(local, pod)

    # --- volumes and environment ------------------------------------------------------
    def prepare(self, local, pod):
        ns = local.namespace
        vols = local.root / "volumes"
        vols.mkdir(parents=True, exist_ok=True)
        sources = {}
        for v in pod["spec"].get("volumes", []):
            target = vols / v["name"]
            if "emptyDir" in v:
                target.mkdir(exist_ok=True)
            elif "configMap" in v:
                self.write_keys(target, self.configmap(ns, v["configMap"]["name"]), v["configMap"].get("items"))
            elif "secret" in v:
                data = self.secret(ns, v["secret"]["secretName"])
                self.write_keys(target, data, v["secret"].get("items"))
            elif "projected" in v:
                self.projected(local, pod, target, v["projected"])
            elif "persistentVolumeClaim" in v:
                target = self.claim(ns, v["persistentVolumeClaim"]["claimName"])
            elif "hostPath" in v:
                target = Path(v["hostPath"]["path"])
                target.mkdir(parents=True, exist_ok=True)
            else:
                raise NotReady(f"volume {v['name']}: unsupported type")
            sources[v["name"]] = target
        mounts = {}
        envs = {}
        for c in local.containers:
            mounts[c.name] = []
            for m in c.spec.get("volumeMounts", []):
                src = sources[m["name"]]
                if m.get("subPath"):
                    src = src / m["subPath"]
                mounts[c.name].append((str(src), m["mountPath"], bool(m.get("readOnly"))))
            envs[c.name] = self.environment(local, pod, c.spec)
        return mounts, envs

    def configmap(self, ns, name):
        cm = self.kube.get_or_none(f"/api/v1/namespaces/{ns}/configmaps/{name}")
        if cm is None:
            raise NotReady(f"configmap {name} not found")
        return {k: v.encode() for k, v in cm.get("data", {}).items()}

    def secret(self, ns, name):
        s = self.kube.get_or_none(f"/api/v1/namespaces/{ns}/secrets/{name}")
        if s is None:
            raise NotReady(f"secret {name} not found")
        return {k: base64.b64decode(v) for k, v in s.get("data", {}).items()}

    @staticmethod
    def write_keys(target, data, items):
        target.mkdir(parents=True, exist_ok=True)
        chosen = [(i["key"], i.get("path", i["key"])) for i in items] if items else [(k, k) for k in data]
        for key, path in chosen:
            if key in data:
                out = target / path
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data[key])

    def projected(self, local, pod, target, projected):
        target.mkdir(parents=True, exist_ok=True)
        ns = local.namespace
        for source in projected.get("sources", []):
            if "serviceAccountToken" in source:
                sat = source["serviceAccountToken"]
                account = pod["spec"].get("serviceAccountName", "default")
                request = {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenRequest",
                    "spec": {
                        "audiences": [sat["audience"]] if sat.get("audience") else None,
                        "expirationSeconds": sat.get("expirationSeconds", 3607),
                        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": local.name, "uid": local.uid},
                    },
                }
                if request["spec"]["audiences"] is None:
                    del request["spec"]["audiences"]
                token = self.kube.post(f"/api/v1/namespaces/{ns}/serviceaccounts/{account}/token", request)
                (target / sat["path"]).write_text(token["status"]["token"])
            elif "configMap" in source:
                self.write_keys(target, self.configmap(ns, source["configMap"]["name"]), source["configMap"].get("items"))
            elif "secret" in source:
                self.write_keys(target, self.secret(ns, source["secret"]["name"]), source["secret"].get("items"))
            elif "downwardAPI" in source:
                for item in source["downwardAPI"].get("items", []):
                    value = field(pod, item["fieldRef"]["fieldPath"], local.ip) if "fieldRef" in item else ""
                    (target / item["path"]).write_text(value)

    def claim(self, ns, name):
        pvc = self.kube.get_or_none(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}")
        if pvc is None or pvc.get("status", {}).get("phase") != "Bound":
            raise NotReady(f"persistentvolumeclaim {name} is not bound")
        pv = self.kube.get(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}")
        path = (pv["spec"].get("hostPath") or pv["spec"].get("local") or {}).get("path")
        if not path:
            raise NotReady(f"persistentvolume {pv['metadata']['name']} has no host path")
        Path(path).mkdir(parents=True, exist_ok=True)
        return Path(path)

    def environment(self, local, pod, spec):
        ns = local.namespace
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOSTNAME": pod["spec"].get("hostname", local.name)}
        if self.extra_bin:
            env["PATH"] = f"{self.extra_bin}:{env['PATH']}"
        env["KUBERNETES_SERVICE_HOST"] = "kubernetes.default.svc"
        env["KUBERNETES_SERVICE_PORT"] = os.environ.get("TESTBED_API_PORT", "443")
        for item in spec.get("env", []):
            name = item["name"]
            if "value" in item:
                env[name] = expand(item["value"], env)
            elif "valueFrom" in item:
                ref = item["valueFrom"]
                if "fieldRef" in ref:
                    env[name] = field(pod, ref["fieldRef"]["fieldPath"], local.ip)
                elif "configMapKeyRef" in ref:
                    data = self.configmap(ns, ref["configMapKeyRef"]["name"])
                    env[name] = data.get(ref["configMapKeyRef"]["key"], b"").decode()
                elif "secretKeyRef" in ref:
                    data = self.secret(ns, ref["secretKeyRef"]["name"])
                    env[name] = data.get(ref["secretKeyRef"]["key"], b"").decode()
        return env

    # --- processes ----------------------------------------------------------------
    def argv(self, spec, env):
        image = spec.get("image", "").split("@")[0].rsplit(":", 1)[0].rsplit("/", 1)[-1]
        command = [expand(a, env) for a in spec.get("command", [])]
        args = [expand(a, env) for a in spec.get("args", [])]
        if not command:
            if image not in IMAGES:
                raise NotReady(f"image {spec.get('image')} has no local program and the container no command")
            command = list(IMAGES[image])
        program = shutil.which(command[0], path=env["PATH"]) or command[0]
        return [program, *command[1:], *args]

    def start(self, local, c):
        env = local.env[c.name]
        argv = self.argv(c.spec, env)
        script = ["set -e"]
        for src, dst, read_only in local.mounts[c.name]:
            q_src, q_dst = shlex.quote(src), shlex.quote(dst)
            if os.path.isdir(src):
                script.append(f"mkdir -p {q_dst}")
            else:
                script.append(f"mkdir -p $(dirname {q_dst}) && touch {q_dst}")
            script.append(f"mount --bind {q_src} {q_dst}")
            if read_only:
                script.append(f"mount -o remount,bind,ro {q_dst}")
        workdir = c.spec.get("workingDir") or str(local.root)
        script.append(f"cd {shlex.quote(workdir)}")
        script.append('exec "$@"')
        local.root.mkdir(parents=True, exist_ok=True)
        out = open(local.root / f"{c.name}.log", "ab")
        c.process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", "\n".join(script), "pod", *argv],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        c.started_at = now_iso()
        c.ready = False
        c.failures = {"readiness": 0, "liveness": 0}
        delay = {kind: c.spec.get(f"{kind}Probe", {}).get("initialDelaySeconds", 0) for kind in ("readiness", "liveness")}
        c.probe_due = {kind: time.time() + d for kind, d in delay.items()}
        log("started", local.namespace, local.name, c.name, "pid", c.process.pid, shlex.join(argv))

    def supervise(self, local, pod, c):
        policy = pod["spec"].get("restartPolicy", "Always")
        if c.process is not None and c.process.poll() is not None:
            code = c.process.returncode
            c.last_exit = {"exitCode": code, "finishedAt": now_iso(), "reason": "Completed" if code == 0 else "Error"}
            log("exited", local.namespace, local.name, c.name, code)
            c.process = None
            c.ready = False
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                local.phase = "Succeeded" if code == 0 else "Failed"
                return
            c.restarts += 1
            c.next_start = time.time() + c.backoff
            c.backoff = min(c.backoff * 2, BACKOFF_MAX)
        if c.process is None and local.phase not in ("Succeeded", "Failed") and time.time() >= c.next_start:
            try:
                self.start(local, c)
                local.phase = "Running"
            except NotReady as e:
                local.message = str(e)
            return
        if c.process is not None:
            self.probe(local, c)

    def probe(self, local, c):
        for kind in ("readiness", "liveness"):
            spec = c.spec.get(f"{kind}Probe")
            if spec is None:
                if kind == "readiness":
                    c.ready = True
                continue
            if time.time() < c.probe_due[kind]:
                continue
            c.probe_due[kind] = time.time() + spec.get("periodSeconds", 10)
            ok = self.check(local, c, spec)
            if ok:
                c.failures[kind] = 0
                if kind == "readiness":
                    c.ready = True
                continue
            c.failures[kind] += 1
            if c.failures[kind] < spec.get("failureThreshold", 3):
                continue
            if kind == "readiness":
                c.ready = False
            else:
                log("liveness failed; restarting", local.name, c.name)
                kill_group(c.process, signal.SIGKILL)

    @staticmethod
    def check(local, c, spec):
        get = spec.get("httpGet")
        if get is None:
            return True
        port = get["port"]
        if isinstance(port, str):
            port = next((p["containerPort"] for p in c.spec.get("ports", []) if p.get("name") == port), 0)
        url = f"http://{get.get('host') or local.ip}:{port}{get.get('path', '/')}"
        try:
            with urllib.request.urlopen(url, timeout=spec.get("timeoutSeconds", 1)) as r:
                return 200 <= r.status < 400
        except Exception:
            return False

    def terminate(self, local, pod):
        if not local.terminating:
            local.terminating = True
            grace = pod["metadata"].get("deletionGracePeriodSeconds", 30)
            local.kill_at = time.time() + grace
            for c in local.containers:
                if c.process is not None:
                    kill_group(c.process, signal.SIGTERM)
            log("terminating", local.namespace, local.name, f"grace {grace}s")
        alive = [c for c in local.containers if c.process is not None and c.process.poll() is None]
        if alive and time.time() < local.kill_at:
            return
        for c in alive:
            kill_group(c.process, signal.SIGKILL)
            c.process.wait()
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

    def kill(self, local, grace):
        for c in local.containers:
            if c.process is not None and c.process.poll() is None:
                kill_group(c.process, signal.SIGTERM if grace else signal.SIGKILL)
                try:
                    c.process.wait(timeout=grace or 5)
                except subprocess.TimeoutExpired:
                    kill_group(c.process, signal.SIGKILL)
                    c.process.wait()

    def release(self, local):
        if local.ip not in self.free_ips:
            self.free_ips.append(local.ip)
        shutil.rmtree(local.root / "volumes", ignore_errors=True)

    # --- status ------------------------------------------------------------------
    def update_status(self, local, pod):
        ready = local.phase == "Running" and all(c.ready for c in local.containers)
        statuses = []
        for c in local.containers:
            if c.process is not None:
                state = {"running": {"startedAt": c.started_at}}
            elif c.last_exit is not None:
                state = {"terminated": c.last_exit} if local.phase in ("Succeeded", "Failed") else {
                    "waiting": {"reason": "CrashLoopBackOff"}}
            else:
                state = {"waiting": {"reason": "ContainerCreating", "message": local.message}}
            statuses.append(
                {
                    "name": c.name,
                    "image": c.spec.get("image", ""),
                    "imageID": "",
                    "ready": c.ready and c.process is not None,
                    "started": c.process is not None,
                    "restartCount": c.restarts,
                    "state": state,
                    **({"lastState": {"terminated": c.last_exit}} if c.last_exit else {}),
                }
            )
        cond = lambda t, ok: {"type": t, "status": "True" if ok else "False"}  # noqa: E731
        status = {
            "phase": local.phase,
            "hostIP": "127.0.0.1",
            "podIP": local.ip,
            "podIPs": [{"ip": local.ip}],
            "conditions": [
                cond("PodScheduled", True),
                cond("Initialized", True),
                cond("ContainersReady", ready),
                cond("Ready", ready),
            ],
            "containerStatuses": statuses,
        }
        key = json.dumps(status, sort_keys=True)
        if key == local.last_status:
            return
        for c in status["conditions"]:
            c["lastTransitionTime"] = now_iso()
        status["startTime"] = pod.get("status", {}).get("startTime") or now_iso()
        try:
            self.kube.patch_status(f"/api/v1/namespaces/{local.namespace}/pods/{local.name}/status", {"status": status})
            local.last_status = key
        except ApiError as e:
            if e.status != 404:
                raise

    # --- names -------------------------------------------------------------------
    def write_hosts(self, pods):
        lines = ["127.0.0.1 localhost", "127.0.0.1 kubernetes kubernetes.default kubernetes.default.svc kubernetes.default.svc.cluster.local"]
        by_uid = {p["metadata"]["uid"]: p for p in pods}
        for local in self.pods.values():
            pod = by_uid.get(local.uid)
            if pod is None:
                continue
            spec, ns = pod["spec"], local.namespace
            names = [local.name]
            if spec.get("subdomain"):
                host = spec.get("hostname", local.name)
                names = [f"{host}.{spec['subdomain']}.{ns}.svc.cluster.local", f"{host}.{spec['subdomain']}.{ns}.svc",
                         f"{host}.{spec['subdomain']}.{ns}", f"{host}.{spec['subdomain']}", *names]
            lines.append(f"{local.ip} {' '.join(names)}")
        # EndpointSlices cannot hold loopback addresses (API validation), so Services are
        # resolved here from their selectors: the name maps to one ready pod.
        for svc in self.kube.get("/api/v1/services")["items"]:
            selector = svc["spec"].get("selector")
            ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            if not selector:
                continue
            any_state = svc["spec"].get("publishNotReadyAddresses", False)
            candidates = []
            for local in self.pods.values():
                pod = by_uid.get(local.uid)
                if pod is None or local.namespace != ns or local.terminating:
                    continue
                labels = pod["metadata"].get("labels", {})
                if all(labels.get(k) == v for k, v in selector.items()):
                    if any_state or all(c.ready for c in local.containers):
                        candidates.append(local.ip)
            if candidates:
                first = sorted(candidates, key=lambda ip: int(ip.rsplit(".", 1)[1]))[0]
                lines.append(f"{first} {name}.{ns}.svc.cluster.local {name}.{ns}.svc {name}.{ns} {name}")
        text = "\n".join(lines) + "\n"
        if text != self.hosts_text:
            # In place: `ip netns exec` bind-mounts this very inode over /etc/hosts.
            with open(self.hosts, "r+" if self.hosts.exists() else "w") as f:
                f.seek(0)
                f.write(text)
                f.truncate()
            self.hosts_text = text


class NotReady(Exception):
    pass


def kill_group(process, sig):
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def field(pod, path, ip):
    meta = pod["metadata"]
    if path.startswith("metadata.labels['") or path.startswith("metadata.annotations['"):
        kind, key = path.split("['", 1)
        return meta.get(kind.split(".")[1], {}).get(key.rstrip("']"), "")
    return {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta["uid"],
        "spec.nodeName": NODE,
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.podIP": ip,
        "status.hostIP": "127.0.0.1",
    }.get(path, "")


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
    parser.add_argument("--hosts", required=True)
    parser.add_argument("--bin", default="")
    a = parser.parse_args()
    pki = Path(a.pki)
    kube = Kube("127.0.0.1", a.api_port, str(pki / "ca.crt"), str(pki / "runner.crt"), str(pki / "runner.key"))
    runner = Runner(kube, a.state, a.hosts, a.bin)
    os.environ["TESTBED_API_PORT"] = str(a.api_port)

    def stop(*_):
        runner.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    runner.run()


if __name__ == "__main__":
    main()
