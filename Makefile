# Two commands: `make run` and `make test`. Both need only Python 3.11; everything else is installed here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install lock bench clean-data

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: install
	@test -f .env || printf 'DEBUG=1\n' > .env   # local development settings for every manage.py command
	DEBUG=1 $(BIN)/python manage.py migrate --noinput
	DEBUG=1 $(BIN)/python manage.py seed_demo
	DEBUG=1 $(BIN)/python -m callsphere.run

test: install lint
	sh scripts/ensure-chromium.sh
	$(BIN)/python -m pytest -q

# Static checks, run by `make test` (and so by CI): format, lint, types, import direction (pyproject.toml).
lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy callsphere identity conversations providers channels_app enrichment escalation crm observability
	DJANGO_SETTINGS_MODULE=callsphere.settings_test $(BIN)/lint-imports

bench: install
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# Regenerate the pinned versions after changing pyproject.toml.
lock: $(BIN)/python
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

clean-data:
	$(BIN)/python -c "from pathlib import Path; from callsphere import embedded as e; e.stop_redis(Path('.data')); e.stop_postgres(Path('.data'))"
	rm -rf .data
