"""Services as the runner serves them: a ClusterIP name proxied per connection to a ready
pod at the targetPort, a headless name resolving to the ready pods in an order that
rotates per lookup, and nothing for pods that are not ready."""

import json

import network
from bedtools import ready, wait_for

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: python:3
          command: ["sh", "-c", "mkdir -p /srv && echo $(POD_NAME) > /srv/name && exec python3 -m http.server 8080 --bind $(POD_IP) --directory /srv"]
          env:
            - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
            - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /name, port: http}, periodSeconds: 1}
          volumeMounts: [{name: srv, mountPath: /srv}]
      volumes: [{name: srv, emptyDir: {}}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-never-ready, labels: {app: web}}
spec:
  containers:
    - name: web
      image: python:3
      command: ["sh", "-c", "mkdir -p /srv && echo never-ready > /srv/name && exec python3 -m http.server 8080 --bind $(POD_IP) --directory /srv"]
      env: [{name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
      ports: [{name: http, containerPort: 8080}]
      readinessProbe: {httpGet: {path: /missing, port: http}, periodSeconds: 1}
      volumeMounts: [{name: srv, mountPath: /srv}]
  volumes: [{name: srv, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: front, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: peers}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: nobody}
spec:
  selector: {app: nobody}
  ports: [{port: 80, targetPort: 8080}]
"""

CLIENT = """
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  restartPolicy: Never
  containers:
    - name: main
      image: python:3
      args:
        - -c
        - |
          import socket, urllib.request
          for _ in range(6):
              print("name", urllib.request.urlopen("http://web/name", timeout=5).read().decode().strip())
          for _ in range(6):
              print("peer", socket.gethostbyname("peers"))
          try:
              socket.create_connection(("nobody", 80), timeout=5)
              print("nobody connected")
          except OSError as e:
              print("nobody refused", type(e).__name__)
"""


def ready_slice_addresses(ns, service):
    """The addresses of the ready endpoints in a Service's EndpointSlices, as the runner's
    DNS reads them."""
    slices = json.loads(ns.kubectl("get", "endpointslices", "-l", f"kubernetes.io/service-name={service}", "-o", "json"))["items"]
    return set(network.ready_addresses(slices))


def test_a_service_port_reaches_the_target_port_of_each_ready_pod_in_turn_and_headless_names_rotate(bed, ns):
    ns.apply(WEB)
    pods = wait_for(lambda: (p := [x for x in ns.pods("app=web") if ready(x)]) and len(p) == 3 and p,
                    what="three ready web pods")
    names = {p["metadata"]["name"] for p in pods}
    ips = {p["status"]["podIP"] for p in pods}
    never = ns.pod("web-never-ready")
    assert not ready(never)
    wait_for(lambda: len(json.loads(ns.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=web",
                                               "-o", "json"))["items"][0].get("endpoints") or []) == 4,
             what="the EndpointSlice to list all four pods")
    # The headless Service has EndpointSlices of its own, updated apart from web's: its
    # names resolve to the three only once they list all three ready.
    wait_for(lambda: ready_slice_addresses(ns, "peers") == ips, what="the headless Service's slices to list the three ready pods")
    cluster_ip = json.loads(ns.kubectl("get", "service", "web", "-o", "json"))["spec"]["clusterIP"]
    assert cluster_ip.startswith("10.96.0.")

    ns.apply(CLIENT)
    pod = ns.wait_pod("client", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), "to finish")
    lines = [line.split(" ", 1) for line in ns.log(pod, "main").splitlines()]
    assert pod["status"]["phase"] == "Succeeded", lines
    served = [value for key, value in lines if key == "name"]
    assert set(served) == names, "port 80 reached targetPort 8080 on every ready pod, round-robin"
    peers = [value for key, value in lines if key == "peer"]
    assert set(peers) == ips, "a headless name gives a different ready pod first at each lookup"
    assert never["status"]["podIP"] not in peers
    assert ["nobody", "refused ConnectionRefusedError"] in lines, "no ready endpoint: the connection is refused"
