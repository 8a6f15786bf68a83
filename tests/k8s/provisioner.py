"""Dynamic volumes for the test bed: an external provisioner and resizer for
StorageClasses whose provisioner is `runnel.dev/hostpath`.

The PV controller in kube-controller-manager marks a pending claim of such a class with
`volume.kubernetes.io/storage-provisioner`; `reconcile()` then creates a PersistentVolume
for it: a hostPath directory `<root>/pvc-<claim uid>` (mode 0777, like other hostPath
provisioners), the class's reclaim policy and a claimRef, and the PV controller binds the
two. A Released volume whose policy is Delete loses its directory and its PV object;
Retain keeps both. A bound claim of a class with allowVolumeExpansion whose request grows
gets the new size in the PV's capacity and the claim's status (there is nothing to grow:
a directory has no size, and nothing enforces the old or the new one).

Only the Immediate binding mode is implemented: a claim of a WaitForFirstConsumer class
gets a ProvisioningFailed Event and stays Pending.
"""

import os
import shutil
from pathlib import Path

from kubeapi import ApiError, parse_quantity

PROVISIONER = "runnel.dev/hostpath"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"


class Provisioner:
    def __init__(self, kube, root, event):
        """`event(kind, obj, type, reason, message)` records a Kubernetes Event once."""
        self.kube = kube
        self.root = Path(root)
        self.event = event

    def reconcile(self, claims, volumes):
        classes = {c["metadata"]["name"]: c for c in self.kube.get("/apis/storage.k8s.io/v1/storageclasses")["items"]
                   if c.get("provisioner") == PROVISIONER}
        ours = {v["metadata"]["name"]: v for v in volumes
                if (v["metadata"].get("annotations") or {}).get(PROVISIONED_BY) == PROVISIONER}
        for claim in claims:
            cls = classes.get(claim["spec"].get("storageClassName") or "")
            if cls is None or claim["metadata"].get("deletionTimestamp"):
                continue
            phase = (claim.get("status") or {}).get("phase")
            if phase == "Pending" and not claim["spec"].get("volumeName"):
                self.provision(claim, cls, ours)
            elif phase == "Bound" and claim["spec"].get("volumeName") in ours:
                self.resize(claim, cls, ours[claim["spec"]["volumeName"]])
        for volume in ours.values():
            self.reclaim(volume)

    def provision(self, claim, cls, ours):
        meta = claim["metadata"]
        annotations = meta.get("annotations") or {}
        if annotations.get(STORAGE_PROVISIONER) != PROVISIONER and annotations.get(
                "volume.beta.kubernetes.io/storage-provisioner") != PROVISIONER:
            return  # the PV controller has not handed it over yet
        if cls.get("volumeBindingMode", "Immediate") != "Immediate":
            self.event("PersistentVolumeClaim", claim, "Warning", "ProvisioningFailed",
                       f"{PROVISIONER} implements only volumeBindingMode Immediate")
            return
        if claim["spec"].get("volumeMode", "Filesystem") != "Filesystem":
            self.event("PersistentVolumeClaim", claim, "Warning", "ProvisioningFailed",
                       f"{PROVISIONER} provisions only Filesystem volumes")
            return
        name = f"pvc-{meta['uid']}"
        if name in ours:
            return
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o777)
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {PROVISIONED_BY: PROVISIONER}},
            "spec": {
                "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
                "accessModes": claim["spec"].get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": cls.get("reclaimPolicy", "Delete"),
                "storageClassName": cls["metadata"]["name"],
                "volumeMode": "Filesystem",
                "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
                             "name": meta["name"], "uid": meta["uid"]},
            },
        }
        if cls.get("mountOptions"):
            volume["spec"]["mountOptions"] = cls["mountOptions"]
        try:
            self.kube.post("/api/v1/persistentvolumes", volume)
        except ApiError as e:
            if e.status != 409:
                raise
            return
        self.event("PersistentVolumeClaim", claim, "Normal", "ProvisioningSucceeded",
                   f"Successfully provisioned volume {name} at {path}")

    def resize(self, claim, cls, volume):
        wanted = claim["spec"]["resources"]["requests"]["storage"]
        have = ((claim.get("status") or {}).get("capacity") or {}).get("storage")
        if have is None or parse_quantity(wanted) <= parse_quantity(have):
            return
        if not cls.get("allowVolumeExpansion"):
            return  # the apiserver's admission refuses such a change; nothing to do
        meta = claim["metadata"]
        self.kube.patch(f"/api/v1/persistentvolumes/{volume['metadata']['name']}",
                        {"spec": {"capacity": {"storage": wanted}}})
        self.kube.patch_status(f"/api/v1/namespaces/{meta['namespace']}/persistentvolumeclaims/{meta['name']}/status",
                               {"status": {"capacity": {"storage": wanted}, "conditions": None}})
        self.event("PersistentVolumeClaim", claim, "Normal", "VolumeResizeSuccessful",
                   f"capacity {have} -> {wanted} (recorded only: a hostPath directory has no size)")

    def reclaim(self, volume):
        status = volume.get("status") or {}
        if status.get("phase") != "Released" or volume["spec"].get("persistentVolumeReclaimPolicy") != "Delete":
            return
        if volume["metadata"].get("deletionTimestamp"):
            return
        path = Path(volume["spec"]["hostPath"]["path"])
        if path.parent == self.root:
            shutil.rmtree(path, ignore_errors=True)
        try:
            self.kube.delete(f"/api/v1/persistentvolumes/{volume['metadata']['name']}")
        except ApiError as e:
            if e.status != 404:
                raise
