# Edgewave: the two commands people run are `make demo` and `make test`.
# Everything else is what those two are built from.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

UV := $(shell tools/bootstrap.sh)
RUN := $(UV) run --frozen --no-sync
PY_SOURCES := api compiler operator edge-agent gateway proto tests e2e bench tools/*.py
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := python3.11
# The integration tests mostly wait on real processes and clocks, so four pytest workers
# overlap those waits even on 2 cores (measured: 21 min serially, 9 to 11 min with 4).
# Each worker runs whole files (module fixtures are built once) against its own control
# plane. TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 4
PARALLEL := -n $(TEST_WORKERS) --dist loadfile

.PHONY: help install controlplane helm healthcheck kube-score browser toxiproxy generate verify fmt lint typecheck test unit integration chaos demo bench clean

help:
	@echo "make demo   - start the local control plane, operator and edge agents, roll out a model (ARGS=--keep leaves it running)"
	@echo "make test   - install everything, then lint, type-check and run every test"
	@echo "make install | controlplane | helm | healthcheck | kube-score | browser | toxiproxy | generate | verify | fmt | lint | typecheck | unit | integration | chaos | bench"

install: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	$(UV) sync --frozen --all-extras
	@touch $@

# Built once per machine and cached outside the repo (~/.cache/edgewave), keyed by the pinned module.
controlplane:
	@tools/controlplane/build.sh >/dev/null

helm:
	@tools/helm/build.sh >/dev/null

# kstatus + Flux's CEL health check (tests/integration/gitops) and the chart linter.
healthcheck:
	@tools/healthcheck/build.sh >/dev/null

kube-score:
	@tools/kube-score/build.sh >/dev/null

# Debian's chromium, for the dashboard's browser test (apt-get, once per machine).
browser:
	@tools/browser/install.sh >/dev/null

# Latency, resets and cuts between agents and gateways (tests/integration/network).
toxiproxy:
	@tools/toxiproxy/build.sh >/dev/null

generate: install
	$(RUN) python -m tools.generate

verify: install
	$(RUN) python -m tools.generate --check

fmt: install
	$(RUN) ruff format $(PY_SOURCES)
	$(RUN) ruff check --fix $(PY_SOURCES)

lint: install
	$(RUN) ruff format --check $(PY_SOURCES)
	$(RUN) ruff check $(PY_SOURCES)
	$(RUN) lint-imports

typecheck: install
	$(RUN) mypy api compiler operator edge-agent gateway

unit: install
	$(RUN) pytest tests/unit

integration: install controlplane helm healthcheck kube-score browser toxiproxy
	$(RUN) pytest $(PARALLEL) tests/integration e2e

test: install controlplane helm healthcheck kube-score browser toxiproxy verify lint typecheck
	$(RUN) pytest $(PARALLEL)

# The long forms of the network fault tests (tests marked chaos; make test runs the short forms).
chaos: install toxiproxy
	EDGEWAVE_CHAOS=1 $(RUN) pytest tests/integration/network -m chaos

demo: install controlplane
	$(RUN) edgewave demo $(ARGS)

bench: install controlplane
	$(RUN) python bench/run_all.py

clean:
	rm -rf .venv .mypy_cache .ruff_cache
