"""The test bed's own logic without a cluster: scheduling rules, the pod spec review,
security settings, DNS answers, Service routes, restart backoff, quantities."""

import socket
import struct

import network
import podspec
import pytest
import scheduler
from kubeapi import parse_quantity
from podrunner import Backoff, expand, service_link_env


def node(name, zone, taints=None, unschedulable=False, labels=None):
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": zone,
                                              **(labels or {})}},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


NODES = [node("n0", "zone-a"), node("n1", "zone-b"), node("n2", "zone-c")]


def pod(name, labels=None, node_name=None, **spec):
    return {"metadata": {"name": name, "namespace": "ns", "labels": labels or {}, "uid": name},
            "spec": {"containers": [{"name": "c"}], **({"nodeName": node_name} if node_name else {}), **spec}}


def anti_affinity(key):
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": key}]}}


def place_all(pods, nodes=NODES):
    cluster = scheduler.Cluster(nodes, [])
    out = {}
    for p in pods:
        chosen, message = scheduler.schedule(p, cluster)
        out[p["metadata"]["name"]] = chosen or message
        if chosen:
            cluster.place(p, chosen)
    return out


def test_zone_anti_affinity_puts_three_pods_in_three_zones_and_refuses_a_fourth():
    pods = [pod(f"x{i}", {"app": "x"}, affinity=anti_affinity("topology.kubernetes.io/zone")) for i in range(4)]
    placed = place_all(pods)
    assert sorted(placed[f"x{i}"] for i in range(3)) == ["n0", "n1", "n2"]
    assert placed["x3"] == "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."


def test_an_existing_pods_anti_affinity_keeps_others_out_of_its_domain():
    loner = pod("loner", {"app": "loner"}, "n0", affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "kubernetes.io/hostname"}]}})
    cluster = scheduler.Cluster(NODES, [loner])
    newcomer = pod("x", {"app": "x"}, nodeSelector={"kubernetes.io/hostname": "n0"})
    chosen, message = scheduler.schedule(newcomer, cluster)
    assert chosen is None and "didn't satisfy existing pods anti-affinity rules" in message


def test_cordon_taints_tolerations_and_node_selectors_filter_nodes():
    nodes = [node("n0", "zone-a", unschedulable=True),
             node("n1", "zone-b", taints=[{"key": "dedicated", "value": "kafka", "effect": "NoSchedule"}]),
             node("n2", "zone-c", labels={"disk": "ssd"})]
    assert place_all([pod("plain")], nodes)["plain"] == "n2"
    blocked = place_all([pod("ssd", nodeSelector={"disk": "hdd"})], nodes)["ssd"]
    assert "1 node(s) didn't match Pod's node affinity/selector" in blocked
    assert "1 node(s) were unschedulable" in blocked
    assert "1 node(s) had untolerated taint {dedicated: kafka}" in blocked
    tolerant = pod("tolerant", tolerations=[{"key": "dedicated", "operator": "Equal", "value": "kafka",
                                             "effect": "NoSchedule"}],
                   nodeSelector={"topology.kubernetes.io/zone": "zone-b"})
    assert place_all([tolerant], nodes)["tolerant"] == "n1"


def test_required_node_affinity_and_preferences():
    affinity = {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In",
                                   "values": ["zone-b", "zone-c"]}]}]},
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "preference": {"matchExpressions": [
                {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-c"]}]}}]}}
    assert place_all([pod("p", affinity=affinity)])["p"] == "n2"


def test_replicas_of_one_owner_spread_over_nodes_without_any_rule():
    owner = [{"controller": True, "uid": "rs"}]
    pods = [pod(f"r{i}") for i in range(3)]
    for p in pods:
        p["metadata"]["ownerReferences"] = owner
    assert sorted(place_all(pods).values()) == ["n0", "n1", "n2"]


def test_topology_spread_do_not_schedule_limits_the_skew():
    spread = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "s"}}}]
    cluster = scheduler.Cluster(NODES, [pod("s0", {"app": "s"}, "n0")])
    second = pod("s1", {"app": "s"}, topologySpreadConstraints=spread)
    assert "topology spread" in scheduler.filter_node(second, cluster.nodes["n0"], cluster, ())
    assert scheduler.schedule(second, cluster)[0] in ("n1", "n2")
    # Only the nodes the pod may use are domains (nodeAffinityPolicy Honor): zone-a alone.
    pinned = pod("s2", {"app": "s"}, topologySpreadConstraints=spread, nodeSelector={"kubernetes.io/hostname": "n0"})
    assert scheduler.schedule(pinned, cluster)[0] == "n0"


def test_scheduling_gates_hold_a_pod():
    assert scheduler.schedule(pod("g", schedulingGates=[{"name": "wait"}]), scheduler.Cluster(NODES, []))[0] is None


def test_review_refuses_what_the_runner_does_not_implement():
    spec = {
        "hostNetwork": True,
        "initContainers": [{"name": "sidecar", "restartPolicy": "Always"}],
        "containers": [{"name": "c", "readinessProbe": {"grpc": {"port": 9}},
                        "lifecycle": {"preStop": {"tcpSocket": {"port": 1}}}, "tty": True}],
        "volumes": [{"name": "v", "nfs": {"server": "x", "path": "/"}}],
        "securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "1"}]},
        "futureField": {},
    }
    refused = " | ".join(podspec.review({"metadata": {}, "spec": spec}).refused)
    for field in ("spec.hostNetwork", "initContainers[sidecar].restartPolicy", "readinessProbe.grpc",
                  "preStop.tcpSocket", "containers[c].tty", "volumes[v].nfs", "securityContext.sysctls",
                  "spec.futureField"):
        assert field in refused


def test_review_accepts_apiserver_defaults_and_reports_ignored_fields():
    spec = {
        "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                        "resources": {"limits": {"memory": "1Gi"}},
                        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}, "runAsUser": 1000,
                                            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                        "startupProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1},
                        "lifecycle": {"preStop": {"exec": {"command": ["true"]}}}}],
        "dnsPolicy": "ClusterFirst", "enableServiceLinks": True, "restartPolicy": "Always",
        "schedulerName": "default-scheduler", "priority": 0, "securityContext": {},
        "terminationGracePeriodSeconds": 30, "serviceAccountName": "default", "serviceAccount": "default",
    }
    review = podspec.review({"metadata": {}, "spec": spec})
    assert review.refused == []
    assert [i.split(":")[0] for i in review.ignored] == ["spec.containers[c].resources",
                                                         "spec.containers[c].securityContext.seccompProfile"]


@pytest.mark.parametrize("pod_ctx, ctx, expected", [
    ({"runAsNonRoot": True}, {}, "container has runAsNonRoot and image will run as root"),
    ({"runAsNonRoot": True, "runAsUser": 0}, {}, "container's runAsUser breaks non-root policy"),
    ({"runAsUser": 1000}, {"capabilities": {"add": ["NET_ADMIN"]}}, "capabilities.add for a non-root user"),
])
def test_security_that_cannot_be_honoured_is_a_config_error(pod_ctx, ctx, expected):
    sec = podspec.security({"spec": {"securityContext": pod_ctx}}, {"securityContext": ctx})
    assert isinstance(sec, str) and sec.startswith(expected)


def test_security_becomes_setpriv_options():
    sec = podspec.security({"spec": {"securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000}}},
                           {"securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                                "readOnlyRootFilesystem": True}})
    assert sec["read_only_root"]
    assert podspec.setpriv_args(sec) == ["setpriv", "--regid=3000", "--reuid=1000", "--groups=2000", "--no-new-privs",
                                         "--bounding-set=-all", "--inh-caps=-all", "--"]
    root = podspec.security({"spec": {}}, {})
    assert podspec.setpriv_args(root) == []


def slice_of(service, ns, endpoints, port_name="", port=8080):
    return {"metadata": {"namespace": ns, "labels": {"kubernetes.io/service-name": service}},
            "ports": [{"name": port_name, "port": port}], "endpoints": endpoints}


def test_tables_follow_services_and_endpoint_slices():
    services = [
        {"metadata": {"namespace": "ns", "name": "web"},
         "spec": {"clusterIP": "10.96.0.50", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}},
        {"metadata": {"namespace": "ns", "name": "db"}, "spec": {"clusterIP": "None", "ports": [{"port": 8080}]}},
    ]
    slices = [
        slice_of("web", "ns", [{"addresses": ["10.244.0.2"], "conditions": {"ready": True}},
                               {"addresses": ["10.244.1.2"], "conditions": {"ready": False}}], "http"),
        slice_of("db", "ns", [{"addresses": ["10.244.2.3"], "hostname": "db-0", "conditions": {"ready": True}},
                              {"addresses": ["10.244.0.3"], "hostname": "db-1", "conditions": {"ready": True}}]),
    ]
    names, routes = network.tables(services, slices)
    assert names["web.ns.svc.cluster.local"] == ["10.96.0.50"]
    assert names["db.ns.svc.cluster.local"] == ["10.244.0.3", "10.244.2.3"]
    assert names["db-0.db.ns.svc.cluster.local"] == ["10.244.2.3"]
    assert routes[("10.96.0.50", 80)] == [("10.244.0.2", 8080)]
    assert routes[("127.0.0.1", 30080)] == [("10.244.0.2", 8080)]


def test_service_features_the_bed_does_not_serve_are_named():
    svc = {"metadata": {"namespace": "ns", "name": "s"},
           "spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "externalTrafficPolicy": "Local",
                    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 80, "protocol": "TCP"}]}}
    limits = " | ".join(network.service_limits(svc))
    for what in ("LoadBalancer", "sessionAffinity ClientIP", "externalTrafficPolicy Local", "53/UDP"):
        assert what in limits
    plain = {"metadata": {"namespace": "ns", "name": "p"}, "spec": {"type": "ClusterIP", "sessionAffinity": "None",
                                                                    "ports": [{"port": 80, "protocol": "TCP"}]}}
    assert network.service_limits(plain) == []


def query(name, qtype=1):
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", qtype, 1)


def answers(reply):
    """The A addresses of a reply: each answer record is 16 bytes, the address last."""
    count = struct.unpack("!H", reply[6:8])[0]
    start = len(reply) - 16 * count
    return [socket.inet_ntoa(reply[start + 16 * i + 12:start + 16 * i + 16]) for i in range(count)]


def test_dns_rotates_the_addresses_of_a_name_at_each_lookup():
    table = {"db.ns.svc.cluster.local": ["10.244.0.3", "10.244.2.3"]}
    turn = {}

    def lookup(name):
        addresses = table.get(name)
        if addresses is None:
            return None
        i = turn.get(name, 0) % len(addresses)
        turn[name] = i + 1
        return addresses[i:] + addresses[:i]

    first = answers(network.answer(query("db.ns.svc.cluster.local"), lookup))
    second = answers(network.answer(query("DB.ns.svc.cluster.local"), lookup))
    assert first == ["10.244.0.3", "10.244.2.3"] and second == ["10.244.2.3", "10.244.0.3"]
    missing = network.answer(query("nope.ns.svc.cluster.local"), lookup)
    assert missing[3] & 0x0F == 3, "NXDOMAIN"
    aaaa = network.answer(query("db.ns.svc.cluster.local", qtype=28), lookup)
    assert aaaa[3] & 0x0F == 0 and answers(aaaa) == [], "AAAA: no data, no error"


def test_backoff_doubles_to_its_cap_and_resets_after_a_long_run():
    b = Backoff(start=1, cap=8, reset_after=60)
    assert [b.next_delay(ran_for=0.1) for _ in range(5)] == [1, 2, 4, 8, 8]
    assert b.next_delay(ran_for=61) == 1, "a long run starts over"
    assert b.next_delay(ran_for=0.1) == 2


def test_quantities_env_expansion_and_service_links():
    assert parse_quantity("1Gi") == 2**30 and parse_quantity("250m") * 4 == 1 and parse_quantity("1e3") == 1000
    assert expand("$(A)-$$(A)-$(B)", {"A": "x"}) == "x-$(A)-$(B)"
    env = service_link_env({"metadata": {"name": "my-svc"},
                            "spec": {"clusterIP": "10.96.0.9", "ports": [{"name": "http", "port": 80}]}})
    assert env["MY_SVC_SERVICE_HOST"] == "10.96.0.9" and env["MY_SVC_SERVICE_PORT_HTTP"] == "80"
    assert env["MY_SVC_PORT_80_TCP_ADDR"] == "10.96.0.9"
