# Two commands matter: `make run` and `make test`. Everything else is a step they use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KAFKA_PORT ?= 9092
export KAFKA_PORT
export ENGAGEMENT_KAFKA_BOOTSTRAP_SERVERS ?= 127.0.0.1:$(KAFKA_PORT)

.PHONY: run cluster test install runtime broker broker-stop lint typecheck unit integration chart schemas bench clean

# Two install stamps: `make run` needs the service only; tests and benches need the rest.
# Both build the compiled packed-account codec (native/: Rust, PyO3, built by maturin,
# which pip fetches; about a minute the first time, seconds after a change).
NATIVE := native/pyproject.toml native/Cargo.toml native/Cargo.lock $(wildcard native/src/*.rs) \
          native/engagement_native.pyi

$(VENV)/.runtime: pyproject.toml $(NATIVE)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e . ./native
	touch $@

$(VENV)/.dev: pyproject.toml $(NATIVE)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' ./native
	touch $(VENV)/.runtime $@

runtime: $(VENV)/.runtime
install: $(VENV)/.dev

broker: runtime
	@if $(BIN)/python scripts/broker_answers.py 2>/dev/null; then \
	  echo "kafka: $$ENGAGEMENT_KAFKA_BOOTSTRAP_SERVERS answers; using it"; \
	else scripts/kafka.sh start; fi

broker-stop:
	scripts/kafka.sh stop

## make run: local broker (if none answers), topics, the service and demo traffic.
run: runtime broker
	$(BIN)/python scripts/create_topics.py --partitions 6
	@echo ""
	@echo "  service:  http://localhost:$${ENGAGEMENT_HTTP_PORT:-8080}/docs"
	@echo "  a score:  curl -s localhost:$${ENGAGEMENT_HTTP_PORT:-8080}/accounts/authentic-micro-0000/score"
	@echo "  metrics:  curl -s localhost:$${ENGAGEMENT_HTTP_PORT:-8080}/metrics"
	@echo "  (demo accounts are named <kind>-<number>, e.g. pod-pumped-0003; Ctrl-C stops)"
	@echo ""
	@trap 'kill $$demo 2>/dev/null' EXIT; \
	  $(BIN)/python -m service.demo --accounts 300 & demo=$$!; \
	  ENGAGEMENT_LOG_FORMAT=$${ENGAGEMENT_LOG_FORMAT:-plain} $(BIN)/python -m service

## make cluster: three instances in one consumer group (ports 8081-8083), demo traffic.
## Any instance answers for any account; kill one and watch /cluster move its partitions.
cluster: runtime broker
	$(BIN)/python scripts/create_topics.py --partitions 6
	@echo ""
	@echo "  instances: http://localhost:8081  http://localhost:8082  http://localhost:8083"
	@echo "  who owns what:  curl -s localhost:8081/cluster"
	@echo "  a score via any instance:  curl -si localhost:8082/accounts/authentic-micro-0000/score"
	@echo ""
	@trap 'kill $$(jobs -p) 2>/dev/null' EXIT; \
	  for i in 1 2 3; do \
	    ENGAGEMENT_HTTP_PORT=808$$i ENGAGEMENT_ADVERTISED_URL=http://127.0.0.1:808$$i \
	    ENGAGEMENT_SNAPSHOT_DIR=.snapshots/instance-$$i \
	    ENGAGEMENT_LOG_FORMAT=$${ENGAGEMENT_LOG_FORMAT:-plain} $(BIN)/python -m service & \
	  done; \
	  $(BIN)/python -m service.demo --accounts 300 & \
	  wait

## make test: everything, from a fresh clone: lint, types, unit, integration, chart.
test: install broker lint typecheck
	scripts/install_browser.sh
	$(BIN)/python -m pytest -q -p no:cacheprovider
	$(MAKE) --no-print-directory chart

lint: install
	$(BIN)/ruff check service scripts tests $(wildcard bench)

typecheck: install
	$(BIN)/mypy

schemas:
	$(BIN)/python scripts/export_schemas.py

unit: install
	$(BIN)/python -m pytest -q tests/unit

integration: install broker
	$(BIN)/python -m pytest -q tests/integration

chart:
	scripts/check_chart.sh

## make bench: the full benchmarks (several minutes); results go to docs/benchmarks.md.
bench: install broker
	$(BIN)/python -m bench.ingest --events 1000000
	$(BIN)/python -m bench.queries
	$(BIN)/python -m bench.memory
	$(BIN)/python -m bench.snapshot
	$(BIN)/python -m bench.expiry
	$(BIN)/python -m bench.backfill --events 1000000
	$(BIN)/python -m bench.dedupe
	$(BIN)/python -m bench.decode
	$(BIN)/python -m bench.stalls
	$(BIN)/python -m bench.discovery
	$(BIN)/python -m bench.scoring
	$(BIN)/python -m bench.cluster

clean:
	rm -rf $(VENV) .snapshots .tools
