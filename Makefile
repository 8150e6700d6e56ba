# The two commands: `make run` (set up, build, serve with the simulated feed) and
# `make test` (set up, build, run every test against both cores). Everything a fresh machine
# needs is installed from here: a virtualenv in .venv, pinned PyPI packages, the Rust extension.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMPS := .make
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: run test build setup test-python test-rust bench bench-table clean redis-server chromium

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

# The Redis tests start a private redis-server (tests/redis_server.py): install Debian's when
# missing (as root), otherwise say what to install. Without it the Redis tests fail (never skip).
redis-server:
	@if command -v redis-server >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's redis-server (the Redis tests start a private one)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	else \
		echo "redis-server is missing: install Redis >= 7 (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis); the Redis tests cannot run without it" >&2; \
		exit 1; \
	fi

# The browser tests drive Debian's chromium (Playwright from PyPI, never a downloaded browser) and
# draw the chart in DejaVu Sans: installed with apt when missing (as root; else say what to run).
CHROMIUM := /usr/bin/chromium
FONT := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
chromium:
	@if [ ! -x $(CHROMIUM) ] || [ ! -e $(FONT) ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; \
		else \
			echo "make: the browser tests need Debian's chromium and fonts-dejavu-core; run: sudo apt-get install chromium fonts-dejavu-core" >&2; \
			exit 1; \
		fi; \
	fi

# --tb=native: CPython 3.11's AST constructor can raise "recursion depth mismatch" (gh-106905)
# while pytest renders a failure with its own traceback format, which hides the failure behind
# an INTERNALERROR; native tracebacks parse no source and keep the assertion's message.
test: build redis-server chromium
	cargo test --quiet -p tickfan-core
	cargo test --quiet --release -p tickfan-python --lib
	$(PY) -m pytest -q --benchmark-disable --tb=native

# Micro-benchmarks: both cores and a naive baseline side by side, one group per operation.
bench: build
	$(PY) -m pytest benches/micro -q --benchmark-only --benchmark-columns=min,median,mean,rounds \
		--benchmark-sort=name --benchmark-json=benches/results/micro.json
	$(PY) benches/micro/table.py benches/results/micro.json

clean:
	rm -rf $(VENV) $(STAMPS) target python/tickfan/_core*.so

# Load benchmark (benches/load/README.md): every scenario (S1-S5) against tickfan (Granian with
# both cores, and the fast lane) and the peers (naive Litestar, picows, the Rust reference on
# tokio-tungstenite and on fastwebsockets, which run.py builds with cargo into
# target/bench-peers/); writes benches/results/load-<stamp>.{json,md,png}. Takes ~21 minutes and
# wants a quiet machine. Extra flags: make bench-load LOAD_ARGS="--scenarios S1 --scale 0.1"
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
