"""What the pod runner does with each field of a pod spec, so that nothing is silently
accepted.

`review(pod)` walks the spec against an allow-list and sorts what it finds into:
- refused: fields the runner does not implement and whose absence would change what a
  test observes (a grpc probe, a sidecar, hostNetwork...). The pod does not start; its
  containers wait with reason `Unsupported` and a Warning Event says why.
- ignored: fields that only matter to a real node's enforcement (resource limits,
  seccomp, SELinux, image pull secrets). The pod runs; a Warning Event `Ignored` lists
  them once.
Fields the apiserver defaults on every pod pass without a word: imagePullPolicy (nothing
is pulled, whatever it says), terminationMessagePath/Policy at their defaults (no
termination message is collected; other values are reported as ignored), dnsPolicy
ClusterFirst, schedulerName (a pod for another scheduler is left to it), priority and
preemptionPolicy. Anything not named here, including fields of future API versions, is
refused.

`security(pod, container)` resolves the user, groups and capabilities a container runs
with, or the kubelet's CreateContainerConfigError message when they cannot be honoured.
"""

UNSUPPORTED = "Unsupported"
CONFIG_ERROR = "CreateContainerConfigError"

POD_FIELDS = {
    # implemented
    "containers", "initContainers", "volumes", "restartPolicy", "terminationGracePeriodSeconds",
    "activeDeadlineSeconds", "nodeSelector", "affinity", "tolerations", "nodeName", "hostname",
    "subdomain", "setHostnameAsFQDN", "hostAliases", "serviceAccountName", "serviceAccount",
    "automountServiceAccountToken", "securityContext", "schedulerName", "schedulingGates",
    "topologySpreadConstraints", "readinessGates", "enableServiceLinks", "dnsPolicy",
    # defaulted or informational
    "priority", "preemptionPolicy", "os",
    # checked below: refused unless false or empty
    "hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace", "hostUsers", "ephemeralContainers",
    # ignored, with an Event
    "priorityClassName", "runtimeClassName", "overhead", "resources", "imagePullSecrets",
}
POD_IGNORED = {
    "priorityClassName": "no preemption in the test bed",
    "runtimeClassName": "every container is a local process",
    "overhead": "resources are not accounted",
    "resources": "resources are not enforced",
    "imagePullSecrets": "images are local programs; nothing is pulled",
}
CONTAINER_FIELDS = {
    "name", "image", "command", "args", "env", "envFrom", "workingDir", "ports", "volumeMounts",
    "readinessProbe", "livenessProbe", "startupProbe", "lifecycle", "securityContext", "restartPolicy",
    "imagePullPolicy", "terminationMessagePath", "terminationMessagePolicy",
    "resources", "resizePolicy", "stdin", "stdinOnce", "tty", "volumeDevices",
}
PROBE_FIELDS = {"exec", "httpGet", "tcpSocket", "initialDelaySeconds", "periodSeconds", "timeoutSeconds",
                "successThreshold", "failureThreshold", "terminationGracePeriodSeconds"}
HANDLER_FIELDS = {"exec", "httpGet", "sleep"}
HTTP_GET_FIELDS = {"path", "port", "host", "scheme", "httpHeaders"}
POD_SECURITY_FIELDS = {"runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "fsGroupChangePolicy",
                       "supplementalGroups", "supplementalGroupsPolicy"}
CONTAINER_SECURITY_FIELDS = {"runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem",
                             "allowPrivilegeEscalation", "capabilities", "privileged", "procMount"}
SECURITY_IGNORED = {
    "seccompProfile": "no seccomp filter is applied",
    "seLinuxOptions": "no SELinux labels",
    "seLinuxChangePolicy": "no SELinux labels",
    "appArmorProfile": "no AppArmor profile is applied",
}
VOLUME_TYPES = {"emptyDir", "configMap", "secret", "projected", "downwardAPI", "persistentVolumeClaim",
                "hostPath", "ephemeral"}
PROJECTED_SOURCES = {"serviceAccountToken", "configMap", "secret", "downwardAPI"}
MOUNT_FIELDS = {"name", "mountPath", "readOnly", "subPath", "subPathExpr", "mountPropagation", "recursiveReadOnly"}
FIELD_PATHS = {"metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels", "metadata.annotations",
               "spec.nodeName", "spec.serviceAccountName", "status.podIP", "status.podIPs", "status.hostIP",
               "status.hostIPs"}
ENV_SOURCES = {"fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef"}


class Review:
    def __init__(self):
        self.refused = []
        self.ignored = []

    def refuse(self, where, why):
        self.refused.append(f"{where}: {why}")

    def ignore(self, where, why):
        self.ignored.append(f"{where}: {why}")

    def unknown(self, where, obj, known):
        for key in sorted(set(obj or {}) - known):
            self.refuse(f"{where}.{key}", "not implemented by the test bed's pod runner")


def review(pod):
    """The refused and ignored fields of a pod (`Review.refused`, `Review.ignored`)."""
    spec, r = pod["spec"], Review()
    r.unknown("spec", spec, POD_FIELDS)
    for key, why in POD_IGNORED.items():
        if spec.get(key):
            r.ignore(f"spec.{key}", why)
    for key in ("hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace"):
        if spec.get(key):
            r.refuse(f"spec.{key}", "pods share one network namespace and see only their own processes")
    if spec.get("hostUsers") is False:
        r.refuse("spec.hostUsers", "no user namespaces")
    if spec.get("ephemeralContainers"):
        r.refuse("spec.ephemeralContainers", "not implemented")
    if spec.get("dnsPolicy", "ClusterFirst") != "ClusterFirst":
        r.refuse("spec.dnsPolicy", f"{spec['dnsPolicy']} is not implemented (only ClusterFirst)")
    if (spec.get("os") or {}).get("name", "linux") != "linux":
        r.refuse("spec.os.name", "linux only")
    review_security(r, "spec.securityContext", spec.get("securityContext"), POD_SECURITY_FIELDS)
    if (spec.get("securityContext") or {}).get("supplementalGroupsPolicy", "Merge") != "Merge":
        r.refuse("spec.securityContext.supplementalGroupsPolicy", "only Merge")
    for i, c in enumerate(spec.get("initContainers") or []):
        review_container(r, f"spec.initContainers[{c['name']}]", c, init=True)
    for c in spec["containers"]:
        review_container(r, f"spec.containers[{c['name']}]", c, init=False)
    for v in spec.get("volumes") or []:
        review_volume(r, f"spec.volumes[{v['name']}]", v)
    for i, t in enumerate(spec.get("topologySpreadConstraints") or []):
        r.unknown(f"spec.topologySpreadConstraints[{i}]", t, {
            "maxSkew", "topologyKey", "whenUnsatisfiable", "labelSelector", "minDomains",
            "nodeAffinityPolicy", "nodeTaintsPolicy", "matchLabelKeys"})
    affinity = spec.get("affinity") or {}
    r.unknown("spec.affinity", affinity, {"nodeAffinity", "podAffinity", "podAntiAffinity"})
    return r


def review_security(r, where, ctx, known):
    for key in sorted(set(ctx or {}) - known):
        if key in SECURITY_IGNORED:
            r.ignore(f"{where}.{key}", SECURITY_IGNORED[key])
        else:
            r.refuse(f"{where}.{key}", "not implemented by the test bed's pod runner")


def review_container(r, where, c, init):
    r.unknown(where, c, CONTAINER_FIELDS)
    if c.get("resources"):
        r.ignore(f"{where}.resources", "resources are not enforced")
    if c.get("resizePolicy"):
        r.ignore(f"{where}.resizePolicy", "resources are not enforced")
    if c.get("terminationMessagePath", "/dev/termination-log") != "/dev/termination-log" or c.get(
            "terminationMessagePolicy", "File") != "File":
        r.ignore(f"{where}.terminationMessagePath", "termination messages are not collected")
    for key in ("stdin", "stdinOnce", "tty"):
        if c.get(key):
            r.refuse(f"{where}.{key}", "no terminal or stdin is attached")
    if c.get("volumeDevices"):
        r.refuse(f"{where}.volumeDevices", "no block volumes")
    if c.get("restartPolicy"):
        r.refuse(f"{where}.restartPolicy", "sidecar init containers (restartPolicy Always) are not implemented")
    for p in c.get("ports") or []:
        if p.get("hostPort"):
            r.refuse(f"{where}.ports[{p.get('containerPort')}].hostPort",
                     "pods share the network namespace; no host ports")
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        if kind in c:
            probe = c[kind]
            if "grpc" in probe:
                r.refuse(f"{where}.{kind}.grpc", "grpc probes are not implemented (use exec, httpGet or tcpSocket)")
            r.unknown(f"{where}.{kind}", {k: v for k, v in probe.items() if k != "grpc"}, PROBE_FIELDS)
            review_http_get(r, f"{where}.{kind}", probe)
    if init and any(k in c for k in ("readinessProbe", "livenessProbe", "startupProbe", "lifecycle")):
        r.refuse(where, "probes and lifecycle hooks on init containers are not implemented")
    lifecycle = c.get("lifecycle") or {}
    r.unknown(f"{where}.lifecycle", lifecycle, {"preStop", "postStart", "stopSignal"})
    for hook in ("preStop", "postStart"):
        if hook in lifecycle:
            handler = lifecycle[hook]
            if "tcpSocket" in handler:
                r.refuse(f"{where}.lifecycle.{hook}.tcpSocket", "not supported as a lifecycle handler (as upstream)")
            r.unknown(f"{where}.lifecycle.{hook}", {k: v for k, v in handler.items() if k != "tcpSocket"},
                      HANDLER_FIELDS)
            review_http_get(r, f"{where}.lifecycle.{hook}", handler)
    review_security(r, f"{where}.securityContext", c.get("securityContext"), CONTAINER_SECURITY_FIELDS)
    ctx = c.get("securityContext") or {}
    if ctx.get("procMount", "Default") != "Default":
        r.refuse(f"{where}.securityContext.procMount", "only Default")
    r.unknown(f"{where}.securityContext.capabilities", ctx.get("capabilities"), {"add", "drop"})
    for m in c.get("volumeMounts") or []:
        mw = f"{where}.volumeMounts[{m['mountPath']}]"
        r.unknown(mw, m, MOUNT_FIELDS)
        if m.get("mountPropagation", "None") != "None":
            r.refuse(f"{mw}.mountPropagation", "only None")
        if m.get("recursiveReadOnly", "Disabled") == "Enabled":
            r.refuse(f"{mw}.recursiveReadOnly", "read-only mounts are not recursive here")
    for e in c.get("env") or []:
        source = e.get("valueFrom") or {}
        r.unknown(f"{where}.env[{e['name']}].valueFrom", source, ENV_SOURCES)
        path = (source.get("fieldRef") or {}).get("fieldPath")
        if path and path.split("[")[0] not in FIELD_PATHS:
            r.refuse(f"{where}.env[{e['name']}]", f"fieldPath {path} is not implemented")
    for i, e in enumerate(c.get("envFrom") or []):
        r.unknown(f"{where}.envFrom[{i}]", e, {"configMapRef", "secretRef", "prefix"})


def review_http_get(r, where, handler):
    get = handler.get("httpGet")
    if get is None:
        return
    r.unknown(f"{where}.httpGet", get, HTTP_GET_FIELDS)
    if get.get("scheme", "HTTP") not in ("HTTP", "HTTPS"):
        r.refuse(f"{where}.httpGet.scheme", "HTTP or HTTPS only")


def review_volume(r, where, v):
    kinds = [k for k in v if k != "name"]
    for kind in kinds:
        if kind not in VOLUME_TYPES:
            r.refuse(f"{where}.{kind}", "volume type not implemented")
    empty = v.get("emptyDir")
    if empty is not None:
        if empty.get("medium"):
            r.ignore(f"{where}.emptyDir.medium", f"{empty['medium']}: a directory on disk all the same")
        if empty.get("sizeLimit"):
            r.ignore(f"{where}.emptyDir.sizeLimit", "directories have no size limit")
    for source in (v.get("projected") or {}).get("sources") or []:
        for kind in source:
            if kind not in PROJECTED_SOURCES:
                r.refuse(f"{where}.projected.{kind}", "projected source not implemented")
    items = (v.get("downwardAPI") or {}).get("items") or []
    for source in (v.get("projected") or {}).get("sources") or []:
        items += (source.get("downwardAPI") or {}).get("items") or []
    for item in items:
        path = (item.get("fieldRef") or {}).get("fieldPath")
        if path and path.split("[")[0] not in FIELD_PATHS:
            r.refuse(f"{where}.downwardAPI[{item['path']}]", f"fieldPath {path} is not implemented")


def security(pod, c):
    """How a container runs: a dict (uid, gid, groups, no_new_privs, caps, read_only_root)
    or a str, the reason it cannot be run as asked (kubelet's wording where it has one)."""
    pod_ctx = pod["spec"].get("securityContext") or {}
    ctx = c.get("securityContext") or {}

    def pick(key):
        return ctx[key] if ctx.get(key) is not None else pod_ctx.get(key)

    uid, gid = pick("runAsUser"), pick("runAsGroup")
    if pick("runAsNonRoot"):
        # Local programs have no image USER: without runAsUser they would run as root.
        if uid is None:
            return "container has runAsNonRoot and image will run as root"
        if uid == 0:
            return "container's runAsUser breaks non-root policy"
    groups = list(pod_ctx.get("supplementalGroups") or [])
    if pod_ctx.get("fsGroup") is not None and pod_ctx["fsGroup"] not in groups:
        groups.append(pod_ctx["fsGroup"])
    caps = ctx.get("capabilities") or {}
    add = [cap_name(x) for x in caps.get("add") or []]
    if add and uid not in (None, 0):
        return "capabilities.add for a non-root user is not implemented by the test bed"
    if ctx.get("privileged") and uid not in (None, 0):
        return "privileged containers run as root in the test bed"
    return {
        "uid": uid,
        "gid": gid if gid is not None else (0 if uid is not None else None),
        "groups": groups,
        "no_new_privs": ctx.get("allowPrivilegeEscalation") is False,
        "drop": [cap_name(x) for x in caps.get("drop") or []],
        "add": add,
        "read_only_root": bool(ctx.get("readOnlyRootFilesystem")),
    }


def cap_name(cap):
    """NET_ADMIN or CAP_NET_ADMIN as setpriv spells it: net_admin."""
    cap = cap.lower()
    return cap[4:] if cap.startswith("cap_") else cap


def setpriv_args(sec):
    """The `setpriv` command line for a resolved security dict; [] when nothing changes.

    Dropped capabilities leave the bounding and inheritable sets, so the program that
    setpriv executes never has them; a non-root user has none after the uid change anyway.
    Added capabilities only mean something for root, who has them all already, unless
    the drop list removed them first (`drop: [ALL], add: [NET_BIND_SERVICE]`)."""
    args = []
    if sec["gid"] is not None:
        args.append(f"--regid={sec['gid']}")
    if sec["uid"] is not None:
        args.append(f"--reuid={sec['uid']}")
    if sec["uid"] is not None or sec["gid"] is not None or sec["groups"]:
        args.append(f"--groups={','.join(map(str, sec['groups']))}" if sec["groups"] else "--clear-groups")
    if sec["no_new_privs"]:
        args.append("--no-new-privs")
    if sec["drop"]:
        caps = ["-all"] if "all" in sec["drop"] else [f"-{cap}" for cap in sec["drop"]]
        caps += [f"+{cap}" for cap in sec["add"] if cap != "all"]
        args += [f"--bounding-set={','.join(caps)}", f"--inh-caps={','.join(caps)}"]
    return ["setpriv", *args, "--"] if args else []
