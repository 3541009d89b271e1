"""The web process: daphne, with the secrets in our link paths taken out of its access log.

``python -m callsphere.web [daphne options] [application]`` accepts every ``daphne`` option (the application
defaults to ``callsphere.asgi:application``). Daphne writes one access-log line per request to standard output
(``daphne.access.AccessLogGenerator``), path included; our acknowledge links (``/a/<token>``) and chat links
(``/c/<token>``) carry their secret in the path, so those segments become ``[redacted]`` (see
:mod:`callsphere.redaction`) before the line reaches stdout, the terminal or a log shipper. It also runs the
escalation pipeline's watchdog thread (``escalation.watchdog``).

Several processes (``WEB_CONCURRENCY``, default: the CPUs this process may run on): Django runs each sync view
under a GIL, so one process uses one core at most. With ``-b HOST -p PORT`` and more than one process, this
process binds the listening socket once and starts that many daphne processes serving it (inherited, the
pre-fork model of gunicorn), each the single-process web below; it restarts one that dies (after 1 s, doubling
to 30 s) and passes SIGTERM / SIGINT on. HTTP and websockets are served by every process; the channel layer
(Redis) carries chat replies and inbox events between them. Each process sizes its threads, pool and in-flight
budget by its share of the CPUs (:func:`size_threads_and_pool`); the escalation watchdog runs in the first only.
Other endpoints (``-e``, ``-u``, ``--fd``) run one process.

Websocket messages are bounded by daphne (``--websocket-max-message-size``, default ``CHAT_MAX_FRAME_BYTES`` of
the environment, 16384): an oversize chat frame never reaches Python. autobahn would answer it by dropping the
TCP connection (``failByDrop``; the browser sees 1006); we turn that off so it sends the close frame, 1009
"message too big", and closes cleanly.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from callsphere.redaction import RedactingStream

DEFAULT_APPLICATION = "callsphere.asgi:application"
_PROBE = "\0no-application-given"


def daphne_args(argv: list[str]) -> list[str]:
    """``argv`` for daphne's command line: the redacting access log first, and our application appended when
    ``argv`` names none (asked of daphne's own argument parser, so ``-e unix:…`` is never taken for one)."""
    from daphne.cli import CommandLineInterface

    args = ["--access-log", "-", *argv]
    if not any(a.startswith("--websocket-max-message-size") for a in argv):
        limit = os.environ.get("CHAT_MAX_FRAME_BYTES", "16384")
        args = ["--access-log", "-", "--websocket-max-message-size", limit, *argv]
    known, _ = CommandLineInterface().parser.parse_known_args([*args, _PROBE])
    return [*args, DEFAULT_APPLICATION] if known.application == _PROBE else args


def close_cleanly_on_protocol_errors() -> None:
    """Make autobahn send a close frame (e.g. 1009 for an oversize message) instead of dropping the connection."""
    from daphne.ws_protocol import WebSocketFactory

    original = WebSocketFactory.setProtocolOptions
    if getattr(original, "_callsphere", False):
        return

    def set_protocol_options(self, *args, **kwargs):
        kwargs.setdefault("failByDrop", False)
        return original(self, *args, **kwargs)

    set_protocol_options._callsphere = True  # type: ignore[attr-defined]
    WebSocketFactory.setProtocolOptions = set_protocol_options


def main(argv: list[str] | None = None) -> None:
    """Run daphne's command line with the access log going to a redacting stdout, in ``WEB_CONCURRENCY``
    processes when bound to a TCP host and port."""
    argv = list(sys.argv[1:] if argv is None else argv)
    processes = web_concurrency()
    if processes > 1 and (bind := tcp_bind(argv)) is not None:
        raise SystemExit(serve_processes(argv, bind, processes))
    serve(argv, processes=int(os.environ.get("WEB_PROCESSES_TOTAL") or 1))


def serve(argv: list[str], *, processes: int = 1) -> None:
    """One web process: daphne in this process (never returns until daphne stops)."""
    if (inherited := os.environ.pop("WEB_LISTEN_FD", "")) != "":
        argv = [*_adopt_listener(int(inherited)), *argv]
    from daphne.cli import CommandLineInterface

    close_cleanly_on_protocol_errors()

    args = daphne_args(argv)
    size_threads_and_pool(processes=processes)
    from callsphere import warmup

    if warmup.enabled():  # before listening: a cold process would hold its first requests for seconds
        seconds = warmup.warm_up()
        print(f"callsphere.web: warmed up in {seconds:.1f} s", file=sys.stderr, flush=True)
    sys.stdout = RedactingStream(sys.stdout)
    if os.environ.get("WEB_PROCESS_INDEX", "0") == "0":
        _start_watchdog()
    CommandLineInterface().run(args)


def _adopt_listener(fd: int) -> list[str]:
    """Daphne options serving the listening socket ``fd`` inherited from :func:`serve_processes`.

    Twisted adopts an inherited socket through its ``systemd:`` endpoint (the ``sd_listen_fds`` protocol:
    descriptors from 3, ``LISTEN_FDS``, ``LISTEN_PID`` and ``LISTEN_FDNAMES`` read when ``twisted.internet.endpoints`` is imported,
    so this runs first); daphne's own ``--fd`` names a ``fd:`` endpoint Twisted does not have."""
    if fd != 3:
        os.dup2(fd, 3)
        os.close(fd)
    family = socket.socket(fileno=os.dup(3))
    domain = "INET6" if family.family == socket.AF_INET6 else "INET"
    family.close()
    os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="web")
    return ["-e", f"systemd:domain={domain}:index=0"]


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, e.g. a container's cpuset), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def web_concurrency() -> int:
    """``WEB_CONCURRENCY`` (the convention of gunicorn and the PaaSes) if set, else one process per available
    CPU; at least 1."""
    value = os.environ.get("WEB_CONCURRENCY", "").strip()
    return max(1, int(value)) if value else available_cpus()


def tcp_bind(argv: list[str]) -> tuple[str, int] | None:
    """``(host, port)`` when ``argv`` binds daphne to TCP by ``-b``/``-p`` only (daphne's own parser), else None."""
    from daphne.cli import CommandLineInterface

    known, _ = CommandLineInterface().parser.parse_known_args([*argv, _PROBE])
    if known.socket_strings or known.unix_socket or known.file_descriptor is not None:
        return None
    return (known.host or "127.0.0.1"), int(known.port or 8000)


def _without_bind(argv: list[str]) -> list[str]:
    """``argv`` less its ``-b``/``--bind``/``-p``/``--port`` options."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("-b", "--bind", "-p", "--port"):
            skip = True
            continue
        if arg.startswith(("--bind=", "--port=")):
            continue
        out.append(arg)
    return out


def serve_processes(argv: list[str], bind: tuple[str, int], processes: int, *, max_backoff: float = 30.0) -> int:
    """Bind ``bind`` once and keep ``processes`` daphne processes serving it; returns the exit code.

    Each child is ``python -m callsphere.web`` adopting the socket (``WEB_LISTEN_FD``) with ``WEB_CONCURRENCY=1``, its index in
    ``WEB_PROCESS_INDEX`` and the total in ``WEB_PROCESSES_TOTAL``. A child that exits is started again after a
    backoff (1 s doubling to ``max_backoff``, reset after a minute up); SIGTERM / SIGINT stop them all (SIGKILL
    after 10 s). Raises ``OSError`` when the address cannot be bound."""
    host, port = bind
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host.strip("[]"), port))
    listener.listen(int(os.environ.get("WEB_BACKLOG", "1024")))
    listener.set_inheritable(True)
    rest = _without_bind(argv)
    stopping = False

    def start(index: int) -> subprocess.Popen:
        env = dict(
            os.environ,
            WEB_CONCURRENCY="1",
            WEB_PROCESS_INDEX=str(index),
            WEB_PROCESSES_TOTAL=str(processes),
            WEB_LISTEN_FD=str(listener.fileno()),
        )
        return subprocess.Popen(
            [sys.executable, "-m", "callsphere.web", *rest],
            env=env,
            pass_fds=(listener.fileno(),),
            preexec_fn=_die_with_parent,
        )

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    children = {i: start(i) for i in range(processes)}
    started = {i: time.monotonic() for i in children}
    backoff = dict.fromkeys(children, 1.0)
    restart_at: dict[int, float] = {}
    print(f"callsphere.web: {processes} daphne processes on {host}:{port}", file=sys.stderr, flush=True)
    while not stopping:
        time.sleep(0.2)
        now = time.monotonic()
        for i, child in children.items():
            if i not in restart_at and child.poll() is not None:
                if now - started[i] >= 60:
                    backoff[i] = 1.0
                restart_at[i] = now + backoff[i]
                print(f"callsphere.web: process {i} exited ({child.returncode}); restarting", file=sys.stderr)
                backoff[i] = min(max_backoff, backoff[i] * 2)
            if i in restart_at and now >= restart_at[i] and not stopping:
                del restart_at[i]
                children[i], started[i] = start(i), now
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)
    listener.close()
    return 0


def _die_with_parent() -> None:
    """In a child, before exec: ask Linux to SIGTERM it when this process dies (even by SIGKILL), so no orphan
    keeps serving the port. Elsewhere nothing."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def size_threads_and_pool(cpus: int | None = None, *, processes: int = 1) -> tuple[int, int]:
    """Bound this process's work by its share of the machine: ``ASGI_THREADS`` (the pool running non
    thread-sensitive sync code and the chat turns' share, see channels_app.chat.turns; also the base of the
    in-flight budget, callsphere.overload) and ``DB_POOL_MAX_SIZE`` (the psycopg pool, see settings) default to
    4 × CPUs ÷ ``processes``, at least 4 and at most 32, so N processes together hold about as many database
    connections as one did; either set in the environment wins. Called before Django and asgiref read them.
    Returns ``(threads, pool size)``."""
    share = 4 * (cpus or available_cpus()) // max(1, processes)
    default = str(max(4, min(32, share)))
    threads = int(os.environ.setdefault("ASGI_THREADS", default))
    pool = int(os.environ.setdefault("DB_POOL_MAX_SIZE", str(threads)))
    return threads, pool


def _start_watchdog() -> None:
    """The escalation pipeline's dead-man's switch runs in the web process (``escalation.watchdog``)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callsphere.settings")
    django.setup()
    from escalation.watchdog import start

    start()


if __name__ == "__main__":
    main()
