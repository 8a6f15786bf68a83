"""Smoke suite for the Kubernetes test bed: a real kube-apiserver, controller manager and
etcd built from the Go modules, with the pod runner as kubelets and scheduler."""

import json
import subprocess
import time

from bedtools import fetch, pid_alive, ready, wait_for
from testbed import HERE


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


def test_a_deployment_behind_a_service_answers_and_deleted_pods_are_replaced(bed, ns):
    ns.apply(WEB)
    running = wait_for(lambda: (p := ns.pods("app=web")) and len(p) == 2 and all(ready(x) for x in p) and p,
                       what="two ready web pods")
    ips = {p["status"]["podIP"] for p in running}
    assert len(ips) == 2 and all(ip.startswith("10.244.") for ip in ips)
    assert wait_for(lambda: fetch(bed, f"http://web.{ns.name}.svc.cluster.local:8080/"), what="the Service name to answer")
    assert fetch(bed, f"http://web.{ns.name}:8080/")

    victim = running[0]
    found = subprocess.run(["pgrep", "-f", "--", f"--bind {victim['status']['podIP']} "], capture_output=True, text=True)
    pid = int(found.stdout.split()[0])
    assert pid_alive(pid)
    ns.delete("pod", victim["metadata"]["name"])
    replaced = wait_for(
        lambda: (p := ns.pods("app=web")) and len(p) == 2 and all(ready(x) for x in p)
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
            - >-
              test -f /data/id || echo $(POD_NAME) > /data/id;
              echo $(POD_UID) >> /data/uids;
              exec python3 -m http.server 8080 --bind $(POD_IP) --directory /data
          env:
            - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
            - {name: POD_UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
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


def test_a_statefulset_keeps_ordinal_pods_on_their_own_volumes(bed, ns):
    # Pre-created PersistentVolumes of a class with no provisioner: static binding.
    for i in range(3):
        path = bed.volumes / f"{ns.name}-pv-{i}"
        bed.kubectl("apply", "-f", "-", stdin=f"""
apiVersion: v1
kind: PersistentVolume
metadata: {{name: {ns.name}-pv-{i}}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: local
  persistentVolumeReclaimPolicy: Retain
  hostPath: {{path: {path}}}
""")
    ns.apply(STATEFUL)
    wait_for(lambda: (p := ns.pods("app=db")) and len(p) == 3 and all(ready(x) for x in p), what="three ready db pods")
    for i in range(3):
        assert fetch(bed, f"http://db-{i}.db.{ns.name}.svc.cluster.local:8080/id") == f"db-{i}"
    claims = json.loads(ns.kubectl("get", "pvc", "-o", "json"))["items"]
    volume_of = {c["metadata"]["name"]: c["spec"]["volumeName"] for c in claims}
    assert set(volume_of) == {"data-db-0", "data-db-1", "data-db-2"}

    old = ns.pod("db-1")
    ns.delete("pod", "db-1")
    new = ns.wait_pod("db-1", lambda p: p["metadata"]["uid"] != old["metadata"]["uid"] and ready(p), "to come back")
    assert wait_for(lambda: fetch(bed, f"http://db-1.db.{ns.name}.svc.cluster.local:8080/id"),
                    what="db-1 to answer") == "db-1"
    # The same volume was mounted again: both pods' uids are in its one file.
    uids = (bed.volumes / volume_of["data-db-1"] / "uids").read_text().split()
    assert uids == [old["metadata"]["uid"], new["metadata"]["uid"]]
    assert (bed.volumes / volume_of["data-db-1"] / "id").read_text().strip() == "db-1"


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


def test_a_service_account_token_is_mounted_and_rbac_is_enforced(ns):
    ns.apply(RBAC)
    pod = ns.wait_pod("rbac-probe", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), "to finish")
    text = ns.log(pod, "probe")
    assert "pods 200" in text, text
    assert "secrets 403" in text, text
    assert pod["status"]["phase"] == "Succeeded"


def test_helm_installs_a_chart(bed, ns):
    out = bed.run(str(bed.bin / "helm"), "install", "smoke", str(HERE / "chart"), "-n", ns.name,
                  f"--kubeconfig={bed.kubeconfig}", "--wait", "--timeout", "90s", check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    deployed = wait_for(lambda: (p := ns.pods("app=smoke-web")) and all(ready(x) for x in p) and p,
                        what="the chart's pod")
    ip = deployed[0]["status"]["podIP"]
    assert fetch(bed, f"http://{ip}:8080/index.html") == "hello from helm"
    listed = bed.run(str(bed.bin / "helm"), "list", "-n", ns.name, f"--kubeconfig={bed.kubeconfig}", "-o", "json")
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


def test_env_sources_volumes_and_a_failing_liveness_probe_restart_the_container(ns):
    ns.apply(FEATURES)
    pod = ns.wait_pod("features", lambda p: (p["status"].get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 2,
                      "the liveness probe to restart the container twice")
    log = ns.log(pod, "main")
    assert f"env hello s3cret {ns.name}" in log
    assert "files from-configmap s3cret" in log
    assert "runs 1" in log and "runs 2" in log, "the emptyDir outlives container restarts"
    assert any(e["reason"] == "Unhealthy" and "Liveness probe failed" in e["message"] for e in ns.events("features"))
    ns.delete("pod", "features")


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


def test_deletion_sends_sigterm_waits_the_grace_period_then_kills(ns):
    ns.apply(STUBBORN)
    pod = ns.wait_pod("stubborn", lambda p: p["status"].get("phase") == "Running", "to run")
    wait_for(lambda: "started" in ns.log(pod, "main"), what="the container to start")
    found = subprocess.run(["pgrep", "-f", "--", "trap 'echo got TERM'"], capture_output=True, text=True)
    pids = [int(p) for p in found.stdout.split()]
    assert pids
    started = time.time()
    ns.delete("pod", "stubborn")
    took = time.time() - started
    assert "got TERM" in ns.log(pod, "main"), "SIGTERM came first"
    assert took >= 1.5, f"the grace period was honoured ({took:.1f} s)"
    assert not any(pid_alive(p) for p in pids), "SIGKILL ended it"
    assert ns.get("pod", "stubborn") is None, "the apiserver says NotFound"
