"""Code run under another Keras backend, in a fresh process (the backend is fixed at import)."""

import json
import os
import subprocess
import sys

from pipeline import configs


def run_json_under_backend(code: str, backend: str) -> dict:
    """Runs Python `code` in a fresh process under KERAS_BACKEND=backend (the backend is fixed at
    import) from the repository root, and returns the JSON object its last output line prints."""
    repo = configs.PROJECT_ROOT
    env = {**os.environ, 'KERAS_BACKEND': backend, 'TF_CPP_MIN_LOG_LEVEL': '3', 'PYTHONPATH': repo}
    run = subprocess.run(
        [sys.executable, '-c', code], env=env, cwd=repo, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def facts_under(backend: str, facts) -> dict:
    """facts(), a module-level function of a test module returning a JSON object: called here
    under TensorFlow (the test process's backend), in a fresh process under another backend."""
    if backend == 'tensorflow':
        return facts()
    code = (
        f'import json; from {facts.__module__} import {facts.__name__} as f; print(json.dumps(f()))'
    )
    return run_json_under_backend(code, backend)
