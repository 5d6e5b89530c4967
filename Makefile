# The two commands a new user needs: `make demo` and `make test`.
# Both create .venv with the interpreter named by PYTHON (3.11 or newer) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint docs unit browser bench faults clean

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

# The tests spend most of their time waiting on the processes they start and kill, so they
# run in three processes (pytest-xdist) even on two cores, a process that runs out taking
# tests from the others (worksteal); TEST_PROCESSES=0 runs them all in this one.
TEST_PROCESSES ?= 3
unit: $(STAMP) browser
	$(BIN)/pytest -m "not slow" -n $(TEST_PROCESSES) --dist worksteal

# The dashboard's tests drive Debian's Chromium. Install it where it is missing and we may
# (root, apt-get); otherwise those tests skip, saying why (in CI they fail instead).
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium for the dashboard's browser tests"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y --no-install-recommends chromium >/dev/null \
		|| { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null; } \
		|| echo "could not install chromium: the browser tests will skip"; \
	fi

# The documentation site (mkdocs.yml, docs/): --strict fails on a broken link or reference.
# It builds offline into site/ (git-ignored); `mkdocs serve` shows it while you write.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test: lint docs unit

# The long tests (the fault suite's hundreds of kills), then the fault suite's short ones
# (the disk cases), and last the table of what they did (tests/faults/summary.py).
FAULTS_SUMMARY := .faults-summary.jsonl
faults: $(STAMP)
	@rm -f $(FAULTS_SUMMARY)
	@export MIDWAY_FAULTS_SUMMARY=$(abspath $(FAULTS_SUMMARY)); \
	$(BIN)/pytest -m slow; long=$$?; \
	$(BIN)/pytest -q -m "not slow" tests/faults; short=$$?; \
	$(BIN)/python tests/faults/summary.py $(FAULTS_SUMMARY); \
	test $$long -eq 0 -a $$short -eq 0

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) site .midway .pytest_cache .mypy_cache .ruff_cache .faults-summary.jsonl
