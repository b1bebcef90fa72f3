# Every target sets up its environment first (scripts/setup.sh; about a second when nothing changed).
# GPU=1 installs TensorFlow's CUDA libraries too (requirements-gpu.lock; docs/gpu.md), GPU=0 not.
PY := .venv/bin/python
AIRFLOW_PY := .venv-airflow/bin/python

.PHONY: setup setup-airflow setup-browser run lint format test test-fast test-extended test-airflow bench-ingestion bench-pipeline docs-latents lock

setup:
	@bash scripts/setup.sh

setup-airflow:
	@bash scripts/setup.sh airflow

# Headless Chromium for the report's browser test (Debian's package; apt-get, root or sudo).
setup-browser:
	@bash scripts/setup_browser.sh

run: setup
	$(PY) -m pipeline.run_local

# One code style, enforced (configuration: pyproject.toml [tool.ruff]); `make format` applies it.
lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: setup
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

# tests/unit and tests/pipeline on two processes, the Airflow DAG tests beside them in
# .venv-airflow (scripts/run_tests.sh). docs/testing.md.
test: setup setup-airflow setup-browser lint
	@bash scripts/run_tests.sh

test-fast: setup lint
	$(PY) -m pytest -q -n 2 --dist loadfile tests/unit

# tests/extended: the compiled Vertex jobs run whole on a local Cloud Storage, run_local killed
# and resumed and its cached rerun, two workers and two replicas, the multi-process Beam run, the
# mixed-precision pipelines, the paper presets' eager passes, the GPU benchmark's JAX side on the
# CPU: an hour or more on 2 cores.
test-extended: setup
	$(PY) -m pytest -q tests/extended

test-airflow: setup-airflow
	$(AIRFLOW_PY) -m pytest -q tests/pipeline/test_airflow_dag.py

bench-ingestion: setup
	$(PY) -m bench.bench_ingestion

bench-pipeline: setup
	$(PY) -m bench.bench_pipeline

# docs/serving.md's interpolation strip and mixing grid, from the newest model `make run` pushed
# (another: make docs-latents SERVING_DIR=...).
docs-latents: setup
	bash scripts/docs_latents.sh $(if $(SERVING_DIR),--serving_dir $(SERVING_DIR))

lock:
	bash scripts/lock.sh
