"""The operator end to end in the test bed: `helm install` of charts/runnel-operator (two
replicas, leader election, RBAC enforced by the real apiserver), `kubectl apply` of
examples/cluster.yaml (3 brokers, a managed 3-member etcd), real kafka-python clients
and the brokers' web console through the bootstrap Service, a killed broker, a config
roll under an idempotent acks=all load checked for loss and duplication, the operator
restarted mid-roll, scaling up and a refused scale-down, bad manifests refused by the
apiserver (CEL) and bad config by a condition, and garbage collection on deletion.

One cluster is shared by the module's tests, in order. Not testable here and said so in
the README: volume sizes (the bed's provisioner has no sizes), HPA (no metrics API),
ServiceMonitor/PrometheusRule (rendered by `helm template` only: no Prometheus CRDs)."""

import json
import os
import signal
import subprocess
import sys
import time

from pathlib import Path

import pytest

from bedtools import ready, wait_for
from operatortools import (
    CHART,
    HERE,
    ROOT,
    apply_cluster,
    bootstrap,
    client,
    condition,
    container_pid,
    install_operator,
    is_true,
    leader,
    leader_metrics,
    leader_pid,
    operator_logs,
    operator_pods,
    uninstall_operator,
    usage,
)

BROKERS = "app.kubernetes.io/instance=demo,app.kubernetes.io/component=broker"
RESULTS = {}


def status_writes(bed):
    line = next(l for l in leader_metrics(bed).splitlines()
                if l.startswith('runnel_operator_status_writes_total{kind="KafkaCluster"}'))
    return int(float(line.split()[-1]))


@pytest.fixture(scope="module")
def operator(bed):
    install_operator(bed)
    yield
    uninstall_operator(bed)


@pytest.fixture(scope="module")
def demo(bed, ns, operator):
    started = time.monotonic()
    kc = apply_cluster(ns)
    RESULTS["apply_to_ready_s"] = round(time.monotonic() - started, 1)
    print(f"kubectl apply to Ready: {RESULTS['apply_to_ready_s']} s (3 brokers, 3 etcd members)")
    return kc


def http_get(bed, url, host=None):
    """(status, body) of a GET from inside the bed's network namespace, any status."""
    headers = {"Host": host} if host else {}
    script = ("import sys, urllib.request, urllib.error\n"
              f"req = urllib.request.Request({url!r}, headers={headers!r})\n"
              "try:\n    r = urllib.request.urlopen(req, timeout=5); code, body = r.status, r.read()\n"
              "except urllib.error.HTTPError as e:\n    code, body = e.code, e.read()\n"
              "print(code); sys.stdout.write(body.decode(errors='replace'))\n")
    out = bed.run(sys.executable, "-c", script, check=False)
    if out.returncode != 0:
        return None, out.stderr
    code, _, body = out.stdout.partition("\n")
    return int(code), body


def wait_ready(bed, ns, what, timeout=90):
    """The cluster once Ready; on a timeout the failure shows its status and the operator's
    last log lines."""
    try:
        return wait_for(lambda: (k := ns.get("kafkacluster", "demo")) and is_true(k, "Ready") and k,
                        timeout=timeout, what=what)
    except AssertionError as e:
        status = json.dumps((ns.get("kafkacluster", "demo") or {}).get("status"), indent=1)
        raise AssertionError(f"{e}\nstatus: {status}\noperator log:\n{operator_logs(bed)[-6000:]}") from None


def test_the_operator_says_when_its_crds_are_missing(bed):
    # Runs before the chart installs the CRDs (this module is the bed's first).
    if bed.kubectl_run("get", "crd", "kafkaclusters.runnel.dev").returncode == 0:
        pytest.skip("the CRDs are installed already")
    out = bed.run("env", f"KUBECONFIG={bed.kubeconfig}", str(ROOT / "target" / "debug" / "runnel-operator"),
                  "run", "--leader-election=false", "--metrics-address=127.0.0.1:0", check=False, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "the CRD kafkaclusters.runnel.dev is not installed" in out.stderr, out.stderr


def test_the_chart_renders_and_lints_clean(bed):
    out = bed.run(str(bed.bin / "helm"), "lint", str(CHART), "--strict", "--kube-version", "1.34.0", check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    rendered = bed.run(str(bed.bin / "helm"), "template", "x", str(CHART), "--kube-version", "1.34.0",
                       "--set", "metrics.serviceMonitor.enabled=true",
                       "--set", "metrics.prometheusRule.enabled=true", check=False)
    assert rendered.returncode == 0, rendered.stderr
    for kind in ("Deployment", "ClusterRole", "ServiceMonitor", "PrometheusRule"):
        assert f"kind: {kind}" in rendered.stdout


def test_the_operator_role_has_no_wildcards(bed, operator):
    role = json.loads(bed.kubectl("get", "clusterrole", "runnel-operator", "-o", "json"))
    for rule in role["rules"]:
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert "*" not in rule.get(field, []), f"wildcard in {field}: {rule}"
    # Two replicas, one holding the lease.
    pods = operator_pods(bed)
    assert len(pods) == 2 and all(ready(p) for p in pods)
    assert leader(bed) in {p["metadata"]["name"] for p in pods}


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"replicas": 0, "storage": {"size": "1Gi"}, "etcd": {"endpoints": ["http://e:2379"]}},
         "a cluster needs at least one broker"),
        ({"replicas": 3, "storage": {"size": "1Gi"}, "etcd": {"managed": {"members": 2, "storage": {"size": "1Gi"}}}},
         "a managed etcd has 1 or 3 members"),
        ({"replicas": 3, "storage": {"size": "1Gi"},
          "etcd": {"endpoints": ["http://e:2379"], "managed": {"members": 1, "storage": {"size": "1Gi"}}}},
         "set exactly one of etcd.endpoints and etcd.managed"),
        ({"replicas": 3, "storage": {"size": "1Gi"}, "etcd": {"endpoints": ["https://e:2379"]}},
         "etcd endpoints are http:// URLs"),
        ({"replicas": 3, "storage": {"size": "1Gi"}, "listeners": {"port": 9096}, "etcd": {"endpoints": ["http://e:2379"]}},
         "are the brokers' other ports"),
        ({"replicas": 3, "storage": {"size": "1Gi"}, "etcd": {"endpoints": ["http://e:2379"]},
          "console": {"allowedHosts": ["a.example.com,b.example.com"]}},
         "without whitespace or commas"),
    ],
)
def test_the_apiserver_refuses_invalid_clusters(bed, ns, operator, spec, message):
    manifest = json.dumps({"apiVersion": "runnel.dev/v1alpha1", "kind": "KafkaCluster",
                           "metadata": {"name": "bad", "namespace": ns.name}, "spec": spec})
    out = bed.kubectl_run("apply", "-f", "-", stdin=manifest)
    assert out.returncode != 0 and message in out.stderr, out.stderr


def test_the_external_etcd_example_is_valid(bed, ns, operator):
    out = bed.kubectl_run("-n", ns.name, "apply", "--dry-run=server", "-f", "-",
                          stdin=(ROOT / "examples" / "cluster-external-etcd.yaml").read_text())
    assert out.returncode == 0, out.stderr


def test_the_cluster_becomes_ready_and_serves_clients(bed, ns, demo):
    status = demo["status"]
    assert status["replicas"] == 3 and status["readyReplicas"] == 3
    assert status["bootstrap"] == bootstrap(ns)
    assert status["controller"] in (0, 1, 2)
    assert status["labelSelector"] == "app.kubernetes.io/component=broker,app.kubernetes.io/instance=demo,app.kubernetes.io/name=runnel"
    assert [b["id"] for b in status["brokers"]] == [0, 1, 2]
    assert all(b["state"] == "live" for b in status["brokers"])
    # broker.rack from each pod's node zone, read through the API by the init container.
    racks = {b["rack"] for b in status["brokers"]}
    assert racks <= {"zone-a", "zone-b", "zone-c"} and len(racks) >= 2, status["brokers"]
    etcd_pods = ns.pods("app.kubernetes.io/instance=demo,app.kubernetes.io/component=etcd")
    assert len(etcd_pods) == 3 and all(ready(p) for p in etcd_pods)

    got = client(bed, "roundtrip", bootstrap(ns), "hello", "200")
    assert got == {"produced": 200, "consumed": 200, "distinct": 200}
    meta = client(bed, "metadata", bootstrap(ns))
    hosts = [(b[0], b[1]) for b in meta["brokers"]]
    assert hosts == [(i, f"demo-{i}.demo-brokers.{ns.name}.svc.cluster.local") for i in range(3)]
    # The leader's /metrics carries the cluster's gauges and its reconciles.
    metrics = leader_metrics(bed)
    assert metrics and f'runnel_cluster_brokers{{namespace="{ns.name}",name="demo"}} 3' in metrics, metrics
    assert 'runnel_operator_reconciles_total{kind="KafkaCluster",outcome="ok"}' in metrics
    assert "runnel_operator_leader 1" in metrics
    table = bed.kubectl("-n", ns.name, "get", "kc")
    print(table)
    assert "READY" in table and "CONTROLLER" in table and "True" in table

    # The web console through the bootstrap Service, at the address status gives and by
    # the Service's short name (both allowed Hosts); any other Host is refused (421).
    console = f"http://demo-bootstrap.{ns.name}.svc.cluster.local:9097/ui"
    assert status["console"] == console
    for url in (console, f"http://demo-bootstrap.{ns.name}.svc:9097/ui"):
        code, body = wait_for(lambda: (r := http_get(bed, url))[0] == 200 and r, timeout=30,
                              what=f"the console at {url}")
        assert "<h1" in body, body[:2000]
    assert http_get(bed, console, host="rebind.example.com")[0] == 421
    wide = bed.kubectl("-n", ns.name, "get", "kc", "-o", "wide")
    assert "CONSOLE" in wide and console in wide, wide
    assert "CONSOLE" not in table


def template_config(ns):
    """The server.properties ConfigMap the StatefulSet's template mounts."""
    sts = json.loads(ns.kubectl("get", "statefulset", "demo", "-o", "json"))
    volumes = sts["spec"]["template"]["spec"]["volumes"]
    return next(v["configMap"]["name"] for v in volumes if v["name"] == "config")


def mounted_config(pod):
    return next(v["configMap"]["name"] for v in pod["spec"]["volumes"] if v["name"] == "config")


def config_maps(ns):
    """The cluster's server.properties ConfigMaps (content-named, demo-config-<hash>)."""
    items = json.loads(ns.kubectl("get", "configmap", "-l", BROKERS, "-o", "json"))["items"]
    return sorted(c["metadata"]["name"] for c in items if c["metadata"]["name"].startswith("demo-config"))


def test_an_unchanged_spec_writes_nothing(bed, ns, demo):
    kinds = ["statefulset/demo", "statefulset/demo-etcd", "service/demo-brokers", "service/demo-bootstrap",
             f"configmap/{template_config(ns)}", "configmap/demo-racks", "pdb/demo", "serviceaccount/demo-broker",
             "pvc/data-demo-0", "pvc/data-demo-etcd-0"]

    def versions():
        return {k: json.loads(ns.kubectl("get", k, "-o", "json"))["metadata"]["resourceVersion"] for k in kinds}

    before = versions()
    pid = leader_pid(bed)
    cpu0, _ = usage(pid)
    writes_before = status_writes(bed)
    # An annotation triggers reconciles without changing the spec.
    for i in range(3):
        ns.kubectl("annotate", "kafkacluster", "demo", f"test/poke={i}", "--overwrite")
        time.sleep(2)
    assert versions() == before
    cpu1, rss = usage(pid)
    RESULTS["idle_cpu_ms_per_s"] = round((cpu1 - cpu0) * 1000 / 6, 1)
    RESULTS["idle_rss_mib"] = round(rss, 1)
    print(f"operator at idle (3 reconciles in 6 s): {RESULTS['idle_cpu_ms_per_s']} ms CPU/s, {rss:.1f} MiB RSS")
    # Reconciled (the annotations trigger it) without a status write: nothing changed.
    assert status_writes(bed) == writes_before


def test_a_killed_broker_degrades_the_cluster_until_it_is_back(bed, ns, demo):
    client(bed, "roundtrip", bootstrap(ns), "replicated", "50")
    victim = ns.pod("demo-1")
    started = time.monotonic()
    os.kill(container_pid(victim, "broker"), signal.SIGKILL)
    try:
        degraded = wait_for(lambda: (k := ns.get("kafkacluster", "demo")) and is_true(k, "Degraded") and k,
                            timeout=60, what="Degraded", interval=0.2)
    except AssertionError as e:
        status = json.dumps((ns.get("kafkacluster", "demo") or {}).get("status"), indent=1)
        raise AssertionError(f"{e}\nstatus: {status}\noperator log:\n{operator_logs(bed)[-6000:]}") from None
    took = time.monotonic() - started
    print(f"Degraded {took:.1f} s after kill -9: {condition(degraded, 'Degraded')['message']}")
    assert degraded["status"]["underReplicatedPartitions"] > 0 or any(
        b["state"] == "absent" for b in degraded["status"]["brokers"])
    wait_for(lambda: (k := ns.get("kafkacluster", "demo")) and is_true(k, "Ready") and not is_true(k, "Degraded"),
             timeout=120, what="Ready again after the restart")
    print(f"Ready again {time.monotonic() - started:.1f} s after kill -9")


def start_load(bed, ns, topic):
    client(bed, "roundtrip", bootstrap(ns), topic, "1")
    proc = subprocess.Popen(bed.ns(sys.executable, str(HERE / "opload.py"), "load", bootstrap(ns), topic),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert json.loads(proc.stdout.readline()) == {"started": True}
    time.sleep(3)
    return proc


def stop_load(proc):
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    print(f"history: {report['acknowledged']} acknowledged, {len(report['lost'])} lost, "
          f"{len(report['duplicated'])} duplicated, longest stall {report['longest_stall_s']} s")
    assert report["acknowledged"] > 0
    assert report["lost"] == [] and report["duplicated"] == [] and report["reordered"] == []
    return report


def pod_uids(ns):
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in ns.pods(BROKERS)}


def roll_order(ns, before, timeout=300):
    """Waits until every broker pod was replaced; returns the pod names in the order
    their replacements were created."""
    def done():
        now = {p["metadata"]["name"]: p for p in ns.pods(BROKERS)}
        replaced = [n for n, p in now.items() if before.get(n) != p["metadata"]["uid"] and ready(p)]
        return len(replaced) == len(before) and now
    pods = wait_for(done, timeout=timeout, what="every broker restarted", interval=1)
    return sorted(pods, key=lambda n: pods[n]["metadata"]["creationTimestamp"] + n[-1])


def test_a_config_change_rolls_one_broker_at_a_time(bed, ns, demo):
    load = start_load(bed, ns, "roll")
    before = pod_uids(ns)
    pid = leader_pid(bed)
    cpu0, _ = usage(pid)
    roll_started = time.monotonic()
    old_config = template_config(ns)
    ns.kubectl("patch", "kafkacluster", "demo", "--type=merge", "-p",
               json.dumps({"spec": {"config": {"log.retention.ms": "86400000"}}}))
    new_config = wait_for(lambda: (c := template_config(ns)) != old_config and c, timeout=30,
                          what="a new server.properties ConfigMap in the template")
    # The brokers the roll has not reached keep mounting the old file (a crash restart of
    # theirs must not take the new config early), so it stays while they do.
    assert mounted_config(ns.pod("demo-0")) == old_config
    assert old_config in config_maps(ns)
    seen_at_once = 0
    waits = set()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        roll = (ns.get("kafkacluster", "demo").get("status") or {}).get("roll") or {}
        if roll.get("waitingFor"):
            waits.add(roll["waitingFor"])
        pods = ns.pods(BROKERS)
        down = [p for p in pods if not ready(p) or p["metadata"].get("deletionTimestamp")]
        seen_at_once = max(seen_at_once, len(down) + (3 - len(pods)))
        if all(before.get(p["metadata"]["name"]) != p["metadata"]["uid"] and ready(p) for p in pods) and len(pods) == 3:
            break
        time.sleep(0.3)
    order = roll_order(ns, before)
    roll_s = time.monotonic() - roll_started
    cpu1, rss = usage(pid)
    RESULTS["roll_s"] = round(roll_s, 1)
    RESULTS["roll_cpu_ms_per_s"] = round((cpu1 - cpu0) * 1000 / roll_s, 1)
    RESULTS["roll_rss_mib"] = round(rss, 1)
    report = stop_load(load)
    print(f"roll order {order} in {roll_s:.1f} s, at most {seen_at_once} broker(s) down at once; operator "
          f"{RESULTS['roll_cpu_ms_per_s']} ms CPU/s, {rss:.1f} MiB RSS")
    assert order == ["demo-2", "demo-1", "demo-0"]
    assert seen_at_once <= 1
    # The roll did wait between restarts, for the reasons it reports (not just by luck).
    print("the roll waited for:", sorted(waits))
    assert any("not ready" in w or "stopping" in w or "registered" in w or "ISR" in w
               or "under-replicated" in w for w in waits), waits
    kc = wait_ready(bed, ns, "Ready after the roll")
    assert "roll" not in kc["status"]
    # Once no pod mounts the old server.properties, it goes.
    assert all(mounted_config(p) == new_config for p in ns.pods(BROKERS))
    wait_for(lambda: config_maps(ns) == [new_config], timeout=30, what="only the current ConfigMap left")
    # The recorder folds repeats into one Event with a count (events.k8s.io series).
    restarts = sum((e.get("series") or {}).get("count") or e.get("count") or 1
                   for e in ns.events("demo") if e.get("reason") == "RestartingBroker")
    assert restarts >= 3
    RESULTS["roll_longest_stall_s"] = report["longest_stall_s"]


def test_a_killed_operator_resumes_the_roll(bed, ns, demo):
    load = start_load(bed, ns, "resume")
    before = pod_uids(ns)
    ns.kubectl("patch", "kafkacluster", "demo", "--type=merge", "-p",
               json.dumps({"spec": {"config": {"log.retention.ms": "172800000"}}}))
    # Right after the roll's first restart, kill -9 the leading operator: its record of
    # that restart survives only in the status it wrote before evicting the pod.
    wait_for(lambda: pod_uids(ns).get("demo-2") != before["demo-2"], timeout=120, what="the roll's first restart",
             interval=0.1)
    os.kill(leader_pid(bed), signal.SIGKILL)
    seen_at_once = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        pods = ns.pods(BROKERS)
        down = [p for p in pods if not ready(p) or p["metadata"].get("deletionTimestamp")]
        seen_at_once = max(seen_at_once, len(down) + (3 - len(pods)))
        if len(pods) == 3 and all(before.get(p["metadata"]["name"]) != p["metadata"]["uid"] and ready(p)
                                  for p in pods):
            break
        time.sleep(0.2)
    order = roll_order(ns, before)
    stop_load(load)
    print(f"after kill -9 of the operator: roll order {order}, at most {seen_at_once} broker(s) down at once")
    assert order == ["demo-2", "demo-1", "demo-0"]
    assert seen_at_once <= 1
    wait_ready(bed, ns, "Ready after the resumed roll")


def test_scaling_up_adds_a_broker_and_scaling_down_is_refused(bed, ns, demo):
    ns.kubectl("scale", "kafkacluster/demo", "--replicas=4")
    kc = wait_for(lambda: (k := ns.get("kafkacluster", "demo")) and is_true(k, "Ready")
                  and k["status"]["replicas"] == 4 and k, timeout=120, what="4 brokers Ready")
    assert [b["id"] for b in kc["status"]["brokers"]] == [0, 1, 2, 3]
    admin = client(bed, "metadata", bootstrap(ns))
    assert [b[0] for b in admin["brokers"]] == [0, 1, 2, 3]
    bed.run(sys.executable, "-c", (
        "from kafka.admin import KafkaAdminClient, NewTopic;"
        f"a = KafkaAdminClient(bootstrap_servers='{bootstrap(ns)}');"
        "a.create_topics([NewTopic('spread', 8, 3)]); a.close()"))
    meta = wait_for(lambda: (m := client(bed, "metadata", bootstrap(ns))) and "spread" in m["topics"] and m,
                    timeout=30, what="the new topic")
    replicas = [r for p in meta["topics"]["spread"] for r in p["replicas"]]
    assert 3 in replicas, "the new broker got no replica of a new topic"

    ns.kubectl("scale", "kafkacluster/demo", "--replicas=2")
    kc = wait_for(lambda: (k := ns.get("kafkacluster", "demo")) and is_true(k, "ScaleBlocked") and k,
                  timeout=60, what="ScaleBlocked")
    print("ScaleBlocked:", condition(kc, "ScaleBlocked")["message"])
    time.sleep(3)
    assert len(ns.pods(BROKERS)) == 4
    assert ns.get("kafkacluster", "demo")["status"]["replicas"] == 4
    assert any(e.get("reason") == "ScaleDownNotSupported" for e in ns.events("demo"))
    ns.kubectl("scale", "kafkacluster/demo", "--replicas=4")
    wait_for(lambda: (k := ns.get("kafkacluster", "demo")) and not is_true(k, "ScaleBlocked"), timeout=60,
             what="ScaleBlocked cleared")


def test_invalid_broker_config_is_refused_with_a_condition(bed, ns, demo):
    hash_before = json.loads(ns.kubectl("get", "statefulset", "demo", "-o", "json"))["spec"]["template"]["metadata"]["annotations"]
    ns.kubectl("patch", "kafkacluster", "demo", "--type=merge", "-p",
               json.dumps({"spec": {"config": {"min.insync.replicas": "two", "broker.id": "7"}}}))
    kc = wait_for(lambda: (k := ns.get("kafkacluster", "demo")) and is_true(k, "Refused") and k,
                  timeout=60, what="Refused")
    message = condition(kc, "Refused")["message"]
    print("Refused:", message)
    assert "min.insync.replicas" in message and "broker.id" in message
    after = json.loads(ns.kubectl("get", "statefulset", "demo", "-o", "json"))["spec"]["template"]["metadata"]["annotations"]
    assert after == hash_before, "an invalid config must not reach the brokers"
    ns.kubectl("patch", "kafkacluster", "demo", "--type=merge", "-p",
               json.dumps({"spec": {"config": {"min.insync.replicas": "2", "broker.id": None}}}))
    wait_for(lambda: (k := ns.get("kafkacluster", "demo")) and not is_true(k, "Refused"), timeout=60,
             what="Refused cleared")


def test_fixed_fields_cannot_change(bed, ns, demo):
    for patch, message in [
        ({"spec": {"etcd": {"managed": {"members": 1}}}}, "member count cannot change"),
        ({"spec": {"storage": {"class": "hostpath-retain"}}}, "storage.class cannot change"),
        ({"spec": {"etcd": {"managed": None, "endpoints": ["http://elsewhere:2379"]}}}, "etcd cannot change"),
    ]:
        out = bed.kubectl_run("-n", ns.name, "patch", "kafkacluster", "demo", "--type=merge", "-p", json.dumps(patch))
        assert out.returncode != 0 and message in out.stderr, out.stderr


def test_storage_grows_the_claims_and_never_shrinks(bed, ns, demo):
    ns.kubectl("patch", "kafkacluster", "demo", "--type=merge", "-p", json.dumps({"spec": {"storage": {"size": "20Gi"}}}))

    def grown():
        claims = [ns.get("pvc", f"data-demo-{i}") for i in range(4)]
        return all(c["spec"]["resources"]["requests"]["storage"] == "20Gi"
                   and (c.get("status") or {}).get("capacity", {}).get("storage") == "20Gi" for c in claims)
    wait_for(grown, timeout=60, what="every broker claim at 20Gi")
    # The StatefulSet keeps the claim template it was created with (it is immutable).
    sts = json.loads(ns.kubectl("get", "statefulset", "demo", "-o", "json"))
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert ns.get("kafkacluster", "demo")["status"]["storageSize"] == "20Gi"

    ns.kubectl("patch", "kafkacluster", "demo", "--type=merge", "-p", json.dumps({"spec": {"storage": {"size": "5Gi"}}}))
    kc = wait_for(lambda: (k := ns.get("kafkacluster", "demo")) and is_true(k, "Refused") and k, timeout=60,
                  what="Refused for a decrease")
    assert condition(kc, "Refused")["reason"] == "StorageDecrease", condition(kc, "Refused")
    assert ns.get("pvc", "data-demo-0")["spec"]["resources"]["requests"]["storage"] == "20Gi"
    ns.kubectl("patch", "kafkacluster", "demo", "--type=merge", "-p", json.dumps({"spec": {"storage": {"size": "20Gi"}}}))
    wait_for(lambda: (k := ns.get("kafkacluster", "demo")) and not is_true(k, "Refused"), timeout=60,
             what="Refused cleared")


DATA_CLAIMS = [f"data-demo-{i}" for i in range(4)] + [f"data-demo-etcd-{i}" for i in range(3)]


def claims_by_name(ns):
    return {c["metadata"]["name"]: c for c in json.loads(ns.kubectl("get", "pvc", "-o", "json"))["items"]}


def owned_by_cluster(claim, name="demo"):
    return any(r["kind"] == "KafkaCluster" and r["name"] == name for r in claim["metadata"].get("ownerReferences") or [])


def test_delete_claim_makes_the_cluster_own_its_claims_and_only_the_cluster(bed, ns, demo):
    def ownership():
        claims = claims_by_name(ns)
        return [owned_by_cluster(claims[n]) for n in DATA_CLAIMS]

    # examples/cluster.yaml keeps the claims: nothing owns them (the StatefulSets retain).
    assert ownership() == [False] * len(DATA_CLAIMS)
    ns.kubectl("patch", "kafkacluster", "demo", "--type=merge", "-p", json.dumps({"spec": {"storage": {"deleteClaim": True}}}))
    wait_for(lambda: ownership() == [True] * len(DATA_CLAIMS), timeout=60, what="every broker and etcd claim owned")
    assert "runnel.dev/claims" in ns.get("kafkacluster", "demo")["metadata"]["finalizers"]
    ns.kubectl("patch", "kafkacluster", "demo", "--type=merge", "-p", json.dumps({"spec": {"storage": {"deleteClaim": False}}}))
    wait_for(lambda: ownership() == [False] * len(DATA_CLAIMS), timeout=60, what="the owner references removed")
    wait_for(lambda: not ns.get("kafkacluster", "demo")["metadata"].get("finalizers"), timeout=30,
             what="the claims finalizer removed after the last reference")
    ns.kubectl("patch", "kafkacluster", "demo", "--type=merge", "-p", json.dumps({"spec": {"storage": {"deleteClaim": True}}}))
    wait_for(lambda: ownership() == [True] * len(DATA_CLAIMS), timeout=60, what="every claim owned again")
    sts = json.loads(ns.kubectl("get", "statefulset", "demo", "-o", "json"))
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"

    # Deleting only the StatefulSet (its pods go with it) must not take the data: the
    # operator re-creates it and the brokers come back on the same claims.
    uids = {n: c["metadata"]["uid"] for n, c in claims_by_name(ns).items() if n in DATA_CLAIMS}
    assert client(bed, "roundtrip", bootstrap(ns), "kept", "20")["consumed"] == 20
    pods_before = pod_uids(ns)
    ns.kubectl("delete", "statefulset", "demo", "--wait=true", "--timeout=120s")

    def replaced():
        pods = ns.pods(BROKERS)
        return len(pods) == 4 and all(pods_before.get(p["metadata"]["name"]) != p["metadata"]["uid"] and ready(p)
                                      for p in pods)
    try:
        wait_for(replaced, timeout=180, what="every broker pod re-created and ready")
    except AssertionError as e:
        pods = [(p["metadata"]["name"], p["metadata"]["uid"] != pods_before.get(p["metadata"]["name"]),
                 p["status"].get("phase"), [c.get("state") for c in p["status"].get("containerStatuses") or []])
                for p in ns.pods(BROKERS)]
        sts = ns.get("statefulset", "demo") or {}
        logs = "".join(p.read_text() for p in Path(bed.base, "runner", "pods").glob("*/operator.log"))
        events = ns.kubectl("get", "events", "--sort-by=.lastTimestamp")
        raise AssertionError(f"{e}\npods: {pods}\nsts spec: {json.dumps(sts.get('spec', {}).get('replicas'))} "
                             f"{sts.get('spec', {}).get('podManagementPolicy')} status: {json.dumps(sts.get('status'))}"
                             f"\nevents:\n{events[-3000:]}\noperator log:\n{logs[-6000:]}") from None
    wait_ready(bed, ns, "Ready again after the StatefulSet was deleted", timeout=120)
    after = {n: c["metadata"]["uid"] for n, c in claims_by_name(ns).items() if n in DATA_CLAIMS}
    assert after == uids, "a claim was deleted with the StatefulSet"
    # The records written before are still there (roundtrip reads the topic from the start).
    assert client(bed, "roundtrip", bootstrap(ns), "kept", "20")["consumed"] == 40


KEEP = """
apiVersion: runnel.dev/v1alpha1
kind: KafkaCluster
metadata:
  name: keep
spec:
  replicas: 1
  storage:
    size: 1Gi
  etcd:
    managed:
      members: 1
      storage:
        size: 1Gi
"""


def test_a_cluster_deleted_with_default_storage_keeps_its_claims(bed, ns, demo):
    ns.apply(KEEP)
    kc = wait_for(lambda: (k := ns.get("kafkacluster", "keep")) and is_true(k, "Ready") and k,
                  timeout=180, what="cluster keep Ready")
    # Never set deleteClaim: no finalizer, so its deletion never waits for the operator.
    assert not kc["metadata"].get("finalizers")
    ns.kubectl("delete", "kafkacluster", "keep", "--wait=true", "--timeout=120s")
    wait_for(lambda: not ns.pods("app.kubernetes.io/instance=keep"), timeout=120, what="keep's pods gone")
    claims = claims_by_name(ns)
    assert {"data-keep-0", "data-keep-etcd-0"} <= set(claims), sorted(claims)
    assert not any(owned_by_cluster(c, "keep") for c in claims.values())


def test_deleting_the_cluster_collects_what_it_owns(bed, ns, demo):
    # With deleteClaim (set here, whatever the tests before did) the claims go too.
    ns.kubectl("patch", "kafkacluster", "demo", "--type=merge", "-p", json.dumps({"spec": {"storage": {"deleteClaim": True}}}))
    wait_for(lambda: all(owned_by_cluster(claims_by_name(ns)[n]) for n in DATA_CLAIMS), timeout=60,
             what="every claim owned by the cluster")
    assert "runnel.dev/claims" in ns.get("kafkacluster", "demo")["metadata"]["finalizers"]
    ns.kubectl("delete", "kafkacluster", "demo", "--wait=true", "--timeout=120s")
    wait_for(lambda: not ns.pods("app.kubernetes.io/instance=demo"), timeout=120, what="every pod gone")
    for kind in ("statefulset", "service", "configmap", "pdb"):
        left = json.loads(ns.kubectl("get", kind, "-l", "app.kubernetes.io/instance=demo", "-o", "json"))["items"]
        assert left == [], f"{kind} left behind: {[o['metadata']['name'] for o in left]}"
    # The managed etcd's claims go with the brokers'.
    wait_for(lambda: not set(DATA_CLAIMS) & set(claims_by_name(ns)), timeout=120, what="every data claim deleted")
    print("results:", RESULTS)
