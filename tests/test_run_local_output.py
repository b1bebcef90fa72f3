"""run_local as a user runs it, in a subprocess: what the default output shows."""

import os
import subprocess
import sys

import pytest

from pipeline import configs
from tests import fixtures

pytestmark = pytest.mark.slow


def run_local(tmp_path, *argv):
    return subprocess.run(
        [sys.executable, '-m', 'pipeline.run_local', f'--pipeline_root={tmp_path}/root',
         f'--metadata_path={tmp_path}/metadata.sqlite', f'--serving_dir={tmp_path}/serving',
         *argv, '--', '--direct_running_mode=in_memory', '--direct_num_workers=1'],
        capture_output=True, text=True, cwd=configs.PROJECT_ROOT,
    )  # fmt: skip


def test_bad_images_end_the_run_with_one_line_and_no_packaging_chatter(tmp_path):
    data_dir = tmp_path / 'celeba'
    names = fixtures.write_celeba_dir(str(data_dir), counts=(4, 1, 1))
    image_dir = data_dir / 'img_align_celeba'
    (image_dir / names[1]).write_bytes(b'')
    (image_dir / names[3]).write_bytes(b'not a jpeg')
    out = run_local(tmp_path, '--dataset=celeba', f'--data_dir={data_dir}', '--no_train')
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f'error: {image_dir}/{names[1]}: empty file (and 1 other bad file; --on_corrupt=skip '
        'skips and lists them all) (--verbose shows the traceback)'
    ]
    stdout = out.stdout.splitlines()
    example_gen = [line.split()[1:3] for line in stdout if line.startswith('ImageExampleGen ')]
    assert example_gen == [['started'], ['failed', 'after']]
    assert not any('bdist_wheel' in line or 'running' in line for line in stdout)
    # The failed run's report, written from ML Metadata, says what failed and why.
    assert stdout[-1].startswith(f'Report: {tmp_path}/reports/') and stdout[-1].endswith('.html')
    report = open(stdout[-1].removeprefix('Report: ')).read()
    assert f'at ImageExampleGen (execution 1): <code>{image_dir}/{names[1]}: empty file' in report


@pytest.mark.extended  # test_trainer_pipeline checks cached reruns in make test
def test_data_half_then_an_identical_rerun_that_is_cached(tmp_path):
    first = run_local(tmp_path, '--no_train')
    assert first.returncode == 0, first.stderr
    assert first.stderr == ''
    lines = first.stdout.splitlines()
    assert not any('bdist_wheel' in line or 'deprecat' in line.lower() for line in lines)
    started = [line.split()[0] for line in lines if line.split()[1:2] == ['started']]
    assert started[0] == 'ImageExampleGen' and 'Transform' in started
    assert lines[-2] == '7 components ran, 0 were cached.'
    assert lines[-1].startswith(f'Report: {tmp_path}/root/RunReport/report/')
    second = run_local(tmp_path, '--no_train')
    assert second.returncode == 0 and second.stderr == ''
    lines = second.stdout.splitlines()
    assert lines[-2] == 'Every component was cached: nothing ran, nothing was pushed again.'
    # The cached report is the first run's: this run's is written from ML Metadata.
    assert lines[-1].startswith(f'Report: {tmp_path}/reports/')
    assert {line.split()[1] for line in lines if line.split()[:1] == ['Transform']} >= {'cached'}
    assert os.path.exists(f'{tmp_path}/metadata.sqlite.lock')
