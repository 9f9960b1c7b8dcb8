# Set-up contract: `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: run test bench lint fmt dashboards alerts docs venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	@echo ">> installing fleetpulse[dev] into $(VENV) (first run takes a minute)"
	$(BIN)/python -m pip install --quiet --progress-bar on -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/fleetpulse up

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check agent collector tests bench
	$(BIN)/ruff format --check agent collector tests bench

fmt: $(STAMP)
	$(BIN)/ruff format agent collector tests bench
	$(BIN)/ruff check --fix agent collector tests bench

dashboards: $(STAMP)
	$(BIN)/fleetpulse dashboards generate

alerts: $(STAMP)
	$(BIN)/fleetpulse alerts generate

docs: $(STAMP)
	$(BIN)/fleetpulse catalog --format markdown > docs/METRICS.md

clean:
	rm -rf $(VENV) fleetpulse-data .pytest_cache
