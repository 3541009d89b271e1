"""docker-compose.yml runs on a fresh host with only ``.env`` filled: the environment contract (each app
service loads the production settings from exactly the environment compose gives it), a one-shot ``migrate``
the others wait for, healthchecks, restart policies, a shared media volume, a non-root image; and
``docker compose config`` validates where the Docker CLI has compose."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.deploy.envcontract import ROOT, example_values, filled_secrets, load_settings, production_env

APP_SERVICES = ["migrate", "web", "worker", "worker-escalation", "beat"]
LONG_RUNNING = ["postgres", "redis", "web", "worker", "worker-escalation", "beat"]
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::([?-])([^}]*))?\}")


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` (raises ValueError with the error)."""

    def sub(m: re.Match) -> str:
        name, op, arg = m.groups()
        if variables.get(name):
            return variables[name]
        if op == "?":
            raise ValueError(arg)
        return arg if op == "-" else ""

    return _VAR.sub(sub, value)


def service_env(service: str, dotenv: dict[str, str]) -> dict[str, str]:
    """What a container of ``service`` sees: its env_file (``.env``) overlaid by its interpolated ``environment``."""
    spec = compose()["services"][service]
    assert spec["env_file"] == [".env"]
    env = dict(dotenv)
    env.update({k: interpolate(str(v), dotenv) for k, v in (spec.get("environment") or {}).items()})
    return env


def test_every_app_service_loads_the_production_settings_from_exactly_its_compose_environment():
    dotenv = {**example_values(), **filled_secrets()}  # the operator filled the empty lines
    for service in ["web", "worker-escalation"]:  # (the others share the same x-app block)
        env = service_env(service, dotenv)
        assert env["DEBUG"] == "0" and env["DATABASE_URL"].endswith("@postgres:5432/callsphere")
        bare = {k: v for k, v in production_env().items() if k in {"PATH", "HOME", "PYTHONPATH", "LANG"}}
        result = load_settings(
            {**bare, **env, "DJANGO_SETTINGS_MODULE": "callsphere.settings"},
            "from django.conf import settings as s; print(s.MEDIA_ROOT, s.DATABASES['default']['HOST'], s.DEBUG)",
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["/app/media", "postgres", "False"]
    assert service_env("worker", dotenv)["CONN_MAX_AGE"] == "60"


def test_an_unfilled_env_example_stops_with_the_one_clear_error():
    with pytest.raises(ValueError, match="set POSTGRES_PASSWORD in .env"):
        service_env("web", example_values())
    env = service_env("web", {**example_values(), "POSTGRES_PASSWORD": "pw"})
    bare = {k: v for k, v in production_env().items() if k in {"PATH", "HOME", "PYTHONPATH", "LANG"}}
    result = load_settings({**bare, **env, "DJANGO_SETTINGS_MODULE": "callsphere.settings"})
    assert result.returncode != 0 and result.stderr.count("Traceback") == 1
    assert "- SECRET_KEY:" in result.stderr and "- FIELD_ENCRYPTION_KEYS:" in result.stderr


def test_migrate_runs_once_and_everything_else_waits_for_it():
    services = compose()["services"]
    assert set(LONG_RUNNING + ["migrate"]) <= set(services)
    migrate = services["migrate"]
    assert migrate["command"][-2:] == ["migrate", "--noinput"] and migrate["restart"] in {"no", "on-failure"}
    assert "migrate" not in migrate["depends_on"]
    for name in ["web", "worker", "worker-escalation", "beat"]:
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
        assert depends["postgres"]["condition"] == depends["redis"]["condition"] == "service_healthy"


def test_restart_policies_healthchecks_and_volumes():
    spec = compose()
    services = spec["services"]
    for name in LONG_RUNNING:
        assert services[name]["restart"] in {"unless-stopped", "always"}, name
    for name in ["postgres", "redis", "web", "worker", "worker-escalation"]:
        assert services[name]["healthcheck"]["test"], name
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    for name in APP_SERVICES:
        assert "media:/app/media" in services[name]["volumes"], name
        assert "prometheus:/app/prometheus" in services[name]["volumes"], name  # one /metrics for all processes
        assert services[name]["environment"]["PROMETHEUS_MULTIPROC_DIR"] == "/app/prometheus"
        assert services[name]["environment"]["MEDIA_ROOT"] == "/app/media"
    assert {"pgdata", "redisdata", "media", "prometheus"} <= set(spec["volumes"])
    assert services["worker"]["command"][services["worker"]["command"].index("-n") + 1] == "worker@%h"
    assert "worker@$$HOSTNAME" in services["worker"]["healthcheck"]["test"][1]
    assert "escalation@$$HOSTNAME" in services["worker-escalation"]["healthcheck"]["test"][1]


def test_the_image_runs_as_a_non_root_user_and_never_bakes_in_secrets():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert lines.index(next(line for line in lines if line.startswith("USER "))) > max(
        i for i, line in enumerate(lines) if line.startswith("RUN ")
    )
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".data/" in ignored


def _compose_cli() -> list[str] | None:
    """``docker compose`` (the v2 plugin) or else ``docker-compose`` (Debian's package), whichever exists."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


@pytest.mark.skipif(
    _compose_cli() is None, reason="no docker compose CLI on this machine (apt-get install docker-compose)"
)
def test_docker_compose_config_validates(tmp_path):
    cli = _compose_cli()
    assert cli is not None
    for name in ["docker-compose.yml", "Dockerfile"]:
        shutil.copy(ROOT / name, tmp_path / name)
    dotenv = {**example_values(), **filled_secrets()}
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in dotenv.items()))
    result = subprocess.run([*cli, "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    assert dotenv["POSTGRES_PASSWORD"] in resolved["web"]["environment"]["DATABASE_URL"]
    assert resolved["web"]["environment"]["SECRET_KEY"] == dotenv["SECRET_KEY"]  # from .env, shared by all
    assert resolved["beat"]["environment"]["SECRET_KEY"] == dotenv["SECRET_KEY"]
    (tmp_path / ".env").write_text("SECRET_KEY=\n")  # an unfilled .env is refused before anything starts
    refused = subprocess.run([*cli, "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "set POSTGRES_PASSWORD in .env" in refused.stderr


def test_the_image_build_step_loads_the_settings_with_only_its_build_values(tmp_path):
    """``collectstatic`` in the Dockerfile runs with build-only values; the settings must load from exactly
    those (a required variable added later must get a build value too, or the image stops building)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    run = next(line for line in text.splitlines() if line.startswith("RUN ") and "collectstatic" in line)
    build_env = dict(re.findall(r"\b([A-Z][A-Z0-9_]+)=(\S+)", run.split("python manage.py collectstatic")[0]))
    assert build_env["DEBUG"] == "0" and "SECRET_KEY" in build_env
    bare = {k: v for k, v in production_env().items() if k in {"PATH", "HOME", "PYTHONPATH", "LANG"}}
    result = load_settings(
        {**bare, **build_env, "CALLSPHERE_DATA_DIR": str(tmp_path)},
        "from django.conf import settings; print(settings.STATIC_ROOT)",
    )
    assert result.returncode == 0, result.stderr
