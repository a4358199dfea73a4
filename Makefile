# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 180
export PREFECT_HOME ?= $(CURDIR)/.prefect
export GX_ANALYTICS_ENABLED ?= false
export MLFLOW_ENABLE_TELEMETRY ?= false
export DO_NOT_TRACK ?= true

.PHONY: demo test lint install bench clean

install: $(VENV)/.installed

# The lock pins every package that was tested together; the project itself installs without deps.
$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

demo: install
	$(BIN)/mlops train --config configs/bikeshare.yaml

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Two workers (CI has 2 cores): the system tests run as one group on one of them (tests/conftest.py).
PYTEST_WORKERS ?= 2
test: install lint
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup

bench: install
	$(BIN)/python -m bench.training

clean:
	rm -rf artifacts mlflow.db .prefect great_expectations/uncommitted
