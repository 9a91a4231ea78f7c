# The two commands: `make run` sets everything up and starts the stack; `make test` runs the test suite.
# Both create the virtualenv, install the requirements and start PostgreSQL, Redis and Mosquitto as needed.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help run test test-tools install assets env services database migrate static seed lint format

help:
	@echo "make run     set up everything, seed the demo plant, start web, worker, beat, Flower, the MQTT bridge and a simulator (Ctrl-C stops)"
	@echo "make test    set up the virtualenv and services, then run the tests (extra pytest args: PYTEST_ARGS=...)"
	@echo "make seed    create what is missing of the demo plant and print the admin login"
	@echo "make lint    ruff check and format check"

run: install assets env services database migrate static
	bin/run

test: install assets services test-tools
	@# pytest exits 5 when it collected no tests: a suite that ran nothing must not pass.
	@status=0; $(PY) -m pytest $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

install: $(VENV)/.requirements-installed

# Reinstalls when a requirements file changes.
$(VENV)/.requirements-installed: requirements.txt requirements-dev.txt
	@# Without Python 3.11 and its venv module, bin/lib/packages.sh installs them (or says how, and stops).
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) 2>/dev/null || { \
		bin/lib/packages.sh make python && python3.11 -m venv $(VENV); }
	$(PY) -m pip install --disable-pip-version-check --quiet -r requirements-dev.txt
	@touch $@

# Front-end libraries (package.json: Chart.js for the dashboard pages), served as static files straight from
# node_modules. Reinstalls when package.json or the lock file changes.
assets: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	@command -v npm >/dev/null || bin/lib/packages.sh make nodejs
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

env: install
	@PYTHON=$(PY) bin/ensure-env

services:
	@bin/ensure-services

test-tools:
	@bin/ensure-test-tools

database: env services
	@$(PY) bin/ensure-database

migrate: database
	$(PY) manage.py migrate --no-input

static: install env assets
	$(PY) manage.py collectstatic --no-input --verbosity 0

seed: migrate
	@mkdir -p .run
	$(PY) manage.py seed_demo --device-keys .run/device-keys.json

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
