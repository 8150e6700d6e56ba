# The two commands: `make run` (set up, build, serve with the simulated feed) and
# `make test` (set up, build, run every test against both cores). Everything a fresh machine
# needs is installed from here: a virtualenv in .venv, pinned PyPI packages, the Rust extension.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMPS := .make
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: run test build setup test-python test-rust bench bench-table clean

$(PY):
	python3 -m venv $(VENV)

$(STAMPS)/deps: requirements.txt | $(PY)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@mkdir -p $(STAMPS) && touch $@

setup: $(STAMPS)/deps

# Builds the extension in release mode and installs the package (editable: python/ is live).
build: setup
	maturin develop --release --quiet

run: build
	tickfan serve

test: build
	cargo test --quiet -p tickfan-core
	$(PY) -m pytest -q --benchmark-disable

# Micro-benchmarks: both cores and a naive baseline side by side, one group per operation.
bench: build
	$(PY) -m pytest benches/micro -q --benchmark-only --benchmark-columns=min,median,mean,rounds \
		--benchmark-sort=name --benchmark-json=benches/results/micro.json
	$(PY) benches/micro/table.py benches/results/micro.json

clean:
	rm -rf $(VENV) $(STAMPS) target python/tickfan/_core*.so

# Load benchmark (benches/load/README.md): every scenario against tickfan (both cores) and the
# naive and picows peers; writes benches/results/load-<stamp>.{json,md,png}. Takes ~10 minutes
# and wants a quiet machine. Extra flags: make bench-load LOAD_ARGS="--scenarios S1 --scale 0.1"
.PHONY: bench-load
bench-load: build
	$(PY) benches/load/run.py $(LOAD_ARGS)

# Benchmarks in CI (README, "Benchmarks in CI"): the micro-benchmarks and a short load run in a
# fixed configuration, each ratio against its floor in benches/floors.toml; writes
# benches/results/ci/. Fails when a ratio is below its floor, after reporting every ratio.
.PHONY: bench-ci bench-compare
bench-ci: build
	$(PY) benches/ci/run.py

# This checkout's benches/results/ci/ beside the last committed one: medians and ratios.
bench-compare: setup
	$(PY) benches/ci/compare.py $(COMPARE_ARGS)
