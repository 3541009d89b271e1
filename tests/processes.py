"""Real processes for tests: a Celery worker and daphne, started against the test database and Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    """A libpq URL for the test database pytest-django created (host may be a unix socket directory)."""
    s = connection.settings_dict
    host = s.get("HOST") or s.get("OPTIONS", {}).get("host", "")
    auth = quote(s["USER"] or "") + (f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else "")
    if host.startswith("/"):
        return f"postgres://{auth}@/{s['NAME']}?host={quote(host)}"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{s['NAME']}"


def process_env(**overrides: str) -> dict[str, str]:
    """Environment for a child process: same database, Redis and secret as the tests."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "callsphere.settings",
            "DATABASE_URL": test_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "SECRET_KEY": settings.SECRET_KEY,
            "PUBLIC_BASE_URL": settings.PUBLIC_BASE_URL,
            "PYTHONUNBUFFERED": "1",
            # child processes run production settings (DEBUG off), which name no default providers
            "SMS_BACKEND": "providers.sms.ConsoleSmsBackend",
            "VOICE_BACKEND": "providers.voice.ConsoleVoiceBackend",
            "EMAIL_URL": "consolemail://",
            "SECURE_COOKIES": "0",  # tests talk to daphne over plain http on loopback
            # one web process unless a test asks for more (callsphere.web; production defaults to one per CPU)
            "WEB_CONCURRENCY": "1",
        }
    )
    env.update(overrides)
    return env


def purge_queues(queues: str) -> int:
    """Empty the named Celery queues (comma-separated, e.g. ``"celery,escalation"``) in this run's Redis;
    returns the number of messages dropped. Tasks an earlier test queued (on commit, or a delayed task a
    stopped worker gave back) would otherwise be consumed by the next test's worker."""
    from callsphere.celery import app

    dropped = 0
    with app.connection_for_write() as conn:
        for queue in filter(None, (q.strip() for q in queues.split(","))):
            dropped += conn.default_channel.queue_purge(queue) or 0
    return dropped


def start_worker(
    *,
    queues: str = "celery,escalation",
    concurrency: int = 2,
    log_path: Path,
    purge: bool = False,
    **env_overrides: str,
) -> subprocess.Popen:
    """Start ``celery worker`` as a child process and wait until it is ready (raises RuntimeError if not).

    ``purge`` first empties ``queues`` (:func:`purge_queues`): only for a worker started before the test
    queues anything it means that worker to run. The process gets ``log_path`` as an attribute."""
    if purge:
        purge_queues(queues)
    with open(log_path, "w") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "callsphere",
                "worker",
                "-Q",
                queues,
                "-c",
                str(concurrency),
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "info",
                "-n",
                f"test-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=process_env(**env_overrides),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"celery worker exited early:\n{log_path.read_text()}")
        if " ready." in log_path.read_text():
            proc.log_path = log_path
            return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"celery worker did not start:\n{log_path.read_text()}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_daphne(*, log_path: Path, **env_overrides: str) -> tuple[subprocess.Popen, str]:
    """Start the web process (``python -m callsphere.web``, i.e. daphne as the Procfile runs it) on a free
    loopback port; return the process and its base URL once it answers. A port taken between choosing and
    binding it makes daphne exit at once; that is retried on another port."""
    for _ in range(3):
        started = _start_daphne_once(log_path=log_path, **env_overrides)
        if started is not None:
            return started
    raise RuntimeError(f"daphne exited early:\n{log_path.read_text()}")


def _start_daphne_once(*, log_path: Path, **env_overrides: str) -> tuple[subprocess.Popen, str] | None:
    import httpx

    port = free_port()
    with open(log_path, "w") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "callsphere.web", "-b", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            env=process_env(**env_overrides),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"daphne did not start:\n{log_path.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    """Terminate a child process (SIGTERM, then SIGKILL after 10 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy (returned) or fail after ``timeout`` seconds.

    Raises ``AssertionError``. For waiting on work done by a real worker or server process in a test.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
