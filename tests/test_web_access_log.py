"""The web process keeps link secrets (``/a/<token>``, ``/c/<token>``) out of its access log."""

from __future__ import annotations

import httpx
import pytest

from callsphere.redaction import redact
from tests import processes

pytestmark = pytest.mark.django_db(transaction=True)


def test_access_log_has_every_request_but_no_link_secret(tmp_path):
    log_path = tmp_path / "web.log"
    proc, base = processes.start_daphne(log_path=log_path)
    try:
        secrets = ["K3zEB8R3A26M.mEsGx7RZ10_nTmT_", "Zm9vYmFyOmJhejpxdXV4"]
        assert httpx.get(f"{base}/a/{secrets[0]}").status_code == 404  # not a genuine token
        assert httpx.get(f"{base}/c/{secrets[1]}?utm=1").status_code in (404, 410)
        assert httpx.get(f"{base}/healthz").status_code == 200
        processes.wait_for(lambda: log_path.read_text().count('"GET ') >= 4, timeout=20)
    finally:
        processes.stop(proc)
    log = log_path.read_text()
    assert '"GET /a/[redacted]"' in log and '"GET /c/[redacted]?utm=1"' in log and '"GET /healthz"' in log
    assert not any(secret in log for secret in secrets)


@pytest.mark.parametrize(
    "line, expected",
    [
        ('"GET /a/abc.def" 200', '"GET /a/[redacted]" 200'),
        ('"POST /c/t0k:en-x?next=1" 302', '"POST /c/[redacted]?next=1" 302'),
        ('"GET /admin/a/ " 200 "/api/v1/c/"', '"GET /admin/a/ " 200 "/api/v1/c/"'),
        ("link https://clinic.example.com/a/abc.def sent", "link https://clinic.example.com/a/[redacted] sent"),
        ("https://clinic.example.com/admin/a/1/", "https://clinic.example.com/admin/a/1/"),
    ],
)
def test_redact_touches_only_link_paths(line, expected):
    assert redact(line) == expected


def test_every_handler_of_djangos_loggers_redacts():
    import logging

    from callsphere.redaction import RedactLinkSecrets

    for name in ("django", "django.request", "django.server", "daphne", ""):
        logger = logging.getLogger(name)
        while logger:
            for handler in logger.handlers:
                if type(handler).__module__.startswith("_pytest"):
                    continue  # pytest's capture, not ours
                assert any(isinstance(f, RedactLinkSecrets) for f in handler.filters), (name, handler)
            logger = logger.parent if logger.propagate else None


@pytest.mark.parametrize(
    "argv, application",
    [
        (["-b", "127.0.0.1", "-p", "8000"], "callsphere.asgi:application"),
        (["-e", "unix:/tmp/web.sock"], "callsphere.asgi:application"),
        (["-e", "tcp:8000", "other.asgi:app"], "other.asgi:app"),
    ],
)
def test_web_appends_our_application_only_when_none_is_given(argv, application):
    from daphne.cli import CommandLineInterface

    from callsphere.web import daphne_args

    args = daphne_args(argv)
    assert args[:2] == ["--access-log", "-"]
    assert CommandLineInterface().parser.parse_args(args).application == application
