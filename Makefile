# The README's two commands: `make run` and `make test`. Both create .venv/ on first use.
PYTHON ?= python3.11
VENV   := .venv
STAMP  := $(VENV)/.installed

.PHONY: run test setup system-deps lint bench-ingest clean

run: $(STAMP)
	$(VENV)/bin/boneage serve

# Fast first: unit tests (no servers), then real peers (dcmtk, Redis, PostgreSQL), then Orthanc.
test: $(STAMP) system-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)
	$(VENV)/bin/pytest tests/integration tests/e2e $(PYTEST_ARGS)

setup: $(STAMP)

# Reinstall whenever the pinned dependency list changes.
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) || { bash scripts/install-python-venv.sh && $(PYTHON) -m venv $(VENV); }
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Debian peers the tests talk to (dcmtk, dicom3tools, orthanc, redis, postgresql); a no-op when present.
system-deps:
	bash scripts/provision-test-peers.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench-ingest: $(STAMP) system-deps
	$(VENV)/bin/python bench/ingest.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
