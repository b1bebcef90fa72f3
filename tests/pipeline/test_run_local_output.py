"""run_local as a user runs it, in a subprocess: what the default output shows."""

from nvae_tfx.data import synthetic
from tests.support.runner_calls import run_local_process


def test_bad_images_end_the_run_with_one_line_and_no_packaging_chatter(tmp_path):
    data_dir = tmp_path / 'celeba'
    names = synthetic.write_celeba_dir(str(data_dir), counts=(4, 1, 1))
    image_dir = data_dir / 'img_align_celeba'
    (image_dir / names[1]).write_bytes(b'')
    (image_dir / names[3]).write_bytes(b'not a jpeg')
    out = run_local_process(tmp_path, '--dataset=celeba', f'--data_dir={data_dir}', '--no_train')
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
