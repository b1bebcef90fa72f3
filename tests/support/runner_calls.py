"""The runners called as a user calls them: main() in a fresh process, its exit codes, errors and
printed configuration, and whether it imported TensorFlow, TFX or Beam."""

import json
import os
import subprocess
import sys

from pipeline import cli, configs

# Each case runs run_local.main in one process that never imports TensorFlow; the script prints
# {case: [exit code, stderr, seconds]} and whether TensorFlow, TFX or Beam got imported.
_HARNESS = """
import contextlib, io, json, sys, time
from pipeline import run_local
results = {}
for name, argv in json.loads(sys.argv[1]).items():
    err = io.StringIO()
    started = time.time()
    with contextlib.redirect_stderr(err):
        try:
            run_local.main(argv)
            code = 0
        except SystemExit as e:
            code = e.code
            if isinstance(code, str):
                err.write(code + '\\n')
    results[name] = [code, err.getvalue(), time.time() - started]
heavy = sorted(m for m in ('tensorflow', 'tfx.v1', 'apache_beam', 'keras') if m in sys.modules)
print(json.dumps({'results': results, 'imported': heavy}))
"""


def run_cases(cases: dict, tmp_path) -> dict:
    out = subprocess.run(
        [sys.executable, '-c', _HARNESS, json.dumps(cases)],
        capture_output=True,
        text=True,
        cwd=configs.PROJECT_ROOT,
        env={**os.environ, 'HOME': str(tmp_path)},
        check=True,
    )
    report = json.loads(out.stdout)
    assert report['imported'] == []
    return report['results']


def run_local_spec(*argv):
    from pipeline import run_local

    parser = cli.parser('', cli.LocalOutputs, run_local.LocalRun)
    spec, _ = cli.parse(parser, list(argv), run_local.local_paths, cli.LocalOutputs)
    return spec


def print_config(runner, *argv):
    """The JSON a runner prints with --print_config, and whether TFX or TensorFlow got imported."""
    script = (
        'import json, sys\n'
        f'from pipeline import {runner}\n'
        f'{runner}.main({["--print_config", *argv]!r})\n'
        "print(json.dumps(sorted(m for m in ('tfx.v1', 'tensorflow', 'keras', 'apache_beam') "
        'if m in sys.modules)))\n'
    )
    out = subprocess.run(
        [sys.executable, '-c', script], capture_output=True, text=True, cwd='/', check=True
    )
    *config, imported = out.stdout.strip().splitlines()
    return json.loads('\n'.join(config)), json.loads(imported)


def run_local_process(tmp_path, *argv):
    """run_local as a user runs it, in a subprocess, with its outputs under tmp_path."""
    return subprocess.run(
        [sys.executable, '-m', 'pipeline.run_local', f'--pipeline_root={tmp_path}/root',
         f'--metadata_path={tmp_path}/metadata.sqlite', f'--serving_dir={tmp_path}/serving',
         *argv, '--', '--direct_running_mode=in_memory', '--direct_num_workers=1'],
        capture_output=True, text=True, cwd=configs.PROJECT_ROOT,
    )  # fmt: skip
