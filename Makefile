# The README's commands. Each creates .venv on first use; nothing is installed outside it.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint format bench serve simulate clean

demo: $(VENV)/.installed-demo  ## the main job, offline, on the embedded simulator
	$(BIN)/realtime-trio demo

test: $(VENV)/.installed-dev  ## the whole test suite
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev  ## ruff check and format check, and mypy (strict; pyproject.toml)
	$(BIN)/ruff check src plugins tools tests
	$(BIN)/ruff format --check src plugins tools tests
	$(BIN)/mypy

bench: $(VENV)/.installed-dev  ## the benchmarks (BENCHMARKS.md); figures also in bench-results.json
	$(BIN)/python tools/bench.py --out bench-results.json

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix src plugins tools tests
	$(BIN)/ruff format src plugins tools tests

serve: $(VENV)/.installed-demo  ## the server, with settings from the environment and .env
	$(BIN)/realtime-trio serve

simulate: $(VENV)/.installed-demo  ## the OpenAI simulator alone, on port 8100
	$(BIN)/realtime-trio simulate

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "realtime-trio needs Python 3.11 or newer; set PYTHON=python3.X")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[simulator,mcp]'
	@touch $@

$(VENV)/.installed-dev: pyproject.toml plugins/clock/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e plugins/clock
	@touch $@ $(VENV)/.installed-demo

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
