"""The Trainer's loop in a process killed after a checkpoint: the next run resumes there instead
of starting over (make test checks resume in process, bit for bit, inside an epoch:
tests/unit/test_training_loop.py)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from nvae_tfx.training import checkpoints, loop
from tests.support.tiny_training import (
    STEPS_PER_EPOCH,
    digits_dataset,
    from_start,
    tiny,
    tiny_model,
)


def test_resume_after_kill(tmp_path):
    """A training process killed after a checkpoint resumes there instead of starting over."""
    state_dir = tmp_path / 'state'
    script = textwrap.dedent(f"""
      import sys; sys.path.insert(0, {os.getcwd()!r})
      from tests.support.tiny_training import tiny, tiny_model, digits_dataset, from_start
      from nvae_tfx.training import checkpoints, loop
      options = tiny(40, checkpoint_every_steps=3)
      loop.train(tiny_model(options), from_start(digits_dataset()), options,
                 checkpoints.TrainingState({str(state_dir)!r}), {str(tmp_path / 'logs1')!r})
  """)
    proc = subprocess.Popen([sys.executable, '-c', script])
    state_file = state_dir / checkpoints.STATE_FILE
    deadline = time.time() + 600
    while not state_file.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state_file.exists(), 'no checkpoint was written before the kill'

    # The same options: a checkpoint of another schedule (model configuration) is not resumed.
    options = tiny(40, checkpoint_every_steps=3)
    summary = loop.train(
        tiny_model(options),
        from_start(digits_dataset()),
        options,
        checkpoints.TrainingState(str(state_dir)),
        str(tmp_path / 'logs2'),
    )
    # Checkpoints come every 3 steps and at every epoch end; the kill may follow either.
    resumed = summary['resumed_from_step']
    assert 3 <= resumed < 40 and (resumed % 3 == 0 or resumed % STEPS_PER_EPOCH == 0)
    assert summary['resumed_from_batch'] == resumed  # no step was skipped as non-finite
    assert summary['steps'] == 40
    assert json.load(open(tmp_path / 'logs2' / 'training_summary.json')) == summary
