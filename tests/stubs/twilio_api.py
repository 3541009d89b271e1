"""A local stub of Twilio's REST API (Messages and Calls) on 127.0.0.1, for tests and benchmarks.

Point the real twilio client at it with ``settings.TWILIO_API_BASE = stub.base_url`` (in-process) or the
``TWILIO_API_BASE`` environment variable (a worker subprocess); our provider code then runs unchanged.

Implemented (https://www.twilio.com/docs/messaging/api/message-resource, .../voice/api/call-resource):

- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (To, From, Body, StatusCallback) → 201 message
- ``GET  …/Messages/{Sid}.json`` → 200 message; ``GET …/Messages.json?To=&From=&PageSize=`` → 200 page
- ``POST …/Calls.json`` (To, From, Twiml | Url, MachineDetection, StatusCallback, Timeout) → 201 call (the
  stored call keeps ``twiml``, ``url`` and ``machine_detection``: what Twilio would run when it is answered)
- ``GET  …/Calls/{Sid}.json`` and ``GET …/Calls.json?To=&From=`` likewise.
- ``POST …/Calls/{Sid}.json`` (Status=canceled | completed) → 200 call: ``completed`` ends a queued/ringing call
  (stored as ``canceled``) or an in-progress one (``completed``); ``canceled`` leaves an in-progress call alone.
  An unknown SID answers 404 (20404); a call already over answers 400 (21220, invalid call state).
- ``DELETE …/Recordings/{Sid}.json`` → 204 (https://www.twilio.com/docs/voice/api/recording#delete-a-recording-resource);
  an unknown SID (or one of another account) answers 404 (20404). Recordings exist once :meth:`TwilioStub.add_recording`
  put them there (a call's ``<Record>`` is not simulated).

Every request is recorded (:attr:`TwilioStub.requests`, with arrival time); created resources are kept
(:attr:`TwilioStub.messages`, :attr:`TwilioStub.calls`). Faults are programmable per resource and recipient::

    stub.add_fault("messages", status=500)                           # next create: 500 (nothing created)
    stub.add_fault("messages", status=500, create=True)              # created, then 500: reconcile must find it
    stub.add_fault("calls", status=429, times=2)                     # two 429s, then success
    stub.add_fault("messages", status=400, code=21211, to="+1555…")  # permanent error for one number
    stub.add_fault("calls", delay=3.0, create=True)                  # slow answer (client read timeout)
    stub.add_fault("calls", action="update", status=503)             # next call update (hang-up): 503
    stub.add_fault("recordings", action="delete", status=503)        # next recording delete: 503

Error bodies are Twilio's: ``{"code", "message", "more_info", "status"}``. Use as a context manager or
call :meth:`start` / :meth:`stop`; :meth:`reset` clears records and faults between tests.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

API = "/2010-04-01/Accounts/"
ERROR_MESSAGES = {
    21211: "The 'To' number is not a valid phone number.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20404: "The requested resource was not found",
    21220: "Invalid call state for the requested action",
}
FINAL_CALL_STATUSES = frozenset({"completed", "canceled", "busy", "failed", "no-answer"})


@dataclass
class Fault:
    """One programmed failure for ``resource`` (``"messages"`` or ``"calls"``) creates (``action="update"``:
    call updates instead; ``"recordings"`` with ``action="delete"``: recording deletes).

    ``status`` None means "answer normally" (useful with ``delay``). ``create`` stores the resource before
    failing (the request was processed: a 5xx or timeout after the fact; for an update: the update is
    applied). ``to`` limits it to one recipient. ``times`` counts down; the fault is removed at zero
    (``times=None``: forever).
    """

    resource: str
    action: str = "create"
    status: int | None = None
    code: int | None = None
    delay: float = 0.0
    create: bool = False
    to: str | None = None
    times: int | None = 1


@dataclass
class Recorded:
    """One request the stub received: method, resource (``messages``/``calls``), action, params, time."""

    method: str
    resource: str
    action: str  # "create", "fetch", "list", "update", "delete"
    params: dict
    account_sid: str
    at: float = field(default_factory=time.time)


class TwilioStub:
    """The stub server. Thread-safe; serves each request on its own thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._lock = threading.Lock()
        self.requests: list[Recorded] = []
        self.messages: dict[str, dict] = {}
        self.calls: dict[str, dict] = {}
        self.recordings: dict[str, dict] = {}  # sid -> {"sid", "account_sid"}
        self.faults: list[Fault] = []
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> TwilioStub:
        self._thread = threading.Thread(target=self._server.serve_forever, name="twilio-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> TwilioStub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.messages.clear()
            self.calls.clear()
            self.recordings.clear()
            self.faults.clear()

    # --- programming and inspecting -----------------------------------------------------------------------

    def add_fault(self, resource: str, **kwargs) -> Fault:
        """Program a fault (see :class:`Fault`); faults are matched in the order they were added."""
        if resource not in ("messages", "calls", "recordings"):
            raise ValueError("resource must be 'messages', 'calls' or 'recordings'")
        fault = Fault(resource=resource, **kwargs)
        if resource == "recordings":
            if fault.action != "delete":
                raise ValueError("recordings take action='delete'")
        elif fault.action not in ("create", "update") or (fault.action == "update" and resource != "calls"):
            raise ValueError("action must be 'create', or 'update' for calls")
        with self._lock:
            self.faults.append(fault)
        return fault

    def created(self, resource: str, *, to: str | None = None) -> list[dict]:
        """Resources created so far (oldest first), optionally for one recipient."""
        with self._lock:
            items = list((self.messages if resource == "messages" else self.calls).values())
        return [i for i in items if to is None or i["to"] == to]

    def creates(self, resource: str, *, to: str | None = None) -> list[Recorded]:
        """Create requests received (including failed ones), optionally for one recipient."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.resource == resource and r.action == "create" and (to is None or r.params.get("To") == to)
            ]

    def updates(self, resource: str = "calls", *, sid: str | None = None) -> list[Recorded]:
        """Update requests received (including failed ones), optionally for one SID (``params["Sid"]``)."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.resource == resource and r.action == "update" and (sid is None or r.params.get("Sid") == sid)
            ]

    def add_recording(self, account_sid: str) -> str:
        """Store a recording of ``account_sid`` (as a finished ``<Record>`` would) and return its SID (``RE…``)."""
        sid = "RE" + uuid.uuid4().hex
        with self._lock:
            self.recordings[sid] = {"sid": sid, "account_sid": account_sid}
        return sid

    def deletes(self, resource: str = "recordings", *, sid: str | None = None) -> list[Recorded]:
        """Delete requests received (including failed ones), optionally for one SID (``params["Sid"]``)."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.resource == resource and r.action == "delete" and (sid is None or r.params.get("Sid") == sid)
            ]

    def set_status(self, resource: str, sid: str, status: str) -> None:
        """Change a stored resource's status (what a later fetch/list returns)."""
        with self._lock:
            (self.messages if resource == "messages" else self.calls)[sid]["status"] = status

    # --- internals ----------------------------------------------------------------------------------------

    def _take_fault(self, resource: str, to: str, action: str = "create") -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.resource == resource and fault.action == action and (fault.to is None or fault.to == to):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    def _store(self, resource: str, account_sid: str, params: dict) -> dict:
        now = formatdate(usegmt=True)
        prefix, plural = ("SM", "Messages") if resource == "messages" else ("CA", "Calls")
        sid = prefix + uuid.uuid4().hex
        item = {
            "sid": sid,
            "account_sid": account_sid,
            "to": params.get("To", ""),
            "from": params.get("From", ""),
            "status": "queued",
            "direction": "outbound-api",
            "date_created": now,
            "date_updated": now,
            "api_version": "2010-04-01",
            "uri": f"{API}{account_sid}/{plural}/{sid}.json",
            "price": None,
            "price_unit": "USD",
        }
        if resource == "messages":
            item.update(
                {
                    "body": params.get("Body", ""),
                    "num_segments": "1",
                    "num_media": "0",
                    "date_sent": None,
                    "error_code": None,
                    "error_message": None,
                    "messaging_service_sid": None,
                    "subresource_uris": {"media": f"{API}{account_sid}/Messages/{sid}/Media.json"},
                }
            )
        else:
            item.update(
                {
                    "parent_call_sid": None,
                    "start_time": None,
                    "end_time": None,
                    "duration": None,
                    "answered_by": None,
                    "caller_name": None,
                    "forwarded_from": None,
                    "phone_number_sid": None,
                    "queue_time": "0",
                    "trunk_sid": None,
                    "twiml": params.get("Twiml", ""),
                    "url": params.get("Url", ""),
                    "machine_detection": params.get("MachineDetection", ""),
                    "timeout": params.get("Timeout", ""),
                    "status_callback": params.get("StatusCallback", ""),
                    "subresource_uris": {},
                }
            )
        item["_received_at"] = time.time()  # when the create request arrived (not part of the JSON)
        if params.get("StatusCallback"):
            item["_status_callback"] = params["StatusCallback"]
        with self._lock:
            (self.messages if resource == "messages" else self.calls)[sid] = item
        return item

    def _handler_class(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, payload: dict) -> None:
                body = json.dumps({k: v for k, v in payload.items() if not k.startswith("_")}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): exactly what a slow Twilio looks like

            def _error(self, status: int, code: int | None) -> None:
                code = code or (20429 if status == 429 else 20500 if status >= 500 else 20001)
                self._send(
                    status,
                    {
                        "code": code,
                        "message": ERROR_MESSAGES.get(code, "Error"),
                        "more_info": f"https://www.twilio.com/docs/errors/{code}",
                        "status": status,
                    },
                )

            def _route(self) -> tuple[str, str, str | None] | None:
                path = urlparse(self.path).path
                if not path.startswith(API):
                    return None
                parts = path[len(API) :].split("/")
                account = parts[0]
                if len(parts) == 2 and parts[1] in ("Messages.json", "Calls.json"):
                    return account, parts[1][:-5].lower(), None
                if len(parts) == 3 and parts[1] in ("Messages", "Calls", "Recordings") and parts[2].endswith(".json"):
                    return account, parts[1].lower(), parts[2][:-5]
                return None

            def do_POST(self):
                route = self._route()
                length = int(self.headers.get("Content-Length") or 0)
                params = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if route is None:
                    return self._error(404, 20404)
                account, resource, sid = route
                if sid is not None:
                    return self._update(account, resource, sid, params)
                with stub._lock:
                    stub.requests.append(Recorded("POST", resource, "create", params, account))
                fault = stub._take_fault(resource, params.get("To", ""))
                item = None
                if fault is None or fault.create or fault.status is None:
                    item = stub._store(resource, account, params)
                if fault is not None and fault.delay:
                    time.sleep(fault.delay)
                if fault is not None and fault.status is not None:
                    return self._error(fault.status, fault.code)
                self._send(201, item)

            def _update(self, account: str, resource: str, sid: str, params: dict):
                with stub._lock:
                    stub.requests.append(Recorded("POST", resource, "update", {**params, "Sid": sid}, account))
                    item = (stub.calls if resource == "calls" else {}).get(sid)
                if item is None or item["account_sid"] != account:
                    return self._error(404, 20404)
                fault = stub._take_fault(resource, item["to"], action="update")
                if fault is not None and fault.delay:
                    time.sleep(fault.delay)
                if fault is not None and fault.status is not None and not fault.create:
                    return self._error(fault.status, fault.code)
                wanted = params.get("Status", "")
                if wanted not in ("", "canceled", "completed"):
                    return self._error(400, None)
                with stub._lock:
                    over = item["status"] in FINAL_CALL_STATUSES
                    if not over and wanted and item["status"] in ("queued", "initiated", "ringing"):
                        item["status"] = "canceled"
                    elif not over and wanted == "completed":
                        item["status"] = "completed"
                    item["date_updated"] = formatdate(usegmt=True)
                    payload = dict(item)
                if over:
                    return self._error(400, 21220)
                if fault is not None and fault.status is not None:
                    return self._error(fault.status, fault.code)
                self._send(200, payload)

            def do_DELETE(self):
                route = self._route()
                if route is None or route[1] != "recordings" or route[2] is None:
                    return self._error(404, 20404)
                account, resource, sid = route
                with stub._lock:
                    auth = self.headers.get("Authorization", "")
                    stub.requests.append(Recorded("DELETE", resource, "delete", {"Sid": sid, "_auth": auth}, account))
                fault = stub._take_fault(resource, "", action="delete")
                if fault is not None and fault.delay:
                    time.sleep(fault.delay)
                if fault is not None and fault.status is not None and not fault.create:
                    return self._error(fault.status, fault.code)
                with stub._lock:
                    item = stub.recordings.get(sid)
                    found = item is not None and item["account_sid"] == account
                    if found:
                        del stub.recordings[sid]
                if fault is not None and fault.status is not None:
                    return self._error(fault.status, fault.code)  # deleted, then the answer was lost
                if not found:
                    return self._error(404, 20404)
                try:
                    self.send_response(204)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self):
                route = self._route()
                if route is None:
                    return self._error(404, 20404)
                account, resource, sid = route
                query = {k: v[-1] for k, v in parse_qs(urlparse(self.path).query).items()}
                with stub._lock:
                    stub.requests.append(Recorded("GET", resource, "fetch" if sid else "list", query, account))
                    store = stub.messages if resource == "messages" else stub.calls
                    if sid:
                        item = store.get(sid)
                        if item is None or item["account_sid"] != account:
                            return self._error(404, 20404)
                        return self._send(200, item)
                    items = [
                        i
                        for i in reversed(list(store.values()))
                        if i["account_sid"] == account
                        and ("To" not in query or i["to"] == query["To"])
                        and ("From" not in query or i["from"] == query["From"])
                    ]
                size = int(query.get("PageSize", 50))
                uri = urlparse(self.path).path
                self._send(
                    200,
                    {
                        resource: [{k: v for k, v in i.items() if not k.startswith("_")} for i in items[:size]],
                        "end": min(size, len(items)) - 1,
                        "first_page_uri": uri,
                        "next_page_uri": None,
                        "page": 0,
                        "page_size": size,
                        "previous_page_uri": None,
                        "start": 0,
                        "uri": uri,
                    },
                )

        return Handler


def status_callback_params(item: dict, status: str, **extra: str) -> dict[str, str]:
    """The form Twilio posts to a StatusCallback for a stub resource moving to ``status``.

    Messages: MessageSid/MessageStatus (+ SmsSid/SmsStatus); calls: CallSid/CallStatus (+ AnsweredBy etc. via
    ``extra``). Sources: Twilio's "Message status callback" and "Call status callback" docs.
    """
    common = {"AccountSid": item["account_sid"], "From": item["from"], "To": item["to"], "ApiVersion": "2010-04-01"}
    if item["sid"].startswith("SM"):
        params = {
            **common,
            "MessageSid": item["sid"],
            "MessageStatus": status,
            "SmsSid": item["sid"],
            "SmsStatus": status,
        }
    else:
        params = {**common, "CallSid": item["sid"], "CallStatus": status, "Direction": "outbound-api"}
    params.update(extra)
    return params
