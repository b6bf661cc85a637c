# Two commands on a fresh machine with Python 3.11+, Java 17+ and Maven: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test unit integration faults bench lint clean browser-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/residency demo

# The console's browser test drives Debian's chromium (never a browser build downloaded by Playwright).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "browser-deps: install Debian's chromium (sudo apt-get install chromium)" >&2; exit 1; fi; }

test: $(STAMP) browser-deps
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

# Crash, rebalance, state loss, broker restart, bad input and fail-closed tests (docs/faults.md).
faults: $(STAMP)
	$(BIN)/python -m pytest tests/faults

# Raw aiokafka, naive and tuned Faust, and the screening topology on one broker (docs/benchmarks.md).
# 50,000 events per stage, three rounds of the Faust baselines and the screen stage: ~7 minutes on 2 cores.
bench: $(STAMP)
	$(BIN)/residency bench --events 50000 --json bench.json

clean:
	rm -rf $(VENV) .residency .pytest_cache
