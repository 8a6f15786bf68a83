"""Dynamic volumes: the hostPath provisioner behind the `hostpath` (Delete) and
`hostpath-retain` StorageClasses, claims from volumeClaimTemplates, reclaim policies and
expansion."""

import json

from bedtools import ready, wait_for

STORE = """
apiVersion: v1
kind: Service
metadata: {name: store}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: store}
  ports: [{port: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: store}
spec:
  serviceName: store
  replicas: 3
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: store}}
  template:
    metadata: {labels: {app: store}}
    spec:
      containers:
        - name: main
          image: busybox
          command: ["sh", "-c", "echo $(POD_UID) >> /data/uids; echo $(INDEX) > /data/index; exec sleep 3600"]
          env:
            - {name: POD_UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
            - {name: INDEX, valueFrom: {fieldRef: {fieldPath: "metadata.labels['apps.kubernetes.io/pod-index']"}}}
          volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
    - metadata: {name: data}
      spec:
        accessModes: [ReadWriteOnce]
        storageClassName: hostpath
        resources: {requests: {storage: 1Gi}}
"""


def claims(ns):
    return {c["metadata"]["name"]: c for c in json.loads(ns.kubectl("get", "pvc", "-o", "json"))["items"]}


def volume(bed, name):
    out = bed.kubectl_run("get", "pv", name, "-o", "json")
    if out.returncode != 0:
        assert "NotFound" in out.stderr, out.stderr
        return None
    return json.loads(out.stdout)


def test_statefulset_claims_are_provisioned_kept_across_recreation_resized_and_deleted(bed, ns):
    ns.apply(STORE)
    wait_for(lambda: (p := ns.pods("app=store")) and len(p) == 3 and all(ready(x) for x in p), what="three ready pods")
    bound = claims(ns)
    assert sorted(bound) == ["data-store-0", "data-store-1", "data-store-2"]
    paths = {}
    for name, claim in bound.items():
        assert claim["status"]["phase"] == "Bound"
        pv = volume(bed, claim["spec"]["volumeName"])
        assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == "runnel.dev/hostpath"
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
        assert pv["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
        paths[name] = bed.volumes / pv["metadata"]["name"]
        assert pv["spec"]["hostPath"]["path"] == str(paths[name])
    for i in range(3):
        assert wait_for(lambda: (paths[f"data-store-{i}"] / "index").exists(), what="the index file")
        assert (paths[f"data-store-{i}"] / "index").read_text().strip() == str(i), "the pod-index label"

    old = ns.pod("store-1")
    ns.delete("pod", "store-1")
    new = ns.wait_pod("store-1", lambda p: p["metadata"]["uid"] != old["metadata"]["uid"] and ready(p), "to come back")
    uids = wait_for(lambda: len(u := (paths["data-store-1"] / "uids").read_text().split()) == 2 and u,
                    what="the second start to write its uid")
    assert uids == [old["metadata"]["uid"], new["metadata"]["uid"]], "the same volume came back"

    ns.kubectl("patch", "pvc", "data-store-0", "-p", '{"spec": {"resources": {"requests": {"storage": "2Gi"}}}}')
    resized = wait_for(lambda: (c := claims(ns)["data-store-0"])["status"]["capacity"]["storage"] == "2Gi" and c,
                       what="the claim's status to show 2Gi")
    assert volume(bed, resized["spec"]["volumeName"])["spec"]["capacity"]["storage"] == "2Gi"
    assert any(e["reason"] == "VolumeResizeSuccessful" for e in ns.events("data-store-0"))

    ns.kubectl("scale", "statefulset", "store", "--replicas=2")
    wait_for(lambda: ns.pod("store-2") is None, what="store-2 to go")
    pv_name = bound["data-store-2"]["spec"]["volumeName"]
    ns.delete("pvc", "data-store-2")
    wait_for(lambda: volume(bed, pv_name) is None, what="the Delete policy to remove the volume")
    assert not paths["data-store-2"].exists(), "and its directory"


RETAINED = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: kept}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: hostpath-retain
  resources: {requests: {storage: 1Gi}}
"""

FIXED = """
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: hostpath-fixed-size}
provisioner: runnel.dev/hostpath
allowVolumeExpansion: false
"""


def test_retain_keeps_the_volume_and_a_class_without_expansion_refuses_a_resize(bed, ns):
    ns.apply(RETAINED)
    claim = wait_for(lambda: (c := claims(ns).get("kept")) and c["status"].get("phase") == "Bound" and c,
                     what="the claim to bind")
    pv_name = claim["spec"]["volumeName"]
    (bed.volumes / pv_name / "keep-me").write_text("data")
    ns.delete("pvc", "kept")
    released = wait_for(lambda: (v := volume(bed, pv_name))["status"]["phase"] == "Released" and v,
                        what="the volume to be Released")
    assert released["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert (bed.volumes / pv_name / "keep-me").read_text() == "data"
    bed.kubectl("delete", "pv", pv_name)

    bed.kubectl("apply", "-f", "-", stdin=FIXED)
    ns.apply(RETAINED.replace("kept", "fixed").replace("hostpath-retain", "hostpath-fixed-size"))
    wait_for(lambda: (c := claims(ns).get("fixed")) and c["status"].get("phase") == "Bound", what="the claim to bind")
    out = bed.kubectl_run("-n", ns.name, "patch", "pvc", "fixed", "-p",
                          '{"spec": {"resources": {"requests": {"storage": "2Gi"}}}}')
    assert out.returncode != 0 and "storageclass that provisions the pvc must support resize" in out.stderr, out.stderr


EPHEMERAL = """
apiVersion: v1
kind: Pod
metadata: {name: scratch}
spec:
  containers:
    - {name: main, image: busybox, command: ["sh", "-c", "echo kept > /scratch/file; exec sleep 3600"],
       volumeMounts: [{name: work, mountPath: /scratch}]}
  volumes:
    - name: work
      ephemeral:
        volumeClaimTemplate:
          spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"""


def test_a_generic_ephemeral_volume_lives_and_dies_with_its_pod(bed, ns):
    ns.apply(EPHEMERAL)
    ns.wait_pod("scratch", ready, "to be ready")
    claim = claims(ns)["scratch-work"]
    assert claim["spec"]["storageClassName"] == "hostpath", "the default class"
    path = bed.volumes / claim["spec"]["volumeName"]
    assert wait_for(lambda: (path / "file").exists() and (path / "file").read_text() == "kept\n", what="the file")
    ns.delete("pod", "scratch")
    wait_for(lambda: "scratch-work" not in claims(ns), what="the claim to be collected with its pod")
    wait_for(lambda: volume(bed, claim["spec"]["volumeName"]) is None, what="the volume to be deleted")
    assert not path.exists()
