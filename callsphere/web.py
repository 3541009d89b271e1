"""The web process: daphne, with the secrets in our link paths taken out of its access log.

``python -m callsphere.web [daphne options] [application]`` accepts every ``daphne`` option (the application
defaults to ``callsphere.asgi:application``). Daphne writes one access-log line per request to standard output
(``daphne.access.AccessLogGenerator``), path included; our acknowledge links (``/a/<token>``) and chat links
(``/c/<token>``) carry their secret in the path, so those segments become ``[redacted]`` (see
:mod:`callsphere.redaction`) before the line reaches stdout, the terminal or a log shipper. It also runs the
escalation pipeline's watchdog thread (``escalation.watchdog``).

Websocket messages are bounded by daphne (``--websocket-max-message-size``, default ``CHAT_MAX_FRAME_BYTES`` of
the environment, 16384): an oversize chat frame never reaches Python. autobahn would answer it by dropping the
TCP connection (``failByDrop``; the browser sees 1006); we turn that off so it sends the close frame, 1009
"message too big", and closes cleanly.
"""

from __future__ import annotations

import os
import sys

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
    """Run daphne's command line with the access log going to a redacting stdout."""
    from daphne.cli import CommandLineInterface

    close_cleanly_on_protocol_errors()

    args = daphne_args(list(sys.argv[1:] if argv is None else argv))
    size_threads_and_pool()
    sys.stdout = RedactingStream(sys.stdout)
    _start_watchdog()
    CommandLineInterface().run(args)


def size_threads_and_pool(cpus: int | None = None) -> tuple[int, int]:
    """Bound this process's work by the machine: ``ASGI_THREADS`` (asgiref's pool running sync views; unbounded
    it reached ~400 threads under overload) and ``DB_POOL_MAX_SIZE`` (the psycopg pool, see settings) default to
    4 × CPUs, at least 4 and at most 32; either set in the environment wins. Called before Django and asgiref
    read them. Returns ``(threads, pool size)``."""
    import os

    default = str(max(4, min(32, 4 * (cpus or os.cpu_count() or 1))))
    threads = int(os.environ.setdefault("ASGI_THREADS", default))
    pool = int(os.environ.setdefault("DB_POOL_MAX_SIZE", str(threads)))
    return threads, pool


def _start_watchdog() -> None:
    """The escalation pipeline's dead-man's switch runs in the web process (``escalation.watchdog``)."""
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callsphere.settings")
    django.setup()
    from escalation.watchdog import start

    start()


if __name__ == "__main__":
    main()
