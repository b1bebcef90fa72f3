"""run_local as a user runs it, twice: the data half, then an identical rerun that is cached
(tests/pipeline/test_trainer_pipeline checks cached reruns through ML Metadata in make test)."""

import os

from tests.support.runner_calls import run_local_process


def test_data_half_then_an_identical_rerun_that_is_cached(tmp_path):
    first = run_local_process(tmp_path, '--no_train')
    assert first.returncode == 0, first.stderr
    assert first.stderr == ''
    lines = first.stdout.splitlines()
    assert not any('bdist_wheel' in line or 'deprecat' in line.lower() for line in lines)
    started = [line.split()[0] for line in lines if line.split()[1:2] == ['started']]
    assert started[0] == 'ImageExampleGen' and 'Transform' in started
    assert lines[-2] == '7 components ran, 0 were cached.'
    assert lines[-1].startswith(f'Report: {tmp_path}/root/RunReport/report/')
    second = run_local_process(tmp_path, '--no_train')
    assert second.returncode == 0 and second.stderr == ''
    lines = second.stdout.splitlines()
    assert lines[-2] == 'Every component was cached: nothing ran, nothing was pushed again.'
    # The cached report is the first run's: this run's is written from ML Metadata.
    assert lines[-1].startswith(f'Report: {tmp_path}/reports/')
    assert {line.split()[1] for line in lines if line.split()[:1] == ['Transform']} >= {'cached'}
    assert os.path.exists(f'{tmp_path}/metadata.sqlite.lock')
