"""The data half on the embedded digits with Beam's scale-out path, separate worker processes
(three minutes on 2 cores): the same output as the in-process run of tests/pipeline."""

from nvae_tfx.options import SourceOptions
from tests.support.pipeline_helpers import (
    assert_embedded_digits_transformed,
    run_outputs,
    run_pipeline,
)


def test_embedded_default_with_worker_processes(tmp_path):
    beam_args = ('--direct_running_mode=multi_processing', '--direct_num_workers=2')
    outputs = run_outputs(run_pipeline(tmp_path, SourceOptions(), beam_pipeline_args=beam_args))
    assert_embedded_digits_transformed(outputs)
