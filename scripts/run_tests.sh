#!/usr/bin/env bash
# make test's tests: tests/unit and tests/pipeline on two pytest processes (pytest-xdist, whole
# modules to a process, so that a module's fixtures are made once; the pipeline modules, the
# longest, first) and, beside them, the Airflow DAG tests in .venv-airflow (which they need and
# .venv must not have), whose output follows.
set -uo pipefail
cd "$(dirname "$0")/.."
airflow_log=$(mktemp)
trap 'rm -f "$airflow_log"' EXIT
make --no-print-directory test-airflow >"$airflow_log" 2>&1 &
airflow=$!
.venv/bin/python -m pytest -q -n 2 --dist loadfile --durations=25 tests/pipeline tests/unit
status=$?
wait "$airflow" || status=1
echo "--- tests/pipeline/test_airflow_dag.py, in .venv-airflow:"
cat "$airflow_log"
exit "$status"
