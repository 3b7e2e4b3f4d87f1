# kofn: `make run` and `make test` do all set-up themselves on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
TOOLS      := .tools
UV         := $(TOOLS)/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := python3
# uv reads no pip config; index and lock are fixed in pyproject.toml / uv.lock.
export UV_LINK_MODE := copy
PY := .venv/bin/python

.PHONY: help setup run test lint bench clean s3-start s3-stop coding-quick

help:
	@echo "make run    - set up, then run kofn's main job on the embedded default"
	@echo "make test   - set up, then lint and run the test suite"
	@echo "make bench  - full benchmarks (results/)"

$(UV):
	@echo "==> bootstrapping uv $(UV_VERSION) into $(TOOLS)/"
	python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
	    --target $(TOOLS) uv==$(UV_VERSION)

.venv/.synced: $(UV) pyproject.toml uv.lock
	@echo "==> syncing the locked environment into .venv"
	$(UV) sync --locked --quiet
	@touch $@

setup: .venv/.synced

# The main job: a synthetic PennFudan-style dataset, Faster R-CNN (MobileNet-v3-320) with 5
# local workers in mds mode (K=4) on an encrypted LocalStore, one injected straggler.
run: setup
	@mkdir -p runs
	@test -f runs/demo.key || $(PY) -m worker.cli keygen --out runs/demo.key
	$(PY) -m worker.cli train --config configs/demo.toml --key-file runs/demo.key

# The quick coding benchmark (what `make run` showed before the training runtime landed).
coding-quick: setup
	$(PY) -m benchmarks.coding --quick

lint: setup
	$(UV) run --locked --no-sync ruff check .

test: setup lint
	$(PY) -m pytest -q

bench: setup
	$(PY) -m benchmarks.coding
	$(PY) -m benchmarks.encryption
	$(PY) -m benchmarks.offload
	$(PY) -m benchmarks.exchange

s3-start:
	scripts/s3-server start

s3-stop:
	scripts/s3-server stop

clean:
	rm -rf .venv $(TOOLS) .pytest_cache .ruff_cache
