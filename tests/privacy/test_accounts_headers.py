"""Staff accounts and headers: password validators, idle timeout, Permissions-Policy, weak SECRET_KEY refused."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError


def test_short_and_common_passwords_are_refused():
    for weak in ("a", "password123", "1234567890123"):
        with pytest.raises(ValidationError):
            validate_password(weak)
    validate_password("tulip-harbor-917")


def test_idle_session_timeout():
    assert settings.SESSION_COOKIE_AGE <= 3600 and settings.SESSION_SAVE_EVERY_REQUEST


@pytest.mark.django_db
def test_permissions_policy_header(client):
    assert "camera=()" in client.get("/healthz")["Permissions-Policy"]


@pytest.mark.parametrize("key", ["changeme", "x" * 60, "short-but-random-1"])
def test_weak_secret_key_refused_in_production(key):
    env = {**os.environ, "SECRET_KEY": key, "DEBUG": "0", "DJANGO_SETTINGS_MODULE": "callsphere.settings"}
    code = "import django; django.setup()"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "SECRET_KEY is too weak" in result.stderr
