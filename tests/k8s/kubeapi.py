"""A small Kubernetes REST client for the test bed: JSON over HTTPS with a client
certificate or a bearer token, nothing else. The pod runner and the tests use it; the
official clients would bring a dependency tree for five verbs."""

import http.client
import json
import re
import ssl
import urllib.parse
from fractions import Fraction


class ApiError(Exception):
    def __init__(self, status, body):
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class Kube:
    def __init__(self, host, port, ca, cert=None, key=None, token=None):
        self.host, self.port = host, port
        self.context = ssl.create_default_context(cafile=ca)
        if cert:
            self.context.load_cert_chain(cert, key)
        self.token = token

    def request(self, method, path, body=None, query=None, content_type="application/json"):
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=30)
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read().decode()
        finally:
            conn.close()
        if response.status >= 300:
            raise ApiError(response.status, raw)
        return json.loads(raw) if raw else None

    def get(self, path, **query):
        return self.request("GET", path, query=query or None)

    def post(self, path, body):
        return self.request("POST", path, body)

    def put(self, path, body):
        return self.request("PUT", path, body)

    def patch(self, path, body):
        """A JSON merge patch (RFC 7386): maps merge, lists and scalars replace."""
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    # The status subresource takes the same patch; the name says which one a caller means.
    patch_status = patch

    def patch_strategic(self, path, body):
        """A strategic merge patch: lists with a merge key (conditions by type, container
        statuses by name) merge item by item, so others' entries survive."""
        return self.request("PATCH", path, body, content_type="application/strategic-merge-patch+json")

    def delete(self, path, body=None):
        return self.request("DELETE", path, body)

    def get_or_none(self, path):
        try:
            return self.get(path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise


# Binary and decimal suffixes of resource.Quantity.
_SUFFIXES = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$")


def parse_quantity(text):
    """A Kubernetes quantity ("1Gi", "500m", "1e3") as an exact Fraction."""
    m = _QUANTITY.match(str(text).strip())
    if not m:
        raise ValueError(f"not a quantity: {text!r}")
    number = Fraction(m.group(1))
    if m.group(2):
        return number * Fraction(10) ** int(m.group(2)[1:])
    return number * _SUFFIXES[m.group(3) or ""]
