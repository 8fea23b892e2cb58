# Everyday commands. `make run` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv run worker beat chroma test test-fast lint format services system-deps check-model bench-ingest bench-api-ingest bench-query bench-latency bench-load gpu-wheels clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

## The embedded single-process default: SQLite, embedded Chroma, images embedded by a thread beside
## the web server. Settings given here (CLIP_PRETRAINED=..., DATA_DIR=...) are remembered in .env for
## every command beside it.
run: venv
	$(PY) -m config.envfile
	$(PY) manage.py migrate --noinput
	$(PY) manage.py check_model
	$(PY) manage.py bootstrap_demo --url http://$(HOST):$(PORT)/
	$(PY) manage.py runserver --noreload $(HOST):$(PORT)

## The full local stack's parts, each in its own terminal (see README): needs REDIS_URL, DATABASE_URL, CHROMA_URL.
chroma: venv
	CHROMA_PERSIST_PATH=$${CHROMA_DATA:-var/chroma-server} CHROMA_LISTEN_ADDRESS=127.0.0.1 CHROMA_PORT=$${CHROMA_PORT:-8001} \
	  $(VENV)/bin/chroma run config/chroma.yaml

worker: venv
	$(VENV)/bin/celery -A config worker --pool=solo --loglevel=INFO

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

## The fast tier, for every edit: what needs no server process, browser or benchmark (`fast_tier` in pyproject.toml).
test-fast: venv services system-deps
	$(PY) -m pytest --fast -n 2

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

## Uploads through the REST API, one file per request from 1 and 4 clients, against Chroma's pipeline (about 15 minutes).
bench-api-ingest: venv services
	$(PY) -m bench.api_ingest

bench-query: venv
	$(PY) -m bench.query

bench-latency: venv services
	$(PY) -m bench.latency

## Wheels for the GPU check on a device machine (Python 3.12 there): see bench/gpu.sh.
## A bounded load test on loopback (a few minutes): zero server errors, lost images, cross-tenant results.
bench-load: venv services
	$(PY) -m bench.load --duration 120

gpu-wheels:
	rm -rf .whl && mkdir -p .whl
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d .whl -r bench/gpu-requirements.txt
	du -sh .whl

clean:
	rm -rf var test-output .pytest_cache .mypy_cache .ruff_cache
