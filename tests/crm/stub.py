"""Local HTTP stubs that speak the CRMs' documented REST APIs (paths, bearer auth, error bodies, rate-limit
headers), so our client code and the vendors' Python clients run for real against 127.0.0.1.

Each stub keeps its records in memory, logs every request and can be told to answer the next matching
request with a scripted error (``fail_next``). Tokens: ``valid_tokens`` are accepted; ``POST`` to the token
endpoint with a refresh token in ``revoked`` answers the vendor's invalid-grant error.
"""

from __future__ import annotations

import html
import itertools
import json
import re
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit


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
                if isinstance(body, str):  # an HTML page (a consent screen)
                    data, ctype = body.encode(), "text/html;charset=utf-8"
                else:
                    data, ctype = (b"" if body is None else json.dumps(body).encode()), "application/json;charset=utf-8"
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if data:
                    self.send_header("content-type", ctype)
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
        self.objects: dict[str, dict[str, dict]] = {"contacts": {}, "calls": {}, "notes": {}, "meetings": {}}
        self.associations: list[tuple[str, str, str, int]] = []  # (type, id, contact id, association type id)

    def _obj(self, kind: str, pk: str) -> dict:
        return {
            "id": pk,
            "properties": self.objects[kind][pk],
            "createdAt": STAMP,
            "updatedAt": STAMP,
            "archived": False,
        }

    #: Where the consent screen's "Connect app" sends the browser instead of ``PUBLIC_BASE_URL`` (a live server).
    redirect_base: str = ""

    def route(self, request):
        path, method = request["path"], request["method"]
        if path == "/oauth/authorize" and method == "GET":  # HubSpot's consent screen, reduced to its button
            q = request["query"]
            target = q["redirect_uri"]
            if self.redirect_base:
                target = self.redirect_base + "/" + target.split("/", 3)[3]
            href = f"{target}?{urlencode({'code': 'na1-consent-code', 'state': q['state']})}"
            page = (
                '<!doctype html><meta name="viewport" content="width=device-width">'
                f"<h1>Connect callsphere to HubSpot</h1><p>Scopes: {html.escape(q['scope'])}</p>"
                f'<a id="grant" href="{html.escape(href)}">Connect app</a>'
            )
            return 200, {}, page
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
        m = re.fullmatch(r"/crm/v3/objects/(contacts|calls|notes|meetings)(?:/(search|\d+))?", path)
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


def self_signed_tls(directory) -> tuple[ssl.SSLContext, str]:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1, and the CA file path to trust."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "stub.crt", directory / "stub.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context, str(cert_path)


class SalesforceStub(Stub):
    """Salesforce REST API (sobjects Contact / Task, SOQL query) and the OAuth 2.0 token endpoint, over TLS
    (simple-salesforce only speaks https).

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/ (errors: errorCode / message
    lists; 401 INVALID_SESSION_ID; 403 REQUEST_LIMIT_EXCEEDED), …/remoteaccess_oauth_refresh_token_flow.htm
    """

    VERSION = "62.0"

    def __init__(self, tls: ssl.SSLContext) -> None:
        super().__init__(tls=tls)
        self.objects: dict[str, dict[str, dict]] = {"Contact": {}, "Task": {}, "Event": {}}

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}5g00000{next(self.ids):08d}"  # 18 characters, like real ids

    def route(self, request):
        path, method = request["path"], request["method"]
        if path == "/services/oauth2/token" and method == "POST":
            form = request.get("form", {})
            if form.get("grant_type") == "refresh_token" and (
                form.get("refresh_token") in self.revoked or form.get("refresh_token") not in self.refresh_tokens
            ):
                return 400, {}, {"error": "invalid_grant", "error_description": "expired access/refresh token"}
            return (
                200,
                {},
                {
                    "access_token": self.issue_access_token(),
                    "signature": "c2lnbmF0dXJl",
                    "scope": "refresh_token api",
                    "instance_url": self.base,
                    "id": f"{self.base}/id/00D5g000004ORGXEAW/0055g00000USERAAA",
                    "token_type": "Bearer",
                    "issued_at": "1765011600000",
                },
            )
        if not self.bearer_ok(request):
            return 401, {}, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
        prefix = f"/services/data/v{self.VERSION}"
        if path == f"{prefix}/query/" or path == f"{prefix}/query":
            q = request["query"]["q"]
            if "FROM Organization" in q:
                return (
                    200,
                    {},
                    {"totalSize": 1, "done": True, "records": [{"Id": "00D5g000004ORGX", "Name": "Clínica Sol"}]},
                )
            m = re.search(r"FROM Contact WHERE (Phone|Email) = '((?:[^'\\]|\\.)*)'", q)
            field_name, value = m.group(1), m.group(2).replace("\\'", "'")
            hits = [
                {"attributes": {"type": "Contact"}, "Id": pk}
                for pk, rec in self.objects["Contact"].items()
                if rec.get(field_name) == value
            ]
            return 200, {}, {"totalSize": len(hits), "done": True, "records": hits[:1]}
        m = re.fullmatch(prefix + r"/sobjects/(Contact|Task|Event)/?([A-Za-z0-9]{18})?", path)
        if not m:
            return 404, {}, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
        sobject, pk = m.group(1), m.group(2)
        if method == "POST" and not pk:
            body = request["json"]
            if sobject == "Contact" and not body.get("LastName"):
                return (
                    400,
                    {},
                    [
                        {
                            "message": "Required fields are missing: [LastName]",
                            "errorCode": "REQUIRED_FIELD_MISSING",
                            "fields": ["LastName"],
                        }
                    ],
                )
            if sobject == "Event" and not (body.get("StartDateTime") and body.get("EndDateTime")):
                return (
                    400,
                    {},
                    [
                        {
                            "message": "Required fields are missing: [EndDateTime]",
                            "errorCode": "REQUIRED_FIELD_MISSING",
                            "fields": ["StartDateTime", "EndDateTime"],
                        }
                    ],
                )
            pk = self._new_id({"Contact": "003", "Task": "00T", "Event": "00U"}[sobject])
            self.objects[sobject][pk] = dict(body)
            return 201, {}, {"id": pk, "success": True, "errors": []}
        if method == "PATCH" and pk:
            if pk not in self.objects[sobject]:
                return (
                    404,
                    {},
                    [
                        {
                            "errorCode": "NOT_FOUND",
                            "message": "Provided external ID field does not exist or is not accessible: " + pk,
                        }
                    ],
                )
            if "TaskSubtype" in request["json"]:
                return (
                    400,
                    {},
                    [
                        {
                            "message": "Unable to create/update fields: TaskSubtype.",
                            "errorCode": "INVALID_FIELD_FOR_INSERT_UPDATE",
                            "fields": ["TaskSubtype"],
                        }
                    ],
                )
            self.objects[sobject][pk].update(request["json"])
            return 204, {}, None
        return 405, {}, [{"errorCode": "METHOD_NOT_ALLOWED", "message": "HTTP Method not allowed"}]


class ZohoStub(Stub):
    """Zoho CRM API v8 (Contacts search / insert / update, Calls, Notes, org) and the accounts token endpoint.

    https://www.zoho.com/crm/developer/docs/api/v8/ (search-records: 204 when empty; insert-records: 201 with
    per-record ``code``/``details.id``; status codes: 401 INVALID_TOKEN, 429 TOO_MANY_REQUESTS),
    https://www.zoho.com/accounts/protocol/oauth/web-apps/access-token-expiry.html (200 {"error": "invalid_code"}).
    """

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[str, dict[str, dict]] = {"Contacts": {}, "Calls": {}, "Notes": {}, "Events": {}}

    def bearer_ok(self, request: dict) -> bool:
        auth = request["headers"].get("authorization", "")
        return auth.startswith("Zoho-oauthtoken ") and auth[16:] in self.valid_tokens

    def route(self, request):
        path, method = request["path"], request["method"]
        if path == "/oauth/v2/token" and method == "POST":
            form = request.get("form", {})
            if form.get("grant_type") == "refresh_token" and (
                form.get("refresh_token") in self.revoked or form.get("refresh_token") not in self.refresh_tokens
            ):
                return 200, {}, {"error": "invalid_code"}
            return (
                200,
                {},
                {
                    "access_token": self.issue_access_token(),
                    "api_domain": self.base,
                    "token_type": "Bearer",
                    "expires_in": 3600,
                },
            )
        if not self.bearer_ok(request):
            return (
                401,
                {},
                {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"},
            )
        if path == "/crm/v8/org" and method == "GET":
            return 200, {}, {"org": [{"company_name": "Clínica Sol", "id": "7000000001"}]}
        if path == "/crm/v8/Contacts/search" and method == "GET":
            key, value = next((k, v) for k, v in request["query"].items() if k in ("phone", "email"))
            field_name = {"phone": "Phone", "email": "Email"}[key]
            hits = [{"id": pk} for pk, rec in self.objects["Contacts"].items() if rec.get(field_name) == value]
            if not hits:
                return 204, {}, None
            return 200, {}, {"data": hits[:1], "info": {"per_page": 1, "count": 1, "page": 1, "more_records": False}}
        m = re.fullmatch(r"/crm/v8/(Contacts|Calls|Notes|Events)(?:/(\d+))?", path)
        if not m:
            return (
                404,
                {},
                {
                    "code": "INVALID_URL_PATTERN",
                    "details": {},
                    "message": "Please check if the URL trying to access is a correct one",
                    "status": "error",
                },
            )
        module, pk = m.group(1), m.group(2)
        (record,) = request["json"]["data"]
        if method == "POST" and not pk:
            if module == "Contacts" and not record.get("Last_Name"):
                return (
                    400,
                    {},
                    {
                        "data": [
                            {
                                "code": "MANDATORY_NOT_FOUND",
                                "details": {"api_name": "Last_Name"},
                                "message": "required field not found",
                                "status": "error",
                            }
                        ]
                    },
                )
            pk = str(5725767000000000000 + next(self.ids))
            self.objects[module][pk] = dict(record)
            return (
                201,
                {},
                {
                    "data": [
                        {
                            "code": "SUCCESS",
                            "details": {"id": pk, "Created_Time": "2026-12-05T09:00:00+00:00"},
                            "message": "record added",
                            "status": "success",
                        }
                    ]
                },
            )
        if method == "PUT" and pk:
            if pk not in self.objects[module]:
                return (
                    400,
                    {},
                    {
                        "data": [
                            {
                                "code": "INVALID_DATA",
                                "details": {"id": pk},
                                "message": "the related id given seems to be invalid",
                                "status": "error",
                            }
                        ]
                    },
                )
            self.objects[module][pk].update(record)
            return (
                200,
                {},
                {
                    "data": [
                        {"code": "SUCCESS", "details": {"id": pk}, "message": "record updated", "status": "success"}
                    ]
                },
            )
        return (
            405,
            {},
            {
                "code": "INVALID_REQUEST_METHOD",
                "details": {},
                "message": "The http request method type is not a valid one",
                "status": "error",
            },
        )
