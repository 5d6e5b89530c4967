# The two commands a new user needs: `make demo` and `make test`.
# Both create .venv with the interpreter named by PYTHON (3.11 or newer) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit bench faults clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("midway needs Python 3.11 or newer; run: make PYTHON=python3.11 ...") if sys.version_info < (3, 11) else None'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

demo: $(STAMP)
	$(BIN)/midway demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m "not slow"

test: lint unit

# The long fault suite (hundreds of kills); its summary table is printed last.
FAULTS_SUMMARY := .faults-summary.jsonl
faults: $(STAMP)
	@rm -f $(FAULTS_SUMMARY)
	MIDWAY_FAULTS_SUMMARY=$(abspath $(FAULTS_SUMMARY)) $(BIN)/pytest -m slow; status=$$?; \
	$(BIN)/python tests/faults/summary.py $(FAULTS_SUMMARY); exit $$status

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .midway .pytest_cache .mypy_cache .ruff_cache .faults-summary.jsonl
