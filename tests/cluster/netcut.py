"""Network cuts between brokers, etcd and clients, with iproute2 and nothing else (this
kernel has no netem or prio qdisc, and no nftables/iptables are installed).

The test process's main thread moves into a network namespace of its own (the hub) for
as long as the Network lives, so nothing here touches the machine's network. In the hub:
a bridge with the clients' address (.1, the primary, so the test's own connections come
from it) and etcd's (.2). Each broker gets a named namespace with a veth into the bridge
and an address of its own (.10 + id), and runs under `ip netns exec`.

A cut drops packets in both directions without telling either side, as a pulled cable
would: in the broker's namespace a blackhole route to the other end; in the hub (etcd,
clients) a policy rule blackholing packets from that address to the broker; between
brokers a blackhole route in each one's namespace. Healing removes exactly those."""

import ctypes
import os
import subprocess
import uuid

CLONE_NEWNET = 0x40000000
SUBNET = "10.88.0"
CLIENTS = f"{SUBNET}.1"
ETCD = f"{SUBNET}.2"


def ip(*args, netns=None):
    command = ["ip", *(["-n", netns] if netns else []), *args]
    out = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {out.stderr.strip()}")


class Network:
    def __init__(self, size):
        if os.geteuid() != 0:
            raise RuntimeError("network cuts need root (network namespaces, routes); CI runs as root")
        self.size = size
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        if self._libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            os.close(self._home)
            raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
        tag = uuid.uuid4().hex[:6]
        self.namespaces = [f"runnel-{tag}-{i}" for i in range(size)]
        # (ip arguments, namespace) that undo each cut in force, per broker.
        self.undo = {i: [] for i in range(size)}
        try:
            ip("link", "set", "lo", "up")
            ip("link", "add", "br0", "type", "bridge")
            ip("addr", "add", f"{CLIENTS}/24", "dev", "br0")
            ip("addr", "add", f"{ETCD}/24", "dev", "br0")
            ip("link", "set", "br0", "up")
            for i, ns in enumerate(self.namespaces):
                ip("netns", "add", ns)
                ip("link", "add", f"vb{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
                ip("link", "set", f"vb{i}", "master", "br0", "up")
                ip("addr", "add", f"{self.broker_host(i)}/24", "dev", "eth0", netns=ns)
                ip("link", "set", "eth0", "up", netns=ns)
                ip("link", "set", "lo", "up", netns=ns)
        except BaseException:
            self.close()
            raise

    etcd_host = ETCD

    def broker_host(self, i):
        return f"{SUBNET}.{10 + i}"

    def launcher(self, i):
        return ["ip", "netns", "exec", self.namespaces[i]]

    def _blackhole(self, i, address, netns):
        """Drops what namespace `netns` sends to `address`; undone when broker i heals."""
        ip("route", "add", "blackhole", f"{address}/32", netns=netns)
        self.undo[i].append((("route", "del", "blackhole", f"{address}/32"), netns))

    def _drop_from_hub(self, i, source):
        """Drops what the hub sends from `source` (etcd or the clients, which share the hub)
        to broker i."""
        rule = ("rule", "add", "from", f"{source}/32", "to", f"{self.broker_host(i)}/32", "blackhole")
        ip(*rule)
        self.undo[i].append((("rule", "del", *rule[2:]), None))

    def cut(self, i, *what):
        """Cuts broker i off from any of "etcd", "peers" (the other brokers), "clients"."""
        ns = self.namespaces[i]
        for target in what:
            if target == "etcd":
                self._blackhole(i, ETCD, ns)
                self._drop_from_hub(i, ETCD)
            elif target == "clients":
                self._blackhole(i, CLIENTS, ns)
                self._drop_from_hub(i, CLIENTS)
            elif target == "peers":
                for j in range(self.size):
                    if j != i:
                        self._blackhole(i, self.broker_host(j), ns)
                        self._blackhole(i, self.broker_host(i), self.namespaces[j])
            else:
                raise ValueError(f"cut from what? {target!r}")

    def heal(self, i):
        while self.undo[i]:
            args, netns = self.undo[i].pop()
            ip(*args, netns=netns)

    def close(self):
        """Heals every cut, deletes the brokers' namespaces (stop the brokers first) and
        takes the thread back to the namespace it came from."""
        try:
            for i in self.undo:
                self.heal(i)
            for ns in getattr(self, "namespaces", []):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        finally:
            if self._libc.setns(self._home, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns back to the original network namespace: {os.strerror(err)}")
            os.close(self._home)
