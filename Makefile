# Everyday commands. `make run` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv run worker beat chroma test lint format services system-deps check-model bench-ingest bench-query bench-latency gpu-wheels clean

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

## Benchmarks (see README): figures and ratios against a baseline measured in the same run.
bench-ingest: venv
	$(PY) -m bench.ingest

bench-query: venv
	$(PY) -m bench.query

bench-latency: venv services
	$(PY) -m bench.latency

## Wheels for the GPU check on a device machine (Python 3.12 there): see bench/gpu.sh.
gpu-wheels: venv
	rm -rf .whl && mkdir -p .whl
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
	  $$(grep -E '^(Django|djangorestframework|drf-spectacular|celery|redis|chromadb|open-clip-torch|psycopg|whitenoise|django-stubs-ext)' requirements.txt | sed 's/\[.*\]//') \
	  asgiref sqlparse ftfy wcwidth kombu vine billiard amqp click click-didyoumean click-repl click-plugins prompt-toolkit \
	  pybase64 orjson overrides pypika mmh3 posthog opentelemetry-api opentelemetry-sdk opentelemetry-semantic-conventions \
	  opentelemetry-exporter-otlp-proto-grpc opentelemetry-exporter-otlp-proto-common opentelemetry-proto \
	  inflection uritemplate jsonschema jsonschema-specifications referencing rpds-py pydantic pydantic-core typing-inspection annotated-types
	du -sh .whl

clean:
	rm -rf var test-output .pytest_cache .mypy_cache .ruff_cache
