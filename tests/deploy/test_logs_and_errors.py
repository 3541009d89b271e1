"""Structured logs and error reporting: JSON lines carry the request id and never a link secret; with
``SENTRY_DSN`` set, errors reach Sentry (a local HTTP receiver here) with phone numbers, emails and link
secrets scrubbed before they leave the process."""

from __future__ import annotations

import gzip
import io
import json
import logging
import logging.config
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings

from callsphere.errors import scrub_text
from tests.deploy.envcontract import load_settings, production_env


@pytest.fixture
def json_lines():
    """The ``django.request`` logger's lines, formatted as LOG_FORMAT=json formats them (settings.LOGGING)."""
    config = logging.config.DictConfigurator(settings.LOGGING)
    formatter = config.configure_formatter(dict(settings.LOGGING["formatters"]["json"]))
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(formatter)
    for name in settings.LOGGING["handlers"]["console"]["filters"]:
        handler.addFilter(config.configure_filter(dict(settings.LOGGING["filters"][name])))
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    logger.removeHandler(handler)


@pytest.mark.django_db
def test_json_log_lines_carry_the_request_id_and_no_link_secret(client, json_lines):
    request_id = uuid.uuid4().hex
    response = client.get("/a/Zq9-secret.k3yMaterial/portal?x=1", HTTP_X_REQUEST_ID=request_id)
    assert response.status_code == 404
    assert response["X-Request-ID"] == request_id  # echoed back to the proxy / client
    lines = [line for line in json_lines() if line["logger"] == "django.request"]
    assert lines and lines[-1]["request_id"] == request_id and lines[-1]["level"] == "WARNING"
    assert "/a/[redacted]" in lines[-1]["message"] and "Zq9-secret" not in json.dumps(lines)

    response = client.get("/a/another-one.abc", HTTP_X_REQUEST_ID="not a uuid; DROP TABLE")
    assert response["X-Request-ID"] != "not a uuid; DROP TABLE"  # an invalid id is replaced, not trusted
    assert json_lines()[-1]["request_id"] == response["X-Request-ID"]


def test_scrub_text_removes_phone_numbers_emails_and_link_secrets():
    text = (
        "Twilio 21211: The 'To' number +1 (555) 123-0042 is not valid; copy sent to maría.lópez@correo.es, "
        "link https://clinic.example.com/a/K3y.s3cr3t and 555.867.5309"
    )
    scrubbed = scrub_text(text)
    assert scrubbed == (
        "Twilio 21211: The 'To' number [phone] is not valid; copy sent to [email], "
        "link https://clinic.example.com/a/[redacted] and [phone]"
    )


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self):
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        type(self).bodies.append(raw)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_errors_reach_sentry_with_phi_scrubbed():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Receiver.bodies = []
    try:
        dsn = f"http://public0key@127.0.0.1:{server.server_port}/42"
        code = """
import logging, sentry_sdk
logging.getLogger("channels_app").warning("reply to +15551230042 failed (link https://x.example/c/SeCrEt.tok)")
try:
    raise ValueError("The 'To' number +15551230042 is not valid for josé@example.org")
except ValueError:
    sentry_sdk.capture_exception()
sentry_sdk.flush(10)
print("sent")
"""
        result = load_settings(production_env(SENTRY_DSN=dsn, SENTRY_ENVIRONMENT="ci"), code)
        assert result.returncode == 0 and "sent" in result.stdout, result.stderr
    finally:
        server.shutdown()
    body = b"\n".join(_Receiver.bodies).decode()
    assert "ValueError" in body and '"environment":"ci"' in body.replace(" ", "")
    assert "[phone]" in body and "[email]" in body
    for secret in ("5551230042", "josé@example.org", "jos\\u00e9@example.org", "SeCrEt.tok"):
        assert secret not in body


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_requests_id_follows_its_task_into_a_json_logging_worker(tenant, client, tmp_path):
    from twilio.request_validator import RequestValidator

    from channels_app import twilio_payloads
    from conversations.models import ChannelMessage
    from tests import processes

    worker = processes.start_worker(log_path=tmp_path / "worker.log", purge=True, LOG_FORMAT="json")
    try:
        params = twilio_payloads.inbound_sms(
            account_sid=tenant.twilio_account_sid, from_="+15551230077", to="+15550100001", body="hi!! can i come thurs"
        )
        signature = RequestValidator(tenant.twilio_auth_token).compute_signature(
            settings.PUBLIC_BASE_URL + "/twilio/sms/", params
        )
        request_id = uuid.uuid4().hex
        response = client.post("/twilio/sms/", params, HTTP_X_TWILIO_SIGNATURE=signature, HTTP_X_REQUEST_ID=request_id)
        assert response.status_code == 200 and response["X-Request-ID"] == request_id
        processes.wait_for(
            lambda: (
                ChannelMessage.objects.filter(idempotency_key=f"reply:{params['MessageSid']}")
                .exclude(status="pending")
                .exists()
            )
        )

        def task_lines():
            lines = []
            for raw in (tmp_path / "worker.log").read_text().splitlines():
                if raw.startswith("{"):
                    lines.append(json.loads(raw))
            return [line for line in lines if line.get("request_id") == request_id] or None

        tagged = processes.wait_for(task_lines)
        assert all(
            set(line)
            <= {"time", "level", "logger", "message", "request_id", "exc_info"}
            | {"tenant", "customer", "resolved", "other", "status_code", "stack_info"}
            for line in tagged
        )
        json_text = [raw for raw in (tmp_path / "worker.log").read_text().splitlines() if raw.startswith("{")]
        assert len(json_text) > 3 and not any("5551230077" in raw for raw in json_text)  # (the console SMS
        # backend prints whole texts to stdout on purpose: it stands in for the patient's phone)
    finally:
        processes.stop(worker)
