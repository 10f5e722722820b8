# CML Fleet: `make demo` runs the product, `make test` runs every test.
# Both set up what they need on a fresh machine first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SPA := backend/static/index.html
FRONTEND_SOURCES := $(shell find frontend/src frontend/index.html frontend/vite.config.js -type f 2>/dev/null)

.PHONY: demo test setup build lint test-python test-python-wire test-frontend system-packages bench clean

demo: setup build
	$(BIN)/cmlfleet demo

test: setup build system-packages lint test-frontend test-python test-python-wire

setup: $(STAMP) frontend/node_modules/.installed

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[demo,test]'
	rm -f $(VENV)/.installed-*
	touch $@

frontend/node_modules/.installed: frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund
	touch $@

build: $(SPA)

$(SPA): frontend/node_modules/.installed $(FRONTEND_SOURCES)
	cd frontend && npm run build

# Redis for the tests (started by the test set-up when none answers) and Debian's
# Chromium for the browser tests; installed only where missing.
system-packages:
	@command -v redis-server >/dev/null || (apt-get update && apt-get install -y redis-server)
	@test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)

lint: $(STAMP) frontend/node_modules/.installed
	$(BIN)/ruff check backend tests bench
	$(BIN)/ruff format --check backend tests bench
	$(BIN)/mypy
	cd frontend && npm run lint

test-frontend: frontend/node_modules/.installed
	cd frontend && npm test

test-python: $(STAMP) $(SPA)
	$(BIN)/pytest

# The suite again with storage reached through pymongo, over the wire-protocol
# stand-in, as production reaches MongoDB (browser tests and real-server checks left out).
test-python-wire: $(STAMP) $(SPA)
	TEST_MONGODB_URL=wire $(BIN)/pytest -q -m "not real_server and not browser"

bench: setup
	$(BIN)/python bench/aws_calls.py
	$(BIN)/python bench/refresh.py
	$(BIN)/python bench/stream.py
	$(BIN)/python bench/frontend.py

clean:
	rm -rf $(VENV) frontend/node_modules backend/static
