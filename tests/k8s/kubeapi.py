"""A small Kubernetes REST client for the test bed: JSON over HTTPS with a client
certificate or a bearer token, nothing else. The pod runner and the tests use it; the
official clients would bring a dependency tree for five verbs."""

import http.client
import json
import ssl
import urllib.parse


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

    def patch_status(self, path, body):
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    def delete(self, path, body=None):
        return self.request("DELETE", path, body)

    def get_or_none(self, path):
        try:
            return self.get(path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise
