# Two commands do all the set-up on a fresh machine:  `make serve`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: serve test lint check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## Start the server on the embedded SQLite default (webmacs.db here) with the seeded admin.
serve: $(STAMP)
	$(BIN)/webmacs serve

## Run the whole test suite (SQLite, and PostgreSQL at 127.0.0.1:5432 when reachable).
test: $(STAMP)
	$(BIN)/python -m pytest

## ruff and mypy.
lint: $(STAMP)
	$(BIN)/ruff check webmacs tests bench
	$(BIN)/mypy webmacs

check: lint test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
