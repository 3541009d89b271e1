"""On one host, the patient-reply worker yields the CPU: webhooks and pages first, replies after (README)."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_procfile_runs_the_reply_worker_niced_and_the_escalation_worker_and_web_not():
    processes = procfile()

    assert re.search(r"\bnice -n \$\{WORKER_NICE:-10\} celery .* -Q celery\b", processes["worker"])
    for name in ("web", "worker-escalation", "beat"):
        assert "nice" not in processes[name], name


def test_compose_gives_the_reply_worker_fewer_cpu_shares_than_web_and_escalation():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    default = 1024  # Docker's default cpu_shares

    assert services["worker"]["cpu_shares"] < default
    for name in ("web", "worker-escalation"):
        assert services[name].get("cpu_shares", default) >= default, name
