# Every target creates .venv from PyPI when it is missing, so a fresh clone needs only python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/dispatcher.toml

.PHONY: install run test check lint bench clean redis-server

$(BIN)/dispatcher: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/dispatcher

run: install
	$(BIN)/dispatcher serve --config $(CONFIG)

# The cluster tests run a real redis-server: installed from Debian when missing (needs root,
# as CI runs; elsewhere install the redis-server package yourself).
redis-server:
	@command -v redis-server >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server)

test: install redis-server
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check config actors dispatcher tests bench
	$(BIN)/ruff format --check config actors dispatcher tests bench

check: lint
	$(BIN)/mypy

bench: install redis-server
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info
