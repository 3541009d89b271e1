"""The web process: daphne, with the secrets in our link paths taken out of its access log.

``python -m callsphere.web [daphne options] [application]`` accepts every ``daphne`` option (the application
defaults to ``callsphere.asgi:application``). Daphne writes one access-log line per request to standard output
(``daphne.access.AccessLogGenerator``), path included; our acknowledge links (``/a/<token>``) and chat links
(``/c/<token>``) carry their secret in the path, so those segments become ``[redacted]`` (see
:mod:`callsphere.redaction`) before the line reaches stdout, the terminal or a log shipper.
"""

from __future__ import annotations

import re
import sys

from callsphere.redaction import RedactingStream

DEFAULT_APPLICATION = "callsphere.asgi:application"
APPLICATION = re.compile(r"[\w.]+:[\w.]+")  # daphne's positional "module.path:attribute"


def main(argv: list[str] | None = None) -> None:
    """Run daphne's command line with the access log going to a redacting stdout."""
    from daphne.cli import CommandLineInterface

    args = list(sys.argv[1:] if argv is None else argv)
    if not (args and APPLICATION.fullmatch(args[-1])):
        args.append(DEFAULT_APPLICATION)
    sys.stdout = RedactingStream(sys.stdout)
    CommandLineInterface().run(["--access-log", "-", *args])


if __name__ == "__main__":
    main()
