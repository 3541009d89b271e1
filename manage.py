#!/usr/bin/env python
"""Django's command-line utility for callsphere."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callsphere.settings")
    if os.environ["DJANGO_SETTINGS_MODULE"] == "callsphere.settings":
        # local development (DEBUG=1): the embedded PostgreSQL / Redis, never started by importing settings
        from pathlib import Path

        from callsphere.embedded import ensure_dev_environment

        ensure_dev_environment(Path(__file__).resolve().parent)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
