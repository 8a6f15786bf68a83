"""Smoke suite for the Kubernetes test bed: a real kube-apiserver, controller manager and
etcd built from the Go modules, with the pod runner as kubelet and scheduler."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from testbed import HERE, Testbed

def can_make_namespaces():
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(
    shutil.which("go") is None or not can_make_namespaces(),
    reason="the test bed needs Go and root allowed to create network and mount namespaces",
)

NS = "smoke"


@pytest.fixture(scope="module")
def bed():
    b = Testbed()
    try:
        b.start()
        b.kubectl("create", "namespace", NS)
        yield b
    finally:
        b.stop()
        shutil.rmtree(b.base, ignore_errors=True)


def apply(bed, manifest):
    bed.kubectl("apply", "-n", NS, "-f", "-", stdin=manifest)


def pods(bed, selector):
    out = bed.kubectl("get", "pods", "-n", NS, "-l", selector, "-o", "json")
    return json.loads(out)["items"]


def ready(pod):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def wait_for(predicate, timeout=90, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def fetch(bed, url):
    script = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    out = bed.run("python3", "-c", script, check=False)
    return out.stdout.strip() if out.returncode == 0 else None


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: python:3
          command: ["python3", "-m", "http.server", "8080", "--bind", "$(POD_IP)", "--directory", "$(HOME_DIR)"]
          env:
            - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
            - {name: HOME_DIR, value: /tmp}
          readinessProbe:
            httpGet: {path: /, port: 8080}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 8080, targetPort: 8080}]
"""


def test_a_deployment_behind_a_service_answers_and_deleted_pods_are_replaced(bed):
    apply(bed, WEB)
    running = wait_for(lambda: (p := pods(bed, "app=web")) and len(p) == 2 and all(ready(x) for x in p) and p,
                       what="two ready web pods")
    ips = {p["status"]["podIP"] for p in running}
    assert len(ips) == 2 and all(ip.startswith("127.0.0.") for ip in ips)
    assert wait_for(lambda: fetch(bed, f"http://web.{NS}.svc.cluster.local:8080/"), what="the Service name to answer")
    assert fetch(bed, f"http://web.{NS}:8080/")

    victim = running[0]
    found = subprocess.run(["pgrep", "-f", "--", f"--bind {victim['status']['podIP']} "], capture_output=True, text=True)
    pid = int(found.stdout.split()[0])
    assert pid_alive(pid)
    bed.kubectl("delete", "pod", "-n", NS, victim["metadata"]["name"], "--wait=true", "--timeout=60s")
    replaced = wait_for(
        lambda: (p := pods(bed, "app=web")) and len(p) == 2 and all(ready(x) for x in p)
        and victim["metadata"]["uid"] not in {x["metadata"]["uid"] for x in p} and p,
        what="the ReplicaSet to replace the pod",
    )
    assert len(replaced) == 2
    assert not pid_alive(pid), "the deleted pod's process is gone"


STATEFUL = """
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: db}
  ports: [{port: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
        - name: db
          image: busybox
          command: ["sh", "-c"]
          args:
            - test -f /data/id || echo $(POD_NAME) > /data/id; exec python3 -m http.server 8080 --bind $(POD_IP) --directory /data
          env:
            - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
            - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
          readinessProbe:
            httpGet: {path: /id, port: 8080}
            periodSeconds: 1
          volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
    - metadata: {name: data}
      spec:
        accessModes: [ReadWriteOnce]
        storageClassName: local
        resources: {requests: {storage: 1Gi}}
"""


def test_a_statefulset_keeps_ordinal_pods_on_their_own_volumes(bed):
    for i in range(3):
        path = Path(bed.base) / "volumes" / f"pv-{i}"
        bed.kubectl("apply", "-f", "-", stdin=f"""
apiVersion: v1
kind: PersistentVolume
metadata: {{name: pv-{i}}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: local
  persistentVolumeReclaimPolicy: Retain
  hostPath: {{path: {path}}}
""")
    apply(bed, STATEFUL)
    wait_for(lambda: (p := pods(bed, "app=db")) and len(p) == 3 and all(ready(x) for x in p), what="three ready db pods")
    for i in range(3):
        assert fetch(bed, f"http://db-{i}.db.{NS}.svc.cluster.local:8080/id") == f"db-{i}"
    claims = json.loads(bed.kubectl("get", "pvc", "-n", NS, "-o", "json"))["items"]
    volume_of = {c["metadata"]["name"]: c["spec"]["volumeName"] for c in claims}
    assert set(volume_of) == {"data-db-0", "data-db-1", "data-db-2"}

    old = next(p for p in pods(bed, "app=db") if p["metadata"]["name"] == "db-1")
    bed.kubectl("delete", "pod", "-n", NS, "db-1", "--wait=true", "--timeout=60s")
    wait_for(
        lambda: any(p["metadata"]["name"] == "db-1" and p["metadata"]["uid"] != old["metadata"]["uid"] and ready(p)
                    for p in pods(bed, "app=db")),
        what="db-1 to come back",
    )
    assert wait_for(lambda: fetch(bed, f"http://db-1.db.{NS}.svc.cluster.local:8080/id"), what="db-1 to answer") == "db-1"
    pv = volume_of["data-db-1"]
    assert (Path(bed.base) / "volumes" / pv / "id").read_text().strip() == "db-1"


RBAC = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader}
rules:
  - {apiGroups: [""], resources: [pods], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader-reads-pods}
subjects: [{kind: ServiceAccount, name: reader}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
---
apiVersion: v1
kind: Pod
metadata: {name: rbac-probe}
spec:
  serviceAccountName: reader
  restartPolicy: Never
  containers:
    - name: probe
      image: python:3
      args:
        - -c
        - |
          import os, ssl, urllib.request
          sa = "/var/run/secrets/kubernetes.io/serviceaccount"
          token = open(sa + "/token").read()
          ns = open(sa + "/namespace").read()
          ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
          base = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
          for what in ("pods", "secrets"):
              req = urllib.request.Request("%s/api/v1/namespaces/%s/%s" % (base, ns, what), headers={"Authorization": "Bearer " + token})
              try:
                  code = urllib.request.urlopen(req, context=ctx).status
              except urllib.error.HTTPError as e:
                  code = e.code
              print(what, code, flush=True)
"""


def test_a_service_account_token_is_mounted_and_rbac_is_enforced(bed):
    apply(bed, RBAC)
    pod = wait_for(
        lambda: (p := json.loads(bed.kubectl("get", "pod", "-n", NS, "rbac-probe", "-o", "json")))
        and p["status"].get("phase") in ("Succeeded", "Failed") and p,
        what="the probe pod to finish",
    )
    log = Path(bed.base) / "runner" / "pods" / pod["metadata"]["uid"] / "probe.log"
    text = log.read_text()
    assert "pods 200" in text, text
    assert "secrets 403" in text, text
    assert pod["status"]["phase"] == "Succeeded"


def test_helm_installs_a_chart(bed):
    out = bed.run(str(bed.bin / "helm"), "install", "smoke", str(HERE / "chart"), "-n", NS,
                  f"--kubeconfig={bed.kubeconfig}", "--wait", "--timeout", "90s", check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    deployed = wait_for(lambda: (p := pods(bed, "app=smoke-web")) and all(ready(x) for x in p) and p, what="the chart's pod")
    ip = deployed[0]["status"]["podIP"]
    assert fetch(bed, f"http://{ip}:8080/index.html") == "hello from helm"
    listed = bed.run(str(bed.bin / "helm"), "list", "-n", NS, f"--kubeconfig={bed.kubeconfig}", "-o", "json")
    assert [r["status"] for r in json.loads(listed.stdout)] == ["deployed"]


FEATURES = """
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello, file.txt: from-configmap}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: features, labels: {app: features}}
spec:
  containers:
    - name: main
      image: busybox
      command: ["sh", "-c"]
      args:
        - |
          echo "env $GREETING $PASSWORD $MY_NS"
          echo "files $(cat /etc/settings/file.txt) $(cat /etc/creds/password)"
          echo run >> /scratch/runs
          echo "runs $(wc -l < /scratch/runs)"
          exec sleep 3600
      env:
        - {name: GREETING, valueFrom: {configMapKeyRef: {name: settings, key: greeting}}}
        - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
        - {name: MY_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
      livenessProbe:
        httpGet: {path: /, port: 9}
        periodSeconds: 1
        failureThreshold: 2
      volumeMounts:
        - {name: settings, mountPath: /etc/settings}
        - {name: creds, mountPath: /etc/creds, readOnly: true}
        - {name: scratch, mountPath: /scratch}
  volumes:
    - {name: settings, configMap: {name: settings}}
    - {name: creds, secret: {secretName: creds}}
    - {name: scratch, emptyDir: {}}
"""


def test_env_sources_volumes_and_a_failing_liveness_probe_restart_the_container(bed):
    apply(bed, FEATURES)

    def restarted():
        pod = json.loads(bed.kubectl("get", "pod", "-n", NS, "features", "-o", "json"))
        statuses = pod["status"].get("containerStatuses") or [{}]
        return statuses[0].get("restartCount", 0) >= 2 and pod

    pod = wait_for(restarted, what="the liveness probe to restart the container twice")
    log = (Path(bed.base) / "runner" / "pods" / pod["metadata"]["uid"] / "main.log").read_text()
    assert f"env hello s3cret {NS}" in log
    assert "files from-configmap s3cret" in log
    assert "runs 1" in log and "runs 2" in log, "the emptyDir outlives container restarts"
    bed.kubectl("delete", "pod", "-n", NS, "features", "--wait=true", "--timeout=60s")


STUBBORN = """
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 2
  containers:
    - name: main
      image: busybox
      command: ["sh", "-c", "trap 'echo got TERM' TERM; echo started; while true; do sleep 0.1; done"]
"""


def test_deletion_sends_sigterm_waits_the_grace_period_then_kills(bed):
    apply(bed, STUBBORN)
    pod = wait_for(lambda: (p := json.loads(bed.kubectl("get", "pod", "-n", NS, "stubborn", "-o", "json")))
                   and p["status"].get("phase") == "Running" and p, what="the pod to run")
    log = Path(bed.base) / "runner" / "pods" / pod["metadata"]["uid"] / "main.log"
    wait_for(lambda: log.exists() and "started" in log.read_text(), what="the container to start")
    found = subprocess.run(["pgrep", "-f", "--", "trap 'echo got TERM'"], capture_output=True, text=True)
    pids = [int(p) for p in found.stdout.split()]
    assert pids
    started = time.time()
    bed.kubectl("delete", "pod", "-n", NS, "stubborn", "--wait=true", "--timeout=60s")
    took = time.time() - started
    assert "got TERM" in log.read_text(), "SIGTERM came first"
    assert took >= 1.5, f"the grace period was honoured ({took:.1f} s)"
    assert not any(pid_alive(p) for p in pids), "SIGKILL ended it"
    assert bed.kubectl("get", "pod", "-n", NS, "stubborn", check=False) == ""
