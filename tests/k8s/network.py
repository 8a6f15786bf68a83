"""Cluster DNS and Service proxying for the test bed, built from Services and
EndpointSlices as CoreDNS and kube-proxy build them.

Every address lives in the test bed's one network namespace: the bed routes the pod
range, the node range and the Service range to `lo` as local (AnyIP), so any of those
addresses can be bound and reached by every process of the namespace.

- `Dns` answers A queries on the kube-dns ClusterIP, port 53 (UDP):
  `svc.ns.svc.cluster.local` is the ClusterIP of a normal Service and the ready
  endpoint addresses of a headless one (all of them, rotated by one at each lookup, so a
  client that takes the first address gets a different pod per lookup, round-robin);
  `host.svc.ns.svc.cluster.local` is the endpoint with that hostname (a StatefulSet pod
  under its governing headless Service). Other names get NXDOMAIN (no upstream DNS).
- `Proxy` listens on each Service's ClusterIP:port (and 127.0.0.1:nodePort) while it has
  ready endpoints (without, connecting is refused) and hands each TCP connection to the
  next ready endpoint, round-robin, at the endpoint port of the same name: that is where
  `port` -> `targetPort` is honoured. UDP is not proxied.
"""

import socket
import struct
import threading

DOMAIN = "cluster.local"


# --- the name and route tables ------------------------------------------------------
def ready_addresses(slices, port_name=None):
    """(address, port) of serving endpoints in a Service's slices, or address alone."""
    out = []
    for s in slices:
        port = next((p.get("port") for p in s.get("ports") or [] if (p.get("name") or "") == (port_name or "")), None)
        for ep in s.get("endpoints") or []:
            cond = ep.get("conditions") or {}
            if cond.get("ready") is False or cond.get("terminating"):
                continue
            for address in ep.get("addresses") or []:
                out.append(address if port_name is None else (address, port))
    return out


def tables(services, slices):
    """The DNS records {name: [ip]} and the proxy routes {(ip, port): [(ip, port)]}."""
    by_service = {}
    for s in slices:
        owner = (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
        if owner:
            by_service.setdefault((s["metadata"]["namespace"], owner), []).append(s)
    names, routes = {}, {}
    for svc in services:
        ns, name, spec = svc["metadata"]["namespace"], svc["metadata"]["name"], svc["spec"]
        if spec.get("type") == "ExternalName":
            continue
        fqdn = f"{name}.{ns}.svc.{DOMAIN}"
        mine = by_service.get((ns, name), [])
        if spec.get("clusterIP") in (None, "", "None"):
            addresses = sorted(set(ready_addresses(mine)), key=ip_key)
            if addresses:
                names[fqdn] = addresses
            for s in mine:
                for ep in s.get("endpoints") or []:
                    cond = ep.get("conditions") or {}
                    if ep.get("hostname") and cond.get("ready") is not False and ep.get("addresses"):
                        names[f"{ep['hostname']}.{fqdn}"] = [ep["addresses"][0]]
            continue
        names[fqdn] = [spec["clusterIP"]]
        for port in spec.get("ports") or []:
            if port.get("protocol", "TCP") != "TCP":
                continue
            backends = [b for b in ready_addresses(mine, port.get("name") or "") if b[1]]
            routes[(spec["clusterIP"], port["port"])] = backends
            if port.get("nodePort"):
                routes[("127.0.0.1", port["nodePort"])] = backends
    return names, routes


def service_limits(svc):
    """What of a Service the test bed does not do, worded for a Warning Event."""
    spec, out = svc["spec"], []
    if spec.get("type") == "ExternalName":
        out.append("type ExternalName: no DNS record (no CNAME support)")
    if spec.get("type") == "LoadBalancer":
        out.append("type LoadBalancer: no load balancer address (node ports work)")
    if spec.get("sessionAffinity", "None") != "None":
        out.append(f"sessionAffinity {spec['sessionAffinity']}: connections are spread round-robin")
    if spec.get("externalIPs"):
        out.append("externalIPs are not served")
    for key in ("externalTrafficPolicy", "internalTrafficPolicy"):
        if spec.get(key) == "Local":
            out.append(f"{key} Local: all nodes share one network namespace")
    for port in spec.get("ports") or []:
        if port.get("protocol", "TCP") != "TCP" and not (svc["metadata"]["name"] == "kube-dns"
                                                          and svc["metadata"]["namespace"] == "kube-system"):
            out.append(f"port {port['port']}/{port['protocol']}: only TCP is proxied")
    return out


def ip_key(ip):
    return tuple(int(x) for x in ip.split("."))


# --- DNS ----------------------------------------------------------------------------
def parse_query(packet):
    """(id, flags, name, qtype, question bytes) of a DNS query, or None if malformed."""
    if len(packet) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1:
        return None
    labels, i = [], 12
    while True:
        if i >= len(packet):
            return None
        n = packet[i]
        i += 1
        if n == 0:
            break
        if n & 0xC0 or i + n > len(packet):
            return None
        labels.append(packet[i:i + n].decode("ascii", "replace"))
        i += n
    if i + 4 > len(packet):
        return None
    qtype, _qclass = struct.unpack("!HH", packet[i:i + 4])
    return qid, flags, ".".join(labels).lower(), qtype, packet[12:i + 4]


def answer(packet, lookup):
    """The response to a query; `lookup(name)` gives its addresses or None (NXDOMAIN)."""
    q = parse_query(packet)
    if q is None:
        return None
    qid, flags, name, qtype, question = q
    addresses = lookup(name)
    rcode = 3 if addresses is None else 0
    records = b""
    count = 0
    if addresses and qtype == 1:  # A; AAAA and the rest get an empty NOERROR
        for ip in addresses:
            records += struct.pack("!HHHIH", 0xC00C, 1, 1, 0, 4) + socket.inet_aton(ip)
            count += 1
    # QR, AA, RD copied from the query, RA, rcode.
    header = struct.pack("!HHHHHH", qid, 0x8400 | (flags & 0x0100) | 0x0080 | rcode, 1, count, 0, 0)
    return header + question + records


class Dns:
    """An authoritative server for cluster.local on a UDP socket, in a thread."""

    def __init__(self, address):
        self.records = {}
        self.turn = {}
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 53))
        threading.Thread(target=self.serve, name="dns", daemon=True).start()

    def update(self, records):
        self.records = records

    def lookup(self, name):
        addresses = self.records.get(name)
        if not addresses:
            return None
        with self.lock:
            turn = self.turn.get(name, 0)
            self.turn[name] = turn + 1
        turn %= len(addresses)
        return addresses[turn:] + addresses[:turn]

    def serve(self):
        while True:
            try:
                packet, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            reply = answer(packet, self.lookup)
            if reply:
                try:
                    self.sock.sendto(reply, peer)
                except OSError:
                    pass


# --- the Service proxy ----------------------------------------------------------------
class Listener:
    def __init__(self, address, backends):
        self.address = address
        self.backends = backends
        self.turn = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(address)
        self.sock.listen(128)
        threading.Thread(target=self.accept, name=f"proxy {address}", daemon=True).start()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.forward, args=(client,), daemon=True).start()

    def forward(self, client):
        backends = list(self.backends)
        for _ in backends:
            backend = backends[self.turn % len(backends)]
            self.turn += 1
            try:
                upstream = socket.create_connection(backend, timeout=3)
            except OSError:
                continue
            upstream.settimeout(None)
            back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
            back.start()
            pipe(client, upstream)
            back.join()
            upstream.close()
            client.close()
            return
        # Every endpoint refused: reset the client.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()


def pipe(src, dst):
    """Copies one direction until EOF, then half-closes the other side."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


class Proxy:
    def __init__(self, log):
        self.listeners = {}
        self.failed = set()  # addresses that could not be bound, logged once
        self.log = log

    def update(self, routes):
        # A Service port without ready endpoints has no listener: connecting is refused,
        # as kube-proxy's REJECT rule does.
        routes = {address: backends for address, backends in routes.items() if backends}
        for address in [a for a in self.listeners if a not in routes]:
            self.listeners.pop(address).close()
        for address, backends in routes.items():
            if address in self.listeners:
                self.listeners[address].backends = backends
                continue
            try:
                self.listeners[address] = Listener(address, backends)
                self.failed.discard(address)
            except OSError as e:
                if address not in self.failed:
                    self.failed.add(address)
                    self.log("cannot proxy", address, repr(e))
