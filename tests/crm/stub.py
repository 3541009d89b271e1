"""Local HTTP stubs that speak the CRMs' documented REST APIs (paths, bearer auth, error bodies, rate-limit
headers), so our client code and the vendors' Python clients run for real against 127.0.0.1.

Each stub keeps its records in memory, logs every request and can be told to answer the next matching
request with a scripted error (``fail_next``). Tokens: ``valid_tokens`` are accepted; ``POST`` to the token
endpoint with a refresh token in ``revoked`` answers the vendor's invalid-grant error.
"""

from __future__ import annotations

import itertools
import json
import re
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Scripted:
    method: str
    path_regex: str
    status: int
    body: object
    headers: dict = field(default_factory=dict)


class Stub:
    """Base: a threaded server on 127.0.0.1 (optionally TLS) dispatching to ``route``."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict] = []
        self.scripted: list[Scripted] = []
        self.valid_tokens: set[str] = {"at-1"}
        self.refresh_tokens: set[str] = {"rt-1"}
        self.revoked: set[str] = set()
        self.ids = itertools.count(1001)
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = {
                    "method": self.command,
                    "path": parts.path,
                    "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "raw": raw,
                }
                ctype = request["headers"].get("content-type", "")
                if "json" in ctype and raw:
                    request["json"] = json.loads(raw)
                elif raw:
                    request["form"] = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                with stub.lock:
                    stub.requests.append(request)
                    status, headers, body = stub._dispatch(request)
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if data:
                    self.send_header("content-type", "application/json;charset=utf-8")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, method: str, path_regex: str, status: int, body: object, headers: dict | None = None):
        """Answer the next ``method`` request whose path matches ``path_regex`` with this error, once."""
        self.scripted.append(Scripted(method, path_regex, status, body, headers or {}))

    def _dispatch(self, request: dict) -> tuple[int, dict, object]:
        for s in self.scripted:
            if s.method == request["method"] and re.search(s.path_regex, request["path"]):
                self.scripted.remove(s)
                return s.status, s.headers, s.body
        return self.route(request)

    def route(self, request: dict) -> tuple[int, dict, object]:
        raise NotImplementedError

    def bearer_ok(self, request: dict) -> bool:
        auth = request["headers"].get("authorization", "")
        return auth.startswith("Bearer ") and auth[7:] in self.valid_tokens

    def calls(self, method: str, path_regex: str) -> list[dict]:
        """Requests seen (in order) matching ``method`` and ``path_regex``."""
        return [r for r in self.requests if r["method"] == method and re.search(path_regex, r["path"])]

    def issue_access_token(self) -> str:
        token = f"at-{next(self.ids)}"
        self.valid_tokens = {token}  # the old one stops working
        return token


STAMP = "2026-12-05T09:00:00.000Z"


class HubSpotStub(Stub):
    """HubSpot CRM v3 objects (contacts, calls, notes) and OAuth v1 tokens.

    https://developers.hubspot.com/docs/api/crm/contacts, …/crm/calls, …/crm/notes,
    https://developers.hubspot.com/docs/api/oauth/tokens, …/usage-details (429 body, rate-limit headers).
    """

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[str, dict[str, dict]] = {"contacts": {}, "calls": {}, "notes": {}}
        self.associations: list[tuple[str, str, str, int]] = []  # (type, id, contact id, association type id)

    def _obj(self, kind: str, pk: str) -> dict:
        return {
            "id": pk,
            "properties": self.objects[kind][pk],
            "createdAt": STAMP,
            "updatedAt": STAMP,
            "archived": False,
        }

    def route(self, request):
        path, method = request["path"], request["method"]
        if path == "/oauth/v1/token" and method == "POST":
            form = request.get("form", {})
            if form.get("grant_type") == "refresh_token":
                token = form.get("refresh_token", "")
                if token in self.revoked or token not in self.refresh_tokens:
                    return (
                        400,
                        {},
                        {
                            "status": "BAD_REFRESH_TOKEN",
                            "message": "missing or unknown refresh token",
                            "correlationId": "b6b5e2a3-0b2c-4a64-9d7e-5d1f3a0c8e11",
                        },
                    )
            return (
                200,
                {},
                {
                    "token_type": "bearer",
                    "refresh_token": form.get("refresh_token") or "rt-1",
                    "access_token": self.issue_access_token(),
                    "expires_in": 1800,
                },
            )
        if not self.bearer_ok(request):
            return (
                401,
                {},
                {
                    "status": "error",
                    "message": "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
                    "correlationId": "1f0c6a5e-8c2b-4a47-a4b1-7f5e2d0c9a33",
                    "category": "INVALID_AUTHENTICATION",
                },
            )
        m = re.fullmatch(r"/crm/v3/objects/(contacts|calls|notes)(?:/(search|\d+))?", path)
        if not m:
            return 404, {}, {"status": "error", "message": "not found", "category": "OBJECT_NOT_FOUND"}
        kind, tail = m.group(1), m.group(2)
        if tail == "search" and method == "POST":
            (flt,) = request["json"]["filterGroups"][0]["filters"]
            hits = [
                self._obj(kind, pk)
                for pk, props in self.objects[kind].items()
                if props.get(flt["propertyName"]) == flt["value"]
            ]
            return 200, {}, {"total": len(hits), "results": hits[:1]}
        if tail is None and method == "POST":
            pk = str(next(self.ids))
            self.objects[kind][pk] = dict(request["json"]["properties"])
            for assoc in request["json"].get("associations") or []:
                for t in assoc["types"]:
                    self.associations.append((kind, pk, str(assoc["to"]["id"]), t["associationTypeId"]))
            return 201, {}, self._obj(kind, pk)
        if tail is None and method == "GET":
            return 200, {}, {"results": [self._obj(kind, pk) for pk in list(self.objects[kind])[:1]]}
        if tail and tail.isdigit() and method == "PATCH":
            if tail not in self.objects[kind]:
                return 404, {}, {"status": "error", "message": "resource not found", "category": "OBJECT_NOT_FOUND"}
            self.objects[kind][tail].update(request["json"]["properties"])
            return 200, {}, self._obj(kind, tail)
        return 405, {}, {"status": "error", "message": "method not allowed"}
