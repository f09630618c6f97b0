# The two commands of the README. Everything they need is installed here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test unit lint bench clean chromium

CHROMIUM := /usr/bin/chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,speed]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/evcharging demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy common demo registry central cp_engine cp_monitor driver weather web_ui ocpp_sim bench

# Debian's Chromium for tests/browser (skipped, with the reason, where it cannot be had).
chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| echo "chromium: apt-get failed; browser tests will be skipped"; \
	else echo "chromium: not installed (needs root and apt-get); browser tests will be skipped"; fi

test: $(STAMP) lint chromium
	$(BIN)/python -m pytest

# The unit tier alone, in seconds: no processes, no sockets to services, no PostgreSQL.
unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q

# Every benchmark (about 20 minutes); results in bench/results/, figures in docs/performance.md.
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
