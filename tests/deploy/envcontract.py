"""The environment contract shared by the deploy tests: what ``.env.example`` documents, a filled-in
production environment built from it, and loading the settings in a fresh interpreter."""

from __future__ import annotations

import ast
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent.parent
ENV_EXAMPLE = ROOT / ".env.example"
# What DEBUG=0 cannot start without (the order the settings report them in).
REQUIRED = [
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "FIELD_ENCRYPTION_KEYS",
    "PUBLIC_BASE_URL",
    "SMS_BACKEND",
    "VOICE_BACKEND",
    "EMAIL_URL",
]
_LINE = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def documented() -> set[str]:
    """Every NAME in ``.env.example``, set (``NAME=v``) or shown with its default (``# NAME=v``)."""
    return {m.group(2) for line in ENV_EXAMPLE.read_text().splitlines() if (m := _LINE.match(line.strip()))}


def example_values() -> dict[str, str]:
    """The uncommented ``NAME=value`` lines of ``.env.example`` (required secrets are left empty there)."""
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = _LINE.match(line.strip())
        if m and not m.group(1):
            out[m.group(2)] = m.group(3)
    return out


def filled_secrets() -> dict[str, str]:
    """What an operator fills into the empty lines of ``.env.example``: fresh random secrets."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
    }


def production_env(**overrides: str) -> dict[str, str]:
    """``.env.example`` filled in, plus servers (never contacted by loading settings), as a fresh process sees it.
    The parent's own configuration (the test settings' variables) is not inherited."""
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "TMPDIR", "VIRTUAL_ENV"}}
    env = {
        **keep,
        **example_values(),
        **filled_secrets(),
        "DATABASE_URL": "postgres://callsphere:pw@postgres:5432/callsphere",
        "REDIS_URL": "redis://redis:6379/0",
        "DJANGO_SETTINGS_MODULE": "callsphere.settings",
        "PYTHONPATH": str(ROOT),
    }
    env.update(overrides)
    return env


def load_settings(env: dict[str, str], code: str = "") -> subprocess.CompletedProcess:
    """Import ``callsphere.settings`` (``django.setup()``) in a fresh interpreter with exactly ``env``."""
    script = "import django; django.setup()\n" + code
    return subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def variables_read_by_code() -> set[str]:
    """Names the settings read (``env(...)``, ``env.<cast>(...)``, ``_required(...)``) and names the app's
    modules read from ``os.environ`` directly (``os.environ.get/setdefault/[...]``)."""
    names: set[str] = set()
    settings_tree = ast.parse((ROOT / "callsphere" / "settings.py").read_text())
    for node in ast.walk(settings_tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            fn = node.func
            is_env = (isinstance(fn, ast.Name) and fn.id in {"env", "_required"}) or (
                isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name) and fn.value.id == "env"
            )
            if is_env and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    packages = ["callsphere", "identity", "conversations", "providers", "channels_app", "enrichment", "escalation"]
    packages.append("observability")
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            if path.name in {"settings_test.py", "embedded.py"}:
                continue  # test-run and local-development plumbing, not the deployment's contract
            for node in ast.walk(ast.parse(path.read_text())):
                name = _environ_read(node)
                if name and name not in {"DJANGO_SETTINGS_MODULE", "PATH"}:
                    names.add(name)
    return names


def _environ_read(node: ast.AST) -> str | None:
    def is_environ(expr: ast.AST) -> bool:
        return isinstance(expr, ast.Attribute) and expr.attr == "environ"

    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in {"get", "setdefault"}
        and is_environ(node.func.value)
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ):
        return str(node.args[0].value)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "getenv":
        if node.args and isinstance(node.args[0], ast.Constant):
            return str(node.args[0].value)
    if isinstance(node, ast.Subscript) and is_environ(node.value) and isinstance(node.slice, ast.Constant):
        return str(node.slice.value)
    return None
