"""What the multi-worker and mirrored training tests share, made once per session: the
transformed digits and the one-device training they are both compared with."""

import pytest

from tests.support.training_workers import finish, start_worker, transform_digits


@pytest.fixture(scope='session')
def transformed(tmp_path_factory):
    return transform_digits(tmp_path_factory.mktemp('training_workers'))


@pytest.fixture(scope='session')
def single_run(transformed):
    """(output dir, log) of one worker on one device."""
    single_dir = transformed[2] / 'single'
    return single_dir, finish(start_worker(transformed, single_dir))
