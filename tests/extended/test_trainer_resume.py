"""A pipeline run killed while its Trainer trains; run_local.py run again resumes the training
from the checkpoint the killed Trainer left, instead of starting over."""

import json
import os
import signal
import subprocess
import sys
import time

from nvae_tfx.data import synthetic
from pipeline import configs, report

# Four minutes on 2 cores: in make test-extended. make test covers its parts: resuming a killed
# training process (test_training_loop) and marking a killed run's executions CANCELED
# (test_runner_checks).
STEPS = 200


def run_local_command(tmp_path):
    return [
        sys.executable,
        os.path.join(configs.PROJECT_ROOT, 'pipeline', 'run_local.py'),
        '--source=idx',
        f'--data_dir={tmp_path}/mnist',
        '--preset=tiny',
        f'--train_steps={STEPS}',
        '--batch_size=8',
        '--steps_per_epoch=100',
        '--checkpoint_every_steps=10',
        '--no_digit_classifier',
        '--eval_examples=10',
        '--iw_samples=2',
        '--fid_samples=10',
        '--readjust_bn_passes=1',
        f'--pipeline_root={tmp_path}/root',
        f'--metadata_path={tmp_path}/metadata.sqlite',
        f'--serving_dir={tmp_path}/serving',
    ]


def wait_for(path_glob, process, timeout_s):
    import glob

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        found = glob.glob(path_glob)
        if found:
            return found[0]
        assert process.poll() is None, 'the pipeline ended before the Trainer checkpointed'
        time.sleep(0.2)
    raise TimeoutError(path_glob)


def test_killed_trainer_resumes_from_its_checkpoint(tmp_path):
    synthetic.write_mnist_idx(str(tmp_path / 'mnist'), n_train=40, n_test=20)
    command = run_local_command(tmp_path)
    first = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        checkpoint = wait_for(
            f'{tmp_path}/root/Trainer/checkpoints/*/training_state.npz', first, timeout_s=600
        )
        time.sleep(1.0)  # a few more steps, possibly another checkpoint
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert not os.path.exists(tmp_path / 'serving')

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]

    store = report.open_store(str(tmp_path / 'metadata.sqlite'), read_only=True)
    trainers = [e for e in store.get_executions() if report.node_id(store, e) == 'Trainer']
    states = [report._STATE.Name(e.last_known_state) for e in trainers]
    # The killed execution, marked CANCELED by the next run, then the resumed one.
    assert states == ['CANCELED', 'COMPLETE']
    [model] = report.outputs_of(store, trainers[-1].id)['model']
    [model_run] = report.outputs_of(store, trainers[-1].id)['model_run']
    with open(os.path.join(model_run.uri, 'training_summary.json')) as f:
        summary = json.load(f)
    assert 10 <= summary['resumed_from_step'] < STEPS
    assert summary['resumed_from_step'] % 10 == 0
    assert summary['steps'] == STEPS
    assert os.path.isfile(os.path.join(model.uri, 'Format-Serving', 'saved_model.pb'))
    # The exported model supersedes the checkpoint, which is removed.
    assert not os.path.exists(checkpoint)
