# Everyday commands. `make run` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv run worker beat chroma test lint format services system-deps check-model bench-ingest clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

## The embedded single-process default: SQLite, embedded Chroma, tasks in-process.
run: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py check_model
	$(PY) manage.py bootstrap_demo --url http://$(HOST):$(PORT)/
	$(PY) manage.py runserver $(HOST):$(PORT)

## The full local stack's parts, each in its own terminal (see README): needs REDIS_URL, DATABASE_URL, CHROMA_URL.
chroma: venv
	$(VENV)/bin/chroma run --path $${CHROMA_DATA:-var/chroma-server} --host 127.0.0.1 --port $${CHROMA_PORT:-8001}

worker: venv
	$(VENV)/bin/celery -A config worker --pool=solo -Q ingestion,interactive --loglevel=INFO

beat: venv
	$(VENV)/bin/celery -A config beat --loglevel=INFO --schedule var/celerybeat-schedule

check-model: venv
	$(PY) manage.py check_model

services:
	bash .ci/services

system-deps:
	@command -v chromium >/dev/null && command -v docker-compose >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium docker-compose; }

## The whole test suite, against real PostgreSQL, Redis, a Celery worker, Chroma and chromium.
test: venv services system-deps
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf var test-output .pytest_cache .mypy_cache .ruff_cache
