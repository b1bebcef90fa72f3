# Every target sets up .venv first (scripts/setup.sh; about a second when nothing changed).
PY := .venv/bin/python

.PHONY: setup run test test-fast bench-ingestion lock

setup:
	@bash scripts/setup.sh

run: setup
	$(PY) pipeline/run_local.py

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench-ingestion: setup
	$(PY) bench/bench_ingestion.py

lock:
	bash scripts/lock.sh
