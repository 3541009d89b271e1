"""Production settings refuse to guess: each required variable missing gives the one clear error, importing
the settings starts no server, ``.env.example`` documents every variable read, ``check --deploy`` is clean."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.deploy.envcontract import (
    REQUIRED,
    ROOT,
    documented,
    load_settings,
    production_env,
    variables_read_by_code,
)


def test_env_example_documents_every_variable_the_code_reads():
    missing = variables_read_by_code() - documented()
    assert not missing, f"add these to .env.example: {sorted(missing)}"
    assert {"SECRET_KEY", "DATABASE_URL", "FIELD_ENCRYPTION_KEYS", "TWILIO_API_BASE"} <= documented()


def test_documented_production_values_load():
    result = load_settings(production_env(), "from django.conf import settings; print(settings.ALLOWED_HOSTS)")
    assert result.returncode == 0, result.stderr
    assert "callsphere.example.com" in result.stdout


@pytest.mark.parametrize("name", REQUIRED)
def test_each_required_variable_missing_stops_start_up_with_one_clear_error(name, tmp_path):
    env = production_env(CALLSPHERE_DATA_DIR=str(tmp_path))
    del env[name]
    result = load_settings(env)
    assert result.returncode != 0
    assert result.stderr.count("Traceback") == 1 and "ImproperlyConfigured" in result.stderr
    message = result.stderr.split("ImproperlyConfigured: ", 1)[1]
    assert message.startswith("callsphere cannot start") and "see .env.example" in message
    listed = [line.strip()[2:].split(":")[0] for line in message.splitlines()[1:] if line.strip().startswith("- ")]
    assert listed == [name]  # only what is missing, with how to set it
    assert "e.g." in message or "python -c" in message or "keys" in message
    assert list(tmp_path.iterdir()) == []  # nothing started, no data dir written


def test_everything_missing_is_reported_together():
    env = production_env()
    for name in REQUIRED:
        env[name] = ""  # set but empty counts as missing
    env["SECRET_KEY"] = "changeme"
    result = load_settings(env)
    message = result.stderr.split("ImproperlyConfigured: ", 1)[1]
    assert "SECRET_KEY is too weak" in message
    for name in REQUIRED:
        if name != "SECRET_KEY":
            assert f"- {name}:" in message


def test_a_key_that_is_not_a_fernet_key_is_named():
    result = load_settings(production_env(FIELD_ENCRYPTION_KEYS="hunter2-not-a-key"))
    assert result.returncode != 0 and "hunt… is not a Fernet key" in result.stderr


def test_a_malformed_link_signing_key_is_named():
    result = load_settings(production_env(LINK_SIGNING_KEYS="k2:short"))
    assert result.returncode != 0 and "LINK_SIGNING_KEYS: 'k2'… is not <kid>:<secret>" in result.stderr


def test_importing_settings_under_debug_starts_no_server(tmp_path):
    env = production_env(DEBUG="1", CALLSPHERE_DATA_DIR=str(tmp_path))
    del env["DATABASE_URL"], env["REDIS_URL"]
    result = load_settings(env)
    assert result.returncode != 0 and "manage.py or `make run`" in result.stderr
    assert not (tmp_path / "pg").exists() and not (tmp_path / "redis").exists()


def test_manage_py_check_deploy_is_clean_with_the_documented_values():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=production_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_seed_demo_refuses_production_unless_forced():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="DEBUG=1"):
        call_command("seed_demo")


@pytest.mark.parametrize(("port", "expected"), [("18123", "http://127.0.0.1:18123"), ("", "http://127.0.0.1:8000")])
def test_under_debug_texted_links_point_where_make_run_serves(port, expected):
    """`WEB_PORT=18123 make run` serves on 18123: the chat link a caller is texted must open there, not on 8000."""
    env = production_env(DEBUG="1", WEB_PORT=port)
    del env["PUBLIC_BASE_URL"]
    result = load_settings(env, "from django.conf import settings; print(settings.PUBLIC_BASE_URL)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == expected
