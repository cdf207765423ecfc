# The two commands that work on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench bench-compare bench-compare-tools bench-compaction proto manifests lint clean prometheus-tools kafka-tools sim sim-broker \
	chaos chaos-tools \
	sim-broker-selftest

$(STAMP): pyproject.toml setup.py odradek/records/_fast.pyx
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# Quiet: a fresh make run or make test should not open with setuptools' warnings.
	PYTHONWARNINGS=ignore $(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

tests/node/node_modules: tests/node/package.json
	cd tests/node && npm install --no-audit --no-fund --silent
	touch tests/node/node_modules

run: $(STAMP)
	$(BIN)/odradek dev --brokers 3

test: $(STAMP) tests/node/node_modules prometheus-tools chaos-tools kafka-tools
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=25

# promtool and prometheus (Debian package prometheus) for the metrics tests; installed when
# running as root and absent. Without network this warns and the tests say what is missing.
prometheus-tools:
	@if [ "$$(id -u)" = 0 ] && ! command -v promtool >/dev/null 2>&1; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq prometheus >/dev/null 2>&1 \
	  || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq prometheus >/dev/null 2>&1; } \
	  || echo "warning: could not install prometheus (no network?)" >&2; \
	fi

# kcat (Debian package kcat) for the Kafka listener's tests (tests/kafka); installed when
# running as root and absent, as prometheus-tools.
kafka-tools:
	@if [ "$$(id -u)" = 0 ] && ! command -v kcat >/dev/null 2>&1; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq kcat >/dev/null 2>&1 \
	  || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq kcat >/dev/null 2>&1; } \
	  || echo "warning: could not install kcat (no network?)" >&2; \
	fi

# The JetStream comparison needs nats-server (Debian, installed when root) and nats-py.
bench: $(STAMP)
	@if [ "$$(id -u)" = 0 ] && ! command -v nats-server >/dev/null 2>&1; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null 2>&1 \
	  || echo "warning: could not install nats-server: no JetStream comparison" >&2; \
	fi
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/run.py

# Odradek vs NATS JetStream in one run, Python and native C clients of each (bench/compare.py;
# docs/benchmarks.md). Writes bench/results/<date>-<host>.md/.json/.png. ARGS=--quick for a
# run of a few minutes, e.g. `make bench-compare ARGS="--quick"`.
bench-compare: $(STAMP) bench-compare-tools
	@$(BIN)/python -c 'import nats, matplotlib, confluent_kafka' 2>/dev/null \
	  || $(BIN)/pip install -q -e '.[bench]' \
	  || echo "warning: could not install the bench extra: its parts are skipped" >&2
	$(BIN)/python bench/compare.py $(ARGS)

# nats-server, and libnats (C client, headers) with gcc for bench/nats_bench.c: installed
# when running as root and absent; each missing piece is a warning and its part is skipped.
bench-compare-tools:
	@if [ "$$(id -u)" = 0 ]; then \
	  export DEBIAN_FRONTEND=noninteractive; missing=""; \
	  command -v nats-server >/dev/null 2>&1 || missing="$$missing nats-server"; \
	  [ -f /usr/include/nats/nats.h ] || missing="$$missing libnats-dev"; \
	  command -v gcc >/dev/null 2>&1 || missing="$$missing gcc"; \
	  if [ -n "$$missing" ]; then \
	    apt-get install -y -qq $$missing >/dev/null 2>&1 \
	    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $$missing >/dev/null 2>&1; } \
	    || echo "warning: could not install$$missing: those parts are skipped" >&2; \
	  fi; \
	fi

# What a compaction on one topic costs the appends of another (inline vs worker thread).
bench-compaction: $(STAMP)
	$(BIN)/python bench/compaction_stall.py

proto: $(STAMP)
	$(BIN)/python scripts/gen_proto.py

# deploy/crds from odradek/operator/crds.py, then deploy/odradek.yaml and
# deploy/kustomization.yaml from the chart's defaults (after a
# change to helm/odradek; tests/helm/test_deploy.py fails while they are stale).
manifests: $(STAMP)
	$(BIN)/python scripts/gen_crds.py
	$(BIN)/python scripts/gen_manifests.py

lint: $(STAMP)
	$(BIN)/ruff check odradek tests bench scripts
	$(BIN)/mypy odradek

# Deterministic simulation: SEEDS seeds over in-memory storage, then REAL_SEEDS seeds over
# real partition logs with crash damage to unsynced writes (about 100 seeds/min).
SEEDS ?= 2000
REAL_SEEDS ?= 200
sim: $(STAMP)
	$(BIN)/python -m tests.sim.run --seeds $(SEEDS)
	$(BIN)/python -m tests.sim.run --seeds $(REAL_SEEDS) --steps 1000 --real-storage
	$(BIN)/python -m tests.sim_broker.run --seeds $(BROKER_SEEDS) --known-bugs $(KNOWN_BUGS)

# Whole-broker simulation (tests/sim_broker): SEEDS seeds, 200 unless SEEDS is given (about
# 75 seeds/min); any violation fails. sim-broker-selftest puts each fixed bug back
# (odradek.broker.regressions) and shows that the simulation finds it.
BROKER_SEEDS = $(if $(filter command line environment,$(origin SEEDS)),$(SEEDS),200)
KNOWN_BUGS ?= fail
sim-broker: $(STAMP)
	$(BIN)/python -m tests.sim_broker.run --seeds $(BROKER_SEEDS) --known-bugs $(KNOWN_BUGS)

sim-broker-selftest: $(STAMP)
	$(BIN)/python -m tests.sim_broker.selftest

clean:
	rm -rf $(VENV) tests/node/node_modules .dev-data

# Real-process chaos (tests/chaos; root: network namespaces, nftables, tmpfs, an fsync
# shim built with gcc): DURATION seconds of random faults per run, RUNS seeds from SEED.
DURATION ?= 600
RUNS ?= 1
SEED ?= $(shell date +%s)
chaos: $(STAMP) chaos-tools
	$(BIN)/python -m tests.chaos.run --seed $(SEED) --duration $(DURATION) --runs $(RUNS)

chaos-tools:
	@if [ "$$(id -u)" = 0 ] && ! command -v nft >/dev/null 2>&1; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables >/dev/null 2>&1 \
	  || echo "warning: could not install nftables: the chaos tests will skip" >&2; \
	fi
