# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# A DATABASE_URL of the user's own (environment or `make run DATABASE_URL=...`) replaces
# the embedded PostgreSQL of `make run`; the default below is only for `make test` and co.
USER_DATABASE_URL := $(if $(filter environment command line,$(origin DATABASE_URL)),$(DATABASE_URL),)
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/wallet
# Where `make run` serves: `make run PORT=8001` or `HOST=0.0.0.0 PORT=9000 make run`.
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format migrate serve bench clean worker beat audit drills

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python requirements.txt requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

## make run: set up and serve the API on http://$(HOST):$(PORT) on an embedded PostgreSQL
## (data in .devdata/postgres; DATABASE_URL=... uses that database instead). Ctrl-C stops both.
run: $(VENV)/.installed
	DATABASE_URL="$(USER_DATABASE_URL)" $(BIN)/python scripts/devserver.py $(HOST) $(PORT)

## make test: set up and run the whole suite against PostgreSQL (DATABASE_URL)
test: $(VENV)/.installed
	scripts/ensure_postgres.sh
	scripts/ensure_redis.sh
	scripts/ensure_browser.sh
	$(BIN)/python scripts/ensure_database.py
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	scripts/fail_on_stderr.sh $(BIN)/bandit -c bandit.yaml -r . -q
	$(BIN)/lint-imports
	$(BIN)/python -W error::RuntimeWarning manage.py makemigrations --check --dry-run --settings=wallet_project.settings.test
	$(BIN)/pytest

## make migrate: apply migrations to DATABASE_URL, as the deploy step does (deploy/migrate.sh)
migrate: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" sh deploy/migrate.sh

## make serve: the production-like server: gunicorn (gunicorn.conf.py) with production
## settings against DATABASE_URL on http://127.0.0.1:8000. Needs DJANGO_SECRET_KEY and
## JWT_SIGNING_KEY in the environment (see .env.example); run `make migrate` first.
serve: $(VENV)/.installed
	@test -n "$$DJANGO_SECRET_KEY" && test -n "$$JWT_SIGNING_KEY" || \
	  { echo "make serve: set DJANGO_SECRET_KEY and JWT_SIGNING_KEY (see .env.example)" >&2; exit 2; }
	DJANGO_SETTINGS_MODULE=wallet_project.settings.production $(BIN)/python manage.py collectstatic --noinput -v 0
	DJANGO_SETTINGS_MODULE=wallet_project.settings.production \
	DJANGO_ALLOWED_HOSTS="$${DJANGO_ALLOWED_HOSTS:-localhost,127.0.0.1}" \
	DJANGO_SECURE_SSL_REDIRECT="$${DJANGO_SECURE_SSL_REDIRECT:-false}" \
	GUNICORN_BIND="$${GUNICORN_BIND:-127.0.0.1:8000}" \
	PROMETHEUS_MULTIPROC_DIR="$${PROMETHEUS_MULTIPROC_DIR:-$$(mktemp -d)}" \
	$(BIN)/gunicorn -c gunicorn.conf.py wallet_project.wsgi

## make worker / make beat: the Celery worker and scheduler (need Redis at REDIS_URL)
worker: $(VENV)/.installed
	$(BIN)/celery -A wallet_project worker -l info --concurrency=2 -Q $${CELERY_QUEUE:-wallet}

beat: $(VENV)/.installed
	$(BIN)/celery -A wallet_project beat -l info --schedule=$${CELERY_BEAT_SCHEDULE_FILE:-/tmp/wallet-celerybeat-schedule}

## make drills: operational drills (PITR, failover, Patroni HA) on throwaway PostgreSQL clusters
## on spare ports; installs patroni, etcd and pgbouncer (Debian packages) when missing
drills: $(VENV)/.installed
	scripts/ensure_postgres.sh
	scripts/ensure_redis.sh
	scripts/ensure_ha_tools.sh
	$(BIN)/pytest -m drill -p no:cacheprovider

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	scripts/fail_on_stderr.sh $(BIN)/bandit -c bandit.yaml -r . -q
	$(BIN)/lint-imports

## make audit: known vulnerabilities in the pinned requirements (needs network; CI does not run it)
audit: $(VENV)/.installed
	$(BIN)/pip-audit -r requirements.txt --progress-spinner off

format: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

$(VENV)/.bench-installed: $(VENV)/.installed requirements-bench.txt
	$(BIN)/pip install --quiet -r requirements-bench.txt
	touch $@

## make bench: the benchmark suite (its own database and gunicorn; about 6 minutes, see
## docs/performance.md). BENCH_ARGS=--quick for a 2-minute run.
bench: $(VENV)/.bench-installed
	scripts/ensure_postgres.sh
	scripts/ensure_redis.sh
	scripts/ensure_ha_tools.sh
	$(BIN)/python bench/suite.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
