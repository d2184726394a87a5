# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# `make test` = lint (ruff, format check, mypy) + makemigrations --check + pytest.
.PHONY: run test test-own-databases lint format migrate bootstrap fleet-migrate fleet-worker fleet-scheduler fleet-web bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --noinput

bootstrap: migrate
	$(BIN)/python manage.py bootstrap

run: bootstrap
	$(BIN)/python manage.py run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy jobs gateway datazen dataflux

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	DJANGO_SETTINGS_MODULE=gateway.settings_test $(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest

# Issue 13's attacks and the jobs API again with the gateway's own database on PostgreSQL, then
# on MariaDB (as a fleet runs): `make test` runs them on SQLite. CI runs both (.ci/run);
# pytest-django makes and drops a test_gateway_owndb database on each server.
OWN_DB_TESTS := tests/test_security_*.py tests/test_datazen_jobs.py
OWN_DB_POSTGRES ?= postgresql://$${TEST_POSTGRES_USER:-postgres}@$${TEST_POSTGRES_HOST:-127.0.0.1}:$${TEST_POSTGRES_PORT:-5432}/gateway_owndb
OWN_DB_MARIADB ?= mysql://$${TEST_MARIADB_USER:-root}@$${TEST_MARIADB_HOST:-127.0.0.1}:$${TEST_MARIADB_PORT:-3306}/gateway_owndb
test-own-databases: $(STAMP)
	DATABASE_URL="$(OWN_DB_POSTGRES)" $(BIN)/pytest -q $(OWN_DB_TESTS)
	DATABASE_URL="$(OWN_DB_MARIADB)" $(BIN)/pytest -q $(OWN_DB_TESTS)

# The fleet's processes (DATABASE_URL and CELERY_BROKER_URL set). Their commands live in
# gateway/fleet.py, which docker-compose.yml, docs/operations.md and the fleet tests use too.
fleet-migrate: $(STAMP)
	$(BIN)/python -m gateway.fleet migrate

fleet-web: $(STAMP)
	$(BIN)/python -m gateway.fleet web

fleet-worker: $(STAMP)
	$(BIN)/python -m gateway.fleet worker

fleet-scheduler: $(STAMP)
	$(BIN)/python -m gateway.fleet scheduler

bench: $(STAMP)
	for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
