# The two commands of the README:
#   make run   — set up, import contacts.csv and send the invitation batch to the local dev mail server
#   make test  — set up and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mailer needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/mailer import contacts.csv
	$(BIN)/mailer send invitations --devserver

test: $(STAMP)
	$(BIN)/python -m pytest

# The quick loop while working: everything but the slow tests and the PostgreSQL runs (< 30 s).
# `make test` (and CI) still runs everything.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not postgres" -q

lint: $(STAMP)
	$(BIN)/ruff check mailer tests bench
	$(BIN)/ruff format --check mailer tests bench
	$(BIN)/mypy

# Delivery benchmark (not a test): prints msg/s for mailer, a naive baseline and smtp-source.
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
