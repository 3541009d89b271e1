"""``python -m callsphere.run``: start web + workers + beat (the Procfile, under :mod:`callsphere.supervise`,
which restarts a process that dies instead of stopping them all) and say what to try.

The embedded PostgreSQL and Redis are started once here and their URLs exported, so every process of the
Procfile uses the same servers.
"""

import json
import os
import subprocess
import sys
from pathlib import Path


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callsphere.settings")
    os.environ.setdefault("DEBUG", "1")
    from callsphere.embedded import ensure_dev_environment

    ensure_dev_environment(Path(__file__).resolve().parent.parent)  # exports DATABASE_URL / REDIS_URL
    # the Procfile's commands (daphne, celery) live next to this interpreter in the virtualenv
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    port = os.environ.setdefault("WEB_PORT", "8000")
    seed = json.loads(subprocess.check_output([sys.executable, "manage.py", "seed_demo", "--json"], text=True))
    base = f"http://127.0.0.1:{port}"
    print(
        f"""
  callsphere is starting (web, worker, worker-escalation, beat).

  Admin:      {base}/admin/   login {seed["admin"]["username"]} / {seed["admin"]["password"]}
  Health:     {base}/healthz
  Chat demo:  {base}/demo/   (a sample clinic page with the chat widget; try "I'd like to book for Tuesday")
  Try an SMS: .venv/bin/python manage.py simulate --server {base} sms --from +15551230001 --body "Hi, I'd like to book an appointment"
  Then:       .venv/bin/python manage.py close_idle --now     (closes the session; the worker enriches it)
""",
        flush=True,
    )
    os.execvp(sys.executable, [sys.executable, "-m", "callsphere.supervise", str(Path("Procfile"))])


if __name__ == "__main__":
    main()
