"""A real Kubernetes control plane for tests, inside a network namespace of its own.

`Testbed.start()` creates a network namespace whose loopback also carries, as local
(AnyIP) routes, the Service range 10.96.0.0/24, the node addresses 10.240.0.0/24 and the
pod range 10.244.0.0/16; /etc/netns/NAME/resolv.conf (the cluster DNS the pod runner
serves on 10.96.0.10) and hosts become the namespace's own. Then a PKI (CA, serving
certificate whose names include kubernetes.default.svc and 10.96.0.1, client
certificates, service-account keys), and inside the namespace: etcd, kube-apiserver
(RBAC, service-account issuer, advertised at 10.240.0.1), kube-controller-manager (the
controllers a StatefulSet world needs) and the pod runner with its N nodes; finally the
kube-dns Service and the hostPath StorageClasses. `stop()` tears all of it down.
`kubectl()` and `run()` execute inside the namespace, so cluster names resolve.

`python3 testbed.py up` brings one up for a person and prints how to use it.
"""

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# Routed to lo inside the namespace as local, so any address in them can be bound.
LOCAL_RANGES = ["10.96.0.0/24", "10.240.0.0/24", "10.244.0.0/16"]
APISERVER_ADDRESS = "10.240.0.1"
DNS_ADDRESS = "10.96.0.10"

CLUSTER_OBJECTS = f"""
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {{k8s-app: kube-dns}}
spec:
  clusterIP: {DNS_ADDRESS}
  ports: [{{name: dns, port: 53, protocol: UDP}}]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: hostpath
  annotations: {{storageclass.kubernetes.io/is-default-class: "true"}}
provisioner: runnel.dev/hostpath
reclaimPolicy: Delete
volumeBindingMode: Immediate
allowVolumeExpansion: true
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: hostpath-retain
provisioner: runnel.dev/hostpath
reclaimPolicy: Retain
volumeBindingMode: Immediate
allowVolumeExpansion: true
"""

CONTROLLERS = ",".join(
    [
        "statefulset-controller",
        "deployment-controller",
        "replicaset-controller",
        "garbage-collector-controller",
        "disruption-controller",
        "endpointslice-controller",
        "endpoints-controller",
        "serviceaccount-controller",
        "serviceaccount-token-controller",
        "root-ca-certificate-publisher-controller",
        "namespace-controller",
        "persistentvolume-binder-controller",
        "persistentvolume-protection-controller",
        "persistentvolumeclaim-protection-controller",
        "clusterrole-aggregation-controller",
        "ephemeral-volume-controller",
        # Lifts the not-ready taint a new Node gets once the runner reports it Ready
        # (and would taint a node whose Lease stopped being renewed).
        "node-lifecycle-controller",
        "taint-eviction-controller",
    ]
)


def binaries():
    """The cached control-plane binaries (built on first use)."""
    out = subprocess.run([str(HERE / "build.sh")], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"building the test bed failed:\n{out.stderr[-3000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _name(cn, org=None):
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _write_key(path, key):
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def make_pki(d):
    """CA, apiserver serving cert, client certs, service-account key pair under `d`."""
    d.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    later = now + datetime.timedelta(days=2)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("runnel-testbed-ca"))
        .issuer_name(_name("runnel-testbed-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (d / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(d / "ca.key", ca_key)

    def issue(name, cn, org=None, dns=(), ips=(), server=False):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, org))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(later)
            .add_extension(
                x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        )
        if dns or ips:
            sans = [x509.DNSName(n) for n in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        (d / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(d / f"{name}.key", key)

    issue(
        "apiserver",
        "kube-apiserver",
        dns=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"],
        ips=["127.0.0.1", "10.96.0.1", APISERVER_ADDRESS],
        server=True,
    )
    issue("admin", "admin", org="system:masters")
    issue("controller-manager", "system:kube-controller-manager")
    issue("runner", "testbed-runner", org="system:masters")
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(d / "sa.key", sa)
    (d / "sa.pub").write_bytes(
        sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def kubeconfig(path, pki, port, user):
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority: {pki / 'ca.crt'}
users:
- name: {user}
  user:
    client-certificate: {pki / f'{user}.crt'}
    client-key: {pki / f'{user}.key'}
contexts:
- name: testbed
  context: {{cluster: testbed, user: {user}}}
current-context: testbed
"""
    )


class Testbed:
    __test__ = False

    def __init__(self, base=None, bin_dir=None, nodes=3, images=()):
        """`nodes`: how many Nodes the runner registers; `images`: extra NAME=PROGRAM
        image mappings for the runner."""
        self.bin = Path(bin_dir) if bin_dir else binaries()
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="runnel-k8s-"))
        # Pods running as other users reach their directories (HOME, logs) under it.
        os.chmod(self.base, 0o755)
        self.nodes = [f"testbed-node-{i}" for i in range(nodes)]
        self.images = list(images)
        self.netns = f"runnel-tb-{os.getpid()}"
        self.pki = self.base / "pki"
        self.api_port = free_port()
        self.processes = {}
        self.kubeconfig = self.base / "admin.kubeconfig"
        self.hosts = Path(f"/etc/netns/{self.netns}/hosts")
        self.volumes = self.base / "volumes"

    # --- namespace ----------------------------------------------------------------
    def ns(self, *cmd):
        return ["ip", "netns", "exec", self.netns, *cmd]

    def spawn(self, name, cmd, env=None):
        log = open(self.base / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(
            self.ns(*cmd), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()

    def start(self, timeout=120):
        started = time.time()
        self.hosts.parent.mkdir(parents=True, exist_ok=True)
        self.hosts.write_text("127.0.0.1 localhost\n")
        (self.hosts.parent / "resolv.conf").write_text(
            f"search svc.cluster.local cluster.local\nnameserver {DNS_ADDRESS}\noptions ndots:5\n")
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(self.ns("ip", "link", "set", "lo", "up"), check=True)
        for cidr in LOCAL_RANGES:
            subprocess.run(self.ns("ip", "route", "add", "local", cidr, "dev", "lo"), check=True)
        make_pki(self.pki)
        for user in ("admin", "controller-manager", "runner"):
            kubeconfig(self.base / f"{user}.kubeconfig", self.pki, self.api_port, user)
        etcd_client, etcd_peer = free_port(), free_port()
        self.spawn(
            "etcd",
            [
                str(self.bin / "etcd"),
                "--data-dir", str(self.base / "etcd"),
                "--listen-client-urls", f"http://127.0.0.1:{etcd_client}",
                "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
                "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                "--initial-cluster", f"default=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync",
                "--log-level", "warn",
            ],
        )
        p = self.pki
        self.spawn(
            "kube-apiserver",
            [
                str(self.bin / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                # All addresses of the namespace: 127.0.0.1 for kubeconfigs, the advertised
                # one behind the kubernetes Service (10.96.0.1:443) for pods.
                "--bind-address=0.0.0.0",
                f"--advertise-address={APISERVER_ADDRESS}",
                f"--secure-port={self.api_port}",
                f"--tls-cert-file={p / 'apiserver.crt'}",
                f"--tls-private-key-file={p / 'apiserver.key'}",
                f"--client-ca-file={p / 'ca.crt'}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={p / 'sa.pub'}",
                f"--service-account-signing-key-file={p / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/24",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
            ],
        )
        self.wait_api(timeout - (time.time() - started))
        self.spawn(
            "kube-controller-manager",
            [
                str(self.bin / "kube-controller-manager"),
                f"--kubeconfig={self.base / 'controller-manager.kubeconfig'}",
                f"--authentication-kubeconfig={self.base / 'controller-manager.kubeconfig'}",
                f"--authorization-kubeconfig={self.base / 'controller-manager.kubeconfig'}",
                f"--service-account-private-key-file={p / 'sa.key'}",
                f"--root-ca-file={p / 'ca.crt'}",
                "--use-service-account-credentials=true",
                f"--controllers={CONTROLLERS}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--concurrent-statefulset-syncs=5",
            ],
        )
        state = self.base / "runner"
        state.mkdir(exist_ok=True)
        os.chmod(state, 0o755)
        self.volumes.mkdir(exist_ok=True)
        self.spawn(
            "podrunner",
            [
                sys.executable, "-u", str(HERE / "podrunner.py"),
                "--pki", str(self.pki),
                "--api-port", str(self.api_port),
                "--state", str(state),
                "--nodes", str(len(self.nodes)),
                "--bin", f"{ROOT / 'target' / 'debug'}:{self.bin}",
                *(f"--image={i}" for i in self.images),
            ],
        )
        self.kubectl("apply", "-f", "-", stdin=CLUSTER_OBJECTS)
        ready = "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{\"\\n\"}{end}"
        self.wait_for(
            lambda: self.kubectl("get", "nodes", "-o", ready, check=False).split() == ["True"] * len(self.nodes),
            timeout - (time.time() - started),
            "the nodes to be Ready",
        )
        self.wait_for(
            lambda: self.kubectl("get", "nodes", "-o", "jsonpath={.items[*].spec.taints}", check=False).strip() == "",
            timeout - (time.time() - started),
            "the node lifecycle controller to lift the not-ready taints",
        )
        self.wait_for(lambda: self.kubectl("get", "serviceaccount", "default", check=False) != "",
                      timeout - (time.time() - started), "the default service account")
        return self

    def wait_api(self, timeout):
        deadline = time.time() + max(timeout, 1)
        while time.time() < deadline:
            if self.kubectl("get", "--raw", "/readyz", check=False).strip() == "ok":
                return
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited; see {self.base / (name + '.log')}")
            time.sleep(0.25)
        raise RuntimeError(f"kube-apiserver not ready; see {self.base / 'kube-apiserver.log'}")

    @staticmethod
    def wait_for(predicate, timeout, what):
        deadline = time.time() + max(timeout, 1)
        while time.time() < deadline:
            if predicate():
                return
            time.sleep(0.25)
        raise RuntimeError(f"timed out waiting for {what}")

    def kubectl_run(self, *args, stdin=None, kubeconfig=None):
        """kubectl inside the namespace: the CompletedProcess, whatever its exit status."""
        return subprocess.run(
            self.ns(str(self.bin / "kubectl"), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def kubectl(self, *args, stdin=None, check=True, kubeconfig=None):
        """kubectl's stdout; with check=False, "" when it fails."""
        out = self.kubectl_run(*args, stdin=stdin, kubeconfig=kubeconfig)
        if check and out.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {out.stderr}")
        return out.stdout if out.returncode == 0 else ""

    def run(self, *cmd, check=True, timeout=60):
        """A command inside the network namespace (its /etc/hosts is the test bed's)."""
        return subprocess.run(self.ns(*cmd), capture_output=True, text=True, check=check, timeout=timeout)

    def stop(self):
        order = ["podrunner", "kube-controller-manager", "kube-apiserver", "etcd"]
        for name in order:
            proc = self.processes.get(name)
            if proc and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        # Anything a pod left behind in the namespace.
        pids = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "delete", self.netns], check=False)
        shutil.rmtree(self.hosts.parent, ignore_errors=True)


def main():
    if len(sys.argv) < 2 or sys.argv[1] != "up":
        print("usage: testbed.py up", file=sys.stderr)
        return 2
    # SIGTERM tears down like Ctrl-C (a background job ignores SIGINT).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    bed = Testbed()
    try:
        bed.start()
        print(f"test bed up in {bed.base}")
        print(f"  sudo ip netns exec {bed.netns} {bed.bin / 'kubectl'} --kubeconfig={bed.kubeconfig} "
              "get nodes -L topology.kubernetes.io/zone")
        print("  Ctrl-C (or SIGTERM) tears it down", flush=True)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        bed.stop()
        shutil.rmtree(bed.base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
