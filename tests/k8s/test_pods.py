"""What the pod runner implements of a pod spec (init containers, probes, hooks, security
contexts, a HOME of the pod's own), and that it refuses the rest loudly."""

import json
import os
import time
from pathlib import Path

import pytest

from bedtools import fetch, ready, waiting_reason, wait_for


def container_pid(pod, name):
    status = next(s for s in pod["status"]["containerStatuses"] if s["name"] == name)
    return int(status["containerID"].removeprefix("testbed://"))


INIT = """
apiVersion: v1
kind: Pod
metadata: {name: init-demo}
spec:
  initContainers:
    - name: first
      image: busybox
      command: ["sh", "-c", "echo hello-from-init > /site/index.html; echo first >> /site/order"]
      volumeMounts: [{name: site, mountPath: /site}]
    - name: second
      image: busybox
      command: ["sh", "-c", "test -f /site/index.html && echo second >> /site/order"]
      volumeMounts: [{name: site, mountPath: /site}]
  containers:
    - name: web
      image: python:3
      command: ["sh", "-c", "echo main >> /site/order; exec python3 -m http.server 8080 --bind $(POD_IP) --directory /site"]
      env: [{name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
      readinessProbe: {httpGet: {path: /index.html, port: 8080}, periodSeconds: 1}
      volumeMounts: [{name: site, mountPath: /site}]
  volumes: [{name: site, emptyDir: {}}]
---
apiVersion: v1
kind: Pod
metadata: {name: init-fails}
spec:
  restartPolicy: Never
  initContainers:
    - {name: broken, image: busybox, command: ["sh", "-c", "exit 3"]}
  containers:
    - {name: main, image: busybox, command: ["sh", "-c", "echo main ran"]}
"""


def test_init_containers_run_in_order_before_the_main_container_and_share_its_volumes(bed, ns):
    ns.apply(INIT)
    pod = ns.wait_pod("init-demo", ready, "to be ready")
    ip = pod["status"]["podIP"]
    assert fetch(bed, f"http://{ip}:8080/index.html") == "hello-from-init"
    assert fetch(bed, f"http://{ip}:8080/order").split() == ["first", "second", "main"]
    inits = pod["status"]["initContainerStatuses"]
    assert [(s["name"], s["state"]["terminated"]["reason"]) for s in inits] == [("first", "Completed"),
                                                                                ("second", "Completed")]
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Initialized"] == "True"

    failed = ns.wait_pod("init-fails", lambda p: p["status"].get("phase") == "Failed", "to fail")
    assert failed["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert waiting_reason(failed) == "PodInitializing"
    assert ns.log(failed, "main") == "", "the main container never started"


PRESTOP = """
apiVersion: v1
kind: Pod
metadata: {name: prestop}
spec:
  terminationGracePeriodSeconds: 15
  containers:
    - name: shell
      image: busybox
      command: ["sh", "-c", "trap 'echo TERM >> /out/shell; exit 0' TERM; echo started >> /out/shell; while true; do sleep 0.1; done"]
      lifecycle: {preStop: {exec: {command: ["sh", "-c", "echo prestop >> /out/shell; sleep 1"]}}}
      volumeMounts: [{name: out, mountPath: /out}]
    - name: web
      image: python:3
      args:
        - -c
        - |
          import http.server, os, signal
          def note(text):
              with open("/out/web", "a") as f:
                  f.write(text + "\\n")
          def term(*_):
              note("TERM")
              os._exit(0)
          signal.signal(signal.SIGTERM, term)
          class Handler(http.server.BaseHTTPRequestHandler):
              def do_GET(self):
                  note(self.path)
                  self.send_response(200)
                  self.end_headers()
          note("started")
          http.server.HTTPServer((os.environ["POD_IP"], 8080), Handler).serve_forever()
      env: [{name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
      lifecycle: {preStop: {httpGet: {path: /prestop, port: 8080}}}
      volumeMounts: [{name: out, mountPath: /out}]
  volumes: [{name: out, hostPath: {path: OUT, type: DirectoryOrCreate}}]
"""


def test_prestop_hooks_run_before_sigterm_within_the_grace_period(bed, ns):
    out = Path(bed.base) / f"{ns.name}-prestop"
    ns.apply(PRESTOP.replace("OUT", str(out)))
    ns.wait_pod("prestop", lambda p: p["status"].get("phase") == "Running", "to run")
    wait_for(lambda: (out / "shell").exists() and (out / "web").exists(), what="both containers to start")
    started = time.time()
    ns.delete("pod", "prestop")
    took = time.time() - started
    assert (out / "shell").read_text().split() == ["started", "prestop", "TERM"], "exec preStop, then SIGTERM"
    assert (out / "web").read_text().split() == ["started", "/prestop", "TERM"], "httpGet preStop, then SIGTERM"
    assert 1 <= took < 15, f"the hook's second counted within the grace period ({took:.1f} s)"


TCP_PROBE = """
apiVersion: v1
kind: Pod
metadata: {name: tcp-ready}
spec:
  containers:
    - name: main
      image: python:3
      args: ["-c", "import os, socket, time; time.sleep(6); s = socket.socket(); s.bind((os.environ['POD_IP'], 9000)); s.listen(); print('listening', flush=True); time.sleep(3600)"]
      env: [{name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
      readinessProbe: {tcpSocket: {port: 9000}, periodSeconds: 1}
"""
EXEC_PROBES = """
apiVersion: v1
kind: Pod
metadata: {name: exec-probes}
spec:
  containers:
    - name: main
      image: busybox
      command: ["sh", "-c", "touch /work/dead; sleep 4; rm /work/dead; touch /work/started; sleep 2; touch /work/ready; exec sleep 3600"]
      startupProbe: {exec: {command: ["test", "-f", "/work/started"]}, periodSeconds: 1, failureThreshold: 30}
      livenessProbe: {exec: {command: ["test", "!", "-f", "/work/dead"]}, periodSeconds: 1, failureThreshold: 1}
      readinessProbe: {exec: {command: ["test", "-f", "/work/ready"]}, periodSeconds: 1}
      volumeMounts: [{name: work, mountPath: /work}]
  volumes: [{name: work, emptyDir: {}}]
"""


def test_tcp_socket_and_exec_probes_gate_readiness_and_a_startup_probe_holds_liveness_back(ns):
    ns.apply(TCP_PROBE)
    samples = []

    def tcp_pod_ready():
        p = ns.pod("tcp-ready")
        # The log is read after the pod: a Ready pod must already have said "listening".
        samples.append((ready(p), p["status"].get("phase"), "listening" in ns.log(p, "main")))
        return ready(p)

    wait_for(tcp_pod_ready, what="the tcpSocket probe to pass", interval=0.3)
    assert (False, "Running", False) in samples, "running without a listener, not Ready"
    assert all(listening for is_ready, _, listening in samples if is_ready), samples

    ns.apply(EXEC_PROBES)
    observed = []

    def exec_pod_ready():
        p = ns.pod("exec-probes")
        status = (p["status"].get("containerStatuses") or [{}])[0]
        observed.append((status.get("started"), status.get("ready")))
        return ready(p) and p

    pod = wait_for(exec_pod_ready, what="the exec readiness probe to pass", interval=0.3)
    status = pod["status"]["containerStatuses"][0]
    assert status["restartCount"] == 0, "the liveness probe waited for the startup probe"
    assert (False, False) in observed and (True, True) in observed
    assert all(started or not is_ready for started, is_ready in observed), "never ready before started"


SECURITY = """
apiVersion: v1
kind: Pod
metadata: {name: as-user}
spec:
  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}
  containers:
    - name: main
      image: busybox
      command:
        - sh
        - -c
        - |
          echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"
          if echo x > /etc/testbed-as-user 2>/dev/null; then echo "wrote /etc"; else echo "cannot write /etc"; fi
          echo ok > /data/file && echo "wrote the volume"
          stat -c 'volume group %g' /data
          exec sleep 3600
      volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, emptyDir: {}}]
---
apiVersion: v1
kind: Pod
metadata: {name: read-only}
spec:
  restartPolicy: Never
  containers:
    - name: main
      image: busybox
      securityContext: {readOnlyRootFilesystem: true}
      command: ["sh", "-c", "touch /tmp/testbed-read-only-probe; echo scratch > /scratch/file && echo 'wrote the volume'"]
      volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes: [{name: scratch, emptyDir: {}}]
---
apiVersion: v1
kind: Pod
metadata: {name: non-root-without-user}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
    - {name: main, image: busybox, command: ["sleep", "3600"]}
"""


def test_security_contexts_run_as_the_user_with_a_read_only_root_or_not_at_all(ns):
    ns.apply(SECURITY)
    pod = ns.wait_pod("as-user", lambda p: p["status"].get("phase") == "Running", "to run")
    wait_for(lambda: "volume group" in ns.log(pod, "main"), what="the script to finish")
    log = ns.log(pod, "main")
    assert "uid=1000 gid=3000 groups=3000 2000" in log, log
    assert "cannot write /etc" in log, log
    assert "wrote the volume" in log and "volume group 2000" in log, log
    uid_line = next(line for line in Path(f"/proc/{container_pid(pod, 'main')}/status").read_text().splitlines()
                    if line.startswith("Uid:"))
    assert uid_line.split()[1:] == ["1000"] * 4, "the process itself runs as 1000, not root"
    assert not os.path.exists("/etc/testbed-as-user")

    done = ns.wait_pod("read-only", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), "to finish")
    log = ns.log(done, "main")
    assert "Read-only file system" in log and "wrote the volume" in log, log
    assert not os.path.exists("/tmp/testbed-read-only-probe")

    refused = ns.wait_pod("non-root-without-user", lambda p: waiting_reason(p) == "CreateContainerConfigError",
                          "a CreateContainerConfigError")
    status = refused["status"]["containerStatuses"][0]
    assert status["state"]["waiting"]["message"] == "container has runAsNonRoot and image will run as root"
    assert "containerID" not in status and ns.log(refused, "main") == "", "nothing ran as root"


REFUSED = {
    "grpc-probe": ("readinessProbe.grpc", {"containers": [
        {"name": "main", "image": "busybox", "command": ["sleep", "3600"], "readinessProbe": {"grpc": {"port": 9000}}}]}),
    "sidecar": ("initContainers[side].restartPolicy", {
        "initContainers": [{"name": "side", "image": "busybox", "command": ["sleep", "3600"], "restartPolicy": "Always"}],
        "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}),
    "host-network": ("spec.hostNetwork", {"hostNetwork": True, "containers": [
        {"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}),
    "nfs-volume": ("volumes[data].nfs", {"volumes": [{"name": "data", "nfs": {"server": "nfs.example", "path": "/"}}],
                                         "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}),
    "sysctls": ("securityContext.sysctls", {"securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]},
                                            "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}),
    "dns-none": ("spec.dnsPolicy", {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["10.0.0.1"]},
                                    "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}),
    "tty": ("containers[main].tty", {"containers": [{"name": "main", "image": "busybox", "command": ["sh"],
                                                     "stdin": True, "tty": True}]}),
}


@pytest.fixture(scope="module")
def refused_pods(ns):
    """All refused pods at once: one wait for the lot."""
    manifests = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
                 for name, (_, spec) in REFUSED.items()]
    ns.apply("\n---\n".join(json.dumps(m) for m in manifests))
    return {name: ns.wait_pod(name, lambda p: waiting_reason(p) == "Unsupported", "the Unsupported reason")
            for name in REFUSED}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_pod_using_an_unimplemented_feature_is_refused_with_the_reason(ns, refused_pods, name):
    field = REFUSED[name][0]
    pod = refused_pods[name]
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert field in waiting["message"], waiting
    assert pod["status"]["phase"] == "Pending"
    assert not ready(pod)
    events = [e for e in ns.events(name) if e["reason"] == "Unsupported"]
    assert events and events[0]["type"] == "Warning" and field in events[0]["message"]


IGNORED = """
apiVersion: v1
kind: Pod
metadata: {name: limits}
spec:
  containers:
    - name: main
      image: busybox
      command: ["sh", "-c", "echo memory limit $LIMIT; exec sleep 3600"]
      resources: {limits: {memory: 64Mi}}
      env: [{name: LIMIT, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}]
"""


def test_ignored_fields_are_reported_and_the_pod_runs(ns):
    ns.apply(IGNORED)
    pod = ns.wait_pod("limits", ready, "to be ready")
    wait_for(lambda: "memory limit 64" in ns.log(pod, "main"), what="the downward API resource value")
    ignored = [e for e in ns.events("limits") if e["reason"] == "Ignored"]
    assert ignored and "resources are not enforced" in ignored[0]["message"]


HOME = """
apiVersion: v1
kind: Pod
metadata: {name: home}
spec:
  restartPolicy: Never
  containers:
    - name: main
      image: python:3
      args:
        - -c
        - |
          import os, ssl, urllib.error, urllib.request
          home = os.environ["HOME"]
          print("HOME", home)
          print("entries", sorted(os.listdir(home)))
          print("kubeconfig", os.path.exists(os.path.expanduser("~/.kube/config")), os.environ.get("KUBECONFIG"))
          sa = "/var/run/secrets/kubernetes.io/serviceaccount"
          ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
          url = "https://%s:%s/api/v1/namespaces/%s/pods" % (
              os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"], open(sa + "/namespace").read())
          try:
              code = urllib.request.urlopen(url, context=ctx).status
          except urllib.error.HTTPError as e:
              code = e.code
          print("anonymous", code)
"""


def test_a_pod_has_its_own_empty_home_and_no_kubeconfig_and_no_token_means_no_access(bed, ns):
    ns.apply(HOME)
    pod = ns.wait_pod("home", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), "to finish")
    lines = dict(line.split(" ", 1) for line in ns.log(pod, "main").splitlines())
    assert pod["status"]["phase"] == "Succeeded", lines
    home = lines["HOME"]
    assert home != os.environ.get("HOME") and home.startswith(str(bed.base)), home
    assert lines["entries"] == "[]"
    assert lines["kubeconfig"] == "False None"
    assert lines["anonymous"] in ("401", "403"), lines


EXTRAS = """
apiVersion: v1
kind: ConfigMap
metadata: {name: extra}
data: {ALPHA: one, BETA: two}
---
apiVersion: v1
kind: Pod
metadata: {name: post-start}
spec:
  containers:
    - name: main
      image: busybox
      command: ["sh", "-c", "while [ ! -f /work/hooked ]; do sleep 0.1; done; echo hooked $(cat /work/hooked); exec sleep 3600"]
      lifecycle: {postStart: {exec: {command: ["sh", "-c", "echo yes > /work/hooked"]}}}
      volumeMounts: [{name: work, mountPath: /work}]
  volumes: [{name: work, emptyDir: {}}]
---
apiVersion: v1
kind: Pod
metadata: {name: gated}
spec:
  readinessGates: [{conditionType: example.com/go}]
  containers:
    - {name: main, image: busybox, command: ["sleep", "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: deadline}
spec:
  activeDeadlineSeconds: 2
  containers:
    - {name: main, image: busybox, command: ["sleep", "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: environment}
spec:
  restartPolicy: Never
  hostAliases: [{ip: 10.1.2.3, hostnames: [alias.example]}]
  containers:
    - name: main
      image: busybox
      securityContext: {capabilities: {drop: [ALL]}}
      envFrom: [{configMapRef: {name: extra}, prefix: X_}]
      command:
        - sh
        - -c
        - |
          echo "env $X_ALPHA $X_BETA $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"
          grep alias.example /etc/hosts
          grep CapEff /proc/self/status
          echo "hostname $(hostname)"
"""


def test_post_start_readiness_gates_deadlines_and_the_environment(ns):
    ns.apply(EXTRAS)
    hooked = ns.wait_pod("post-start", lambda p: p["status"].get("phase") == "Running", "to run")
    wait_for(lambda: "hooked yes" in ns.log(hooked, "main"), what="the postStart hook's file")

    gated = ns.wait_pod("gated", lambda p: (p["status"].get("containerStatuses") or [{}])[0].get("ready"),
                        "its container to be ready")
    assert not ready(gated), "the readiness gate holds the pod back"
    ns.kubectl("patch", "pod", "gated", "--subresource=status",
               "-p", '{"status": {"conditions": [{"type": "example.com/go", "status": "True"}]}}')
    ns.wait_pod("gated", ready, "to be Ready once its gate is True")

    failed = ns.wait_pod("deadline", lambda p: p["status"].get("phase") == "Failed"
                         and "terminated" in p["status"]["containerStatuses"][0]["state"], "to fail and stop")
    assert failed["status"]["reason"] == "DeadlineExceeded"
    assert failed["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 143, "SIGTERM ended it"

    done = ns.wait_pod("environment", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), "to finish")
    log = ns.log(done, "main").splitlines()
    assert log == ["env one two 10.96.0.1:443", "10.1.2.3\talias.example", "CapEff:\t0000000000000000",
                   "hostname environment"], log
