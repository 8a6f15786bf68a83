"""The test bed's scheduler: picks a node for a pending pod the way kube-scheduler's
default plugins would, as pure functions over API objects (dicts), so the rules are unit
tested without a cluster.

Filters (a node failing one is out, and the reason is counted in the "0/N nodes are
available" message): schedulingGates, node readiness, `spec.unschedulable` (cordon),
taints NoSchedule/NoExecute against tolerations, nodeSelector, required node affinity,
volume node affinity, required pod affinity and anti-affinity (with the symmetric check of
existing pods' anti-affinity) and topologySpreadConstraints with DoNotSchedule.

Scores (the highest wins, then the node name): preferred node affinity, preferred pod
affinity and anti-affinity, PreferNoSchedule taints, ScheduleAnyway spread constraints, a
spread of pods with the same owner over nodes and zones (the default scheduler's
default spreading), and fewer pods on the node. Resources (requests, capacity) are not
considered: every node reports far more than the tests use.
"""

from collections import Counter

HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


# --- selectors ----------------------------------------------------------------------
def match_expression(labels, expr):
    """One matchExpressions entry of a label or node selector."""
    key, op, values = expr["key"], expr["operator"], expr.get("values") or []
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        try:
            have, want = int(labels[key]), int(values[0])
        except (KeyError, ValueError, IndexError):
            return False
        return have > want if op == "Gt" else have < want
    return False


def match_label_selector(selector, labels):
    """A metav1.LabelSelector; None matches nothing, {} matches everything."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(match_expression(labels, e) for e in selector.get("matchExpressions") or [])


def match_node_selector_term(term, node):
    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    exprs, field_exprs = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not field_exprs:
        return False  # an empty term matches no node
    return all(match_expression(labels, e) for e in exprs) and all(match_expression(fields, e) for e in field_exprs)


def match_node_selector(selector, node):
    """A v1.NodeSelector: the terms are ORed."""
    return any(match_node_selector_term(t, node) for t in selector.get("nodeSelectorTerms") or [])


# --- taints -------------------------------------------------------------------------
def tolerates(toleration, taint):
    if toleration.get("effect") and toleration["effect"] != taint["effect"]:
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint["key"]
    return toleration.get("key") == taint["key"] and toleration.get("value", "") == taint.get("value", "")


def untolerated(pod, taints, effects):
    tolerations = pod["spec"].get("tolerations") or []
    return [t for t in taints if t["effect"] in effects and not any(tolerates(x, t) for x in tolerations)]


def node_taints(node):
    taints = list(node["spec"].get("taints") or [])
    if node["spec"].get("unschedulable"):
        taints.append(UNSCHEDULABLE_TAINT)
    return taints


# --- pods ---------------------------------------------------------------------------
def node_labels(node):
    return node["metadata"].get("labels") or {}


def is_terminating(pod):
    return bool(pod["metadata"].get("deletionTimestamp"))


def affinity_term_namespaces(term, pod, namespace_labels):
    """The namespaces a pod (anti-)affinity term looks at."""
    names = set(term.get("namespaces") or [])
    selector = term.get("namespaceSelector")
    if selector is not None:
        names |= {ns for ns, labels in namespace_labels.items() if match_label_selector(selector, labels)}
    elif not names:
        names = {pod["metadata"]["namespace"]}
    return names


def term_selector(term, pod):
    """A term's labelSelector with matchLabelKeys / mismatchLabelKeys folded in."""
    selector = term.get("labelSelector")
    if selector is None:
        return None
    labels = pod["metadata"].get("labels") or {}
    exprs = list(selector.get("matchExpressions") or [])
    for key in term.get("matchLabelKeys") or []:
        if key in labels:
            exprs.append({"key": key, "operator": "In", "values": [labels[key]]})
    for key in term.get("mismatchLabelKeys") or []:
        if key in labels:
            exprs.append({"key": key, "operator": "NotIn", "values": [labels[key]]})
    return {"matchLabels": selector.get("matchLabels") or {}, "matchExpressions": exprs}


def term_matches(term, owner, other, namespace_labels):
    """Whether `other` is a pod that `owner`'s affinity term selects."""
    if other["metadata"]["namespace"] not in affinity_term_namespaces(term, owner, namespace_labels):
        return False
    return match_label_selector(term_selector(term, owner), other["metadata"].get("labels") or {})


def required_terms(pod, kind):
    affinity = (pod["spec"].get("affinity") or {}).get(kind) or {}
    return affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or []


def preferred_terms(pod, kind):
    affinity = (pod["spec"].get("affinity") or {}).get(kind) or {}
    return affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []


def owner_uid(pod):
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref["uid"]
    return None


class Cluster:
    """The nodes and the pods already placed on them, as a scheduling pass sees them."""

    def __init__(self, nodes, placed, namespace_labels=None):
        self.nodes = {n["metadata"]["name"]: n for n in nodes}
        self.placed = list(placed)
        self.namespace_labels = namespace_labels or {}

    def place(self, pod, node_name):
        pod = {**pod, "spec": {**pod["spec"], "nodeName": node_name}}
        self.placed.append(pod)

    def domain(self, node_name, key):
        node = self.nodes.get(node_name)
        return node_labels(node).get(key) if node else None

    def pods_in_domain(self, node, key):
        value = node_labels(node).get(key)
        if value is None:
            return []
        return [p for p in self.placed if self.domain(p["spec"]["nodeName"], key) == value]


# --- filters --------------------------------------------------------------------------
def node_affinity_ok(pod, node):
    selector = pod["spec"].get("nodeSelector") or {}
    if any(node_labels(node).get(k) != v for k, v in selector.items()):
        return False
    required = ((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")
    return required is None or match_node_selector(required, node)


def filter_node(pod, node, cluster, volume_selectors):
    """None if the pod fits the node, else the reason (as kube-scheduler words it)."""
    conditions = {c["type"]: c["status"] for c in (node.get("status") or {}).get("conditions") or []}
    if conditions.get("Ready") != "True":
        return "node(s) were not ready"
    if node["spec"].get("unschedulable") and untolerated(pod, [UNSCHEDULABLE_TAINT], ("NoSchedule",)):
        return "node(s) were unschedulable"
    bad = untolerated(pod, node["spec"].get("taints") or [], ("NoSchedule", "NoExecute"))
    if bad:
        return f"node(s) had untolerated taint {{{bad[0]['key']}: {bad[0].get('value', '')}}}"
    if not node_affinity_ok(pod, node):
        return "node(s) didn't match Pod's node affinity/selector"
    if not all(match_node_selector(s, node) for s in volume_selectors):
        return "node(s) had volume node affinity conflict"
    reason = pod_affinity_reason(pod, node, cluster)
    if reason:
        return reason
    return spread_reason(pod, node, cluster)


def pod_affinity_reason(pod, node, cluster):
    ns_labels = cluster.namespace_labels
    for term in required_terms(pod, "podAntiAffinity"):
        others = cluster.pods_in_domain(node, term["topologyKey"])
        if any(term_matches(term, pod, other, ns_labels) for other in others):
            return "node(s) didn't match pod anti-affinity rules"
    # Symmetry: an existing pod's required anti-affinity keeps this pod out of its domain.
    for other in cluster.placed:
        for term in required_terms(other, "podAntiAffinity"):
            if not term_matches(term, other, pod, ns_labels):
                continue
            value = node_labels(node).get(term["topologyKey"])
            if value is not None and cluster.domain(other["spec"]["nodeName"], term["topologyKey"]) == value:
                return "node(s) didn't satisfy existing pods anti-affinity rules"
    for term in required_terms(pod, "podAffinity"):
        others = cluster.pods_in_domain(node, term["topologyKey"])
        if any(term_matches(term, pod, other, ns_labels) for other in others):
            continue
        # The first pod of a group that selects itself may go anywhere (as upstream).
        anywhere = any(term_matches(term, pod, other, ns_labels) for other in cluster.placed)
        if anywhere or not term_matches(term, pod, pod, ns_labels) or term["topologyKey"] not in node_labels(node):
            return "node(s) didn't match pod affinity rules"
    return None


def spread_counts(pod, constraint, cluster):
    """Matching pods per domain of the constraint's key, over the nodes the pod could use."""
    key = constraint["topologyKey"]
    selector = term_selector(constraint, pod)
    counts = {}
    for node in cluster.nodes.values():
        value = node_labels(node).get(key)
        if value is None:
            continue
        if constraint.get("nodeAffinityPolicy", "Honor") == "Honor" and not node_affinity_ok(pod, node):
            continue
        if constraint.get("nodeTaintsPolicy", "Ignore") == "Honor" and untolerated(
                pod, node_taints(node), ("NoSchedule", "NoExecute")):
            continue
        counts.setdefault(value, 0)
    for other in cluster.placed:
        if is_terminating(other) or other["metadata"]["namespace"] != pod["metadata"]["namespace"]:
            continue
        value = cluster.domain(other["spec"]["nodeName"], key)
        if value in counts and match_label_selector(selector, other["metadata"].get("labels") or {}):
            counts[value] += 1
    return counts


def spread_reason(pod, node, cluster):
    for constraint in pod["spec"].get("topologySpreadConstraints") or []:
        if constraint.get("whenUnsatisfiable", "DoNotSchedule") != "DoNotSchedule":
            continue
        counts = spread_counts(pod, constraint, cluster)
        value = node_labels(node).get(constraint["topologyKey"])
        if value is None or value not in counts:
            return "node(s) didn't match pod topology spread constraints (missing required label)"
        lowest = min(counts.values())
        if len(counts) < constraint.get("minDomains", 1):
            lowest = 0
        mine = 1 if match_label_selector(term_selector(constraint, pod), pod["metadata"].get("labels") or {}) else 0
        if counts[value] + mine - lowest > constraint["maxSkew"]:
            return "node(s) didn't match pod topology spread constraints"
    return None


# --- scores ---------------------------------------------------------------------------
def score_node(pod, node, cluster):
    score = 0.0
    for pref in preferred_terms(pod, "nodeAffinity"):
        if match_node_selector_term(pref["preference"], node):
            score += pref["weight"]
    ns_labels = cluster.namespace_labels
    for kind, sign in (("podAffinity", 1), ("podAntiAffinity", -1)):
        for pref in preferred_terms(pod, kind):
            term = pref["podAffinityTerm"]
            if any(term_matches(term, pod, o, ns_labels) for o in cluster.pods_in_domain(node, term["topologyKey"])):
                score += sign * pref["weight"]
    score -= 10 * len(untolerated(pod, node["spec"].get("taints") or [], ("PreferNoSchedule",)))
    for constraint in pod["spec"].get("topologySpreadConstraints") or []:
        if constraint.get("whenUnsatisfiable") == "ScheduleAnyway":
            value = node_labels(node).get(constraint["topologyKey"])
            score -= 10 * spread_counts(pod, constraint, cluster).get(value, 0)
    owner = owner_uid(pod)
    if owner:
        siblings = [p for p in cluster.placed if owner_uid(p) == owner and not is_terminating(p)]
        score -= 5 * sum(1 for p in siblings if p["spec"]["nodeName"] == node["metadata"]["name"])
        zone = node_labels(node).get(ZONE)
        if zone is not None:
            score -= 3 * sum(1 for p in siblings if cluster.domain(p["spec"]["nodeName"], ZONE) == zone)
    score -= 0.1 * sum(1 for p in cluster.placed if p["spec"]["nodeName"] == node["metadata"]["name"])
    return score


def schedule(pod, cluster, volume_selectors=()):
    """(node name, None) for the best node, or (None, the FailedScheduling message)."""
    if pod["spec"].get("schedulingGates"):
        return None, "pod has scheduling gates"
    fits, reasons = [], Counter()
    for name in sorted(cluster.nodes):
        reason = filter_node(pod, cluster.nodes[name], cluster, volume_selectors)
        if reason is None:
            fits.append(name)
        else:
            reasons[reason] += 1
    if not fits:
        detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
        return None, f"0/{len(cluster.nodes)} nodes are available: {detail}."
    best = max(fits, key=lambda n: (score_node(pod, cluster.nodes[n], cluster), [-ord(ch) for ch in n]))
    return best, None
