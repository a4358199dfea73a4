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

.PHONY: demo test test-serial lint install bench clean

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

# Two pytest processes side by side (CI has 2 cores, and most system tests wait on servers): the
# system tests (one shared stack) in one, everything else in the other; the system run's output
# follows the other's. `make test-serial` runs them one after the other.
test: install lint
	@mkdir -p .test-logs
	@PREFECT_HOME="$(PREFECT_HOME)-system" $(BIN)/pytest -q --durations=15 -m system > .test-logs/system.log 2>&1 & system=$$!; \
	$(BIN)/pytest -q --durations=25 -m "not system"; rest=$$?; \
	wait $$system; status=$$?; echo "--- system tests"; cat .test-logs/system.log; \
	exit $$(( rest != 0 || status != 0 ))

test-serial: install lint
	$(BIN)/pytest -q

bench: install
	$(BIN)/python -m bench.training

clean:
	rm -rf artifacts mlflow.db .prefect .prefect-system great_expectations/uncommitted
