"""Pre-flight: the files a run needs, checked before TFX, Beam and TensorFlow are imported (which
takes a minute or more on a small machine), so that missing or bad data fails at once with one
line instead of minutes later inside a component. The settings themselves were checked when the
run specification was made (pipeline/run_spec.py, nvae_tfx/options.py).

Checked where they are local paths: the data the chosen source needs (nvae_tfx/data/checks.py;
remote data is checked by ExampleGen on the machine that reads it) and the Inception weights.
Imports nothing heavier than NumPy.
"""

import os

from nvae_tfx.data import checks
from nvae_tfx.data.errors import DataError
from pipeline.run_spec import RunSpec


def check_files(spec: RunSpec) -> None:
    if '://' not in (spec.source.data_dir or ''):
        checks.check_source(spec.source)
    weights = spec.evaluation.inception_weights if spec.evaluation else ''
    if weights and '://' not in weights and not os.path.isfile(weights):
        raise DataError(weights, 'Inception-v3 weights file (--inception_weights) not found')
