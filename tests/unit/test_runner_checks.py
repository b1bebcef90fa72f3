"""The runners' checks before anything runs, their one-line errors, the lock on a run's outputs,
executions a killed run left RUNNING, and the quiet output's pieces. No pipeline runs here."""

import io
import os
import subprocess
import sys
import threading
import time
import types

import pytest

from nvae_tfx.data import celeba, checks, synthetic
from nvae_tfx.data.errors import DataError
from nvae_tfx.options import SourceOptions
from pipeline import configs, logging_setup, run_lock
from tests.support.runner_calls import run_cases


def test_bad_flags_and_data_fail_in_one_line_before_tensorflow(tmp_path):
    missing = tmp_path / 'nowhere'
    bad_idx = tmp_path / 'bad_idx'
    synthetic.write_mnist_idx(str(bad_idx), n_train=10, n_test=5, gz=False)
    with open(bad_idx / 't10k-labels-idx1-ubyte', 'r+b') as f:
        f.write(b'\x00\x00\x08\x03')  # the images' magic in the labels file
    outputs = [f'--pipeline_root={tmp_path}/root', f'--metadata_path={tmp_path}/m.sqlite']
    cases = {
        'preset': ['--preset=nope'],
        'set_field': ['--set', 'no_such_field=1'],
        'set_value': ['--set', 'num_latent_scales=many'],
        'train_steps': ['--train_steps=0'],
        'eval_split': ['--eval_split=test'],
        'image_size': ['--dataset=celeba', '--source=dir', f'--data_dir={missing}',
                       '--image_size=60'],
        'data_dir': ['--source=idx', f'--data_dir={missing}'],
        'idx_header': ['--source=idx', f'--data_dir={bad_idx}'],
        'celeba_dir': ['--dataset=celeba', '--source=dir', f'--data_dir={tmp_path}'],
        'weights': ['--inception_weights=~/w.h5'],
        'busy': [],  # nothing wrong, but another run holds the outputs
    }  # fmt: skip
    with run_lock.hold([f'{tmp_path}/m.sqlite']):
        results = run_cases({k: [*v, *outputs] for k, v in cases.items()}, tmp_path)
    expected = {
        'preset': "argument --preset: invalid choice: 'nope'",
        'set_field': "--set no_such_field=1: unknown config field 'no_such_field'",
        'set_value': '--set num_latent_scales=many: ',
        'train_steps': 'train_steps must be at least 1, got 0',
        'eval_split': '--eval_split=test: mnist from the embedded source has the splits train',
        'image_size': 'image_size 60 must be divisible by the total down-sampling',
        'data_dir': f'{missing}: data directory not found',
        'idx_header': f'{bad_idx}/t10k-labels-idx1-ubyte: ',
        'celeba_dir': f'{tmp_path}/img_align_celeba: CelebA image directory not found',
        'weights': f'{tmp_path}/w.h5: Inception-v3 weights file (--inception_weights) not found',
        'busy': f'{tmp_path}/m.sqlite is in use by another run (process {os.getpid()}, started',
    }
    for case, text in expected.items():
        code, err, seconds = results[case]
        assert code not in (0, None), case
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith('error: ') and text in lines[0], (case, err)
        assert seconds < 10, (case, seconds)  # checked before anything slow, never near it
    assert 'labels' in results['idx_header'][1]  # names what is wrong with the file


def test_every_path_flag_expands_the_home_directory(monkeypatch):
    from pipeline import run_local

    monkeypatch.setenv('HOME', '/home/someone')
    spec, _ = run_local.parse(
        ['--source=idx', '--data_dir=~/x', '--pipeline_root=~/y', '--serving_dir=~/s',
         '--metadata_path=~/m', '--inception_weights=~/w.h5']
    )  # fmt: skip
    paths = spec.paths
    assert (spec.source.data_dir, paths.pipeline_root, paths.serving_dir, paths.metadata_path) == (
        '/home/someone/x', '/home/someone/y', '/home/someone/s', '/home/someone/m'
    )  # fmt: skip
    assert spec.evaluation.inception_weights == '/home/someone/w.h5'
    remote, _ = run_local.parse(['--source=idx', '--data_dir=gs://b/~x'])
    assert remote.source.data_dir == 'gs://b/~x'


@pytest.mark.parametrize('name', ['../secret.jpg', 'sub/000001.jpg', '/etc/x.jpg', '..\\a.jpg'])
def test_partition_lines_may_not_leave_the_image_directory(name):
    with pytest.raises(DataError, match='is not a file name inside img_align_celeba/'):
        celeba.parse_partition_lines('p.txt', ['000001.jpg 0\n', f'{name} 1\n'])


def test_image_reports_say_empty_file_and_carry_no_memory_addresses():
    shape = synthetic.CELEBA_SHAPE
    with pytest.raises(DataError) as empty:
        celeba.check_image('/d/1.jpg', b'', shape)
    assert str(empty.value) == '/d/1.jpg: empty file'
    with pytest.raises(DataError) as garbage:
        celeba.check_image('/d/2.jpg', b'not an image at all', shape)
    assert '0x' not in str(garbage.value) and 'corrupt or non-image file' in str(garbage.value)
    error = DataError('/d/3.jpg', 'cannot identify image file <_io.BytesIO object at 0x7f1a2b>')
    assert str(error) == '/d/3.jpg: cannot identify image file'


def test_missing_celeba_images_are_counted_before_the_run(tmp_path):
    names = synthetic.write_celeba_dir(str(tmp_path), counts=(3, 2, 1))
    for name in names[:3]:
        os.remove(tmp_path / 'img_align_celeba' / name)
    options = SourceOptions(dataset='celeba', source='dir', data_dir=str(tmp_path)).resolved()
    with pytest.raises(DataError, match=r'not found \(and 2 other listed files are missing\)'):
        checks.check_source(options)
    # Skipping: missing files are reported with the unreadable ones when they are read.
    checks.check_source(SourceOptions(**{**vars(options), 'on_corrupt': 'skip'}).resolved())


@pytest.mark.parametrize('gz', [False, True])
def test_idx_headers_are_checked_against_the_file_length(tmp_path, gz):
    synthetic.write_mnist_idx(str(tmp_path), n_train=10, n_test=5, gz=gz)
    options = SourceOptions(source='idx', data_dir=str(tmp_path)).resolved()
    checks.check_source(options)
    path = tmp_path / ('train-images-idx3-ubyte' + ('.gz' if gz else ''))
    if gz:
        import gzip

        data = gzip.decompress(path.read_bytes())
        path.write_bytes(gzip.compress(data[:-5]))
    else:
        path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match=r'header promises \(10, 28, 28\)'):
        checks.check_source(options)


def test_a_second_run_on_the_same_outputs_is_refused_or_waits(tmp_path):
    outputs = [str(tmp_path / 'metadata.sqlite'), str(tmp_path / 'root')]
    with run_lock.hold(outputs):
        with pytest.raises(run_lock.Busy, match=f'process {os.getpid()}') as busy:
            with run_lock.hold([str(tmp_path / 'root')]):
                pass
        assert 'run again with --wait' in str(busy.value)
        entered = []

        def second_run():
            with run_lock.hold(outputs, wait=True):
                entered.append(time.time())

        waiting = threading.Thread(target=second_run)
        waiting.start()
        time.sleep(0.5)
        assert entered == []  # still waiting while the first run holds the outputs
        released = time.time()
    waiting.join(10)
    assert entered and entered[0] >= released


def test_locks_never_touch_a_file_of_the_users(tmp_path):
    """A lock lives in a directory of its own: a user's `<output>.lock` stays as it was."""
    mine = tmp_path / 'metadata.sqlite.lock'
    mine.write_text('my notes')
    with run_lock.hold([str(tmp_path / 'metadata.sqlite'), str(tmp_path / 'serving')]):
        locks = sorted(os.listdir(tmp_path / run_lock.LOCK_DIRECTORY))
    assert mine.read_text() == 'my notes'
    assert locks == ['metadata.sqlite.lock', 'serving.lock']


def test_remote_outputs_are_held_by_a_lease_another_machine_sees(tmp_path):
    """A URI output (file:// here; gs:// alike through tf.io.gfile) is leased: a second run is
    refused while the first holds it, and gets it once the first is done."""
    from nvae_tfx import leases

    root = f'file://{tmp_path}/root'
    with run_lock.hold([root]):
        [lease] = os.listdir(tmp_path / 'root' / leases.LEASES)
        # Another machine's run: its lease file is what this one's hold lists.
        with pytest.raises(run_lock.Busy, match=f'process {os.getpid()} on '):
            with run_lock.hold([root]):
                pass
    assert os.listdir(tmp_path / 'root' / leases.LEASES) == []
    with run_lock.hold([root]):
        pass


def test_executions_a_killed_run_left_running_are_marked_canceled(tmp_path):
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2 as pb

    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(tmp_path / 'metadata.sqlite')
    store = mlmd.MetadataStore(config)
    context_type = store.put_context_type(pb.ContextType(name='pipeline'))
    execution_type = store.put_execution_type(pb.ExecutionType(name='Trainer'))
    contexts = store.put_contexts(
        [pb.Context(type_id=context_type, name=n) for n in ('nvae-mnist', 'other')]
    )
    states = [pb.Execution.RUNNING, pb.Execution.COMPLETE, pb.Execution.RUNNING]
    ids = store.put_executions(
        [pb.Execution(type_id=execution_type, last_known_state=s) for s in states]
    )
    store.put_attributions_and_associations(
        [],
        [
            pb.Association(context_id=contexts[0], execution_id=ids[0]),
            pb.Association(context_id=contexts[0], execution_id=ids[1]),
            pb.Association(context_id=contexts[1], execution_id=ids[2]),
        ],
    )
    changed = run_lock.cancel_abandoned_executions(store, 'nvae-mnist')
    assert [e.id for e in changed] == [ids[0]]
    after = {e.id: e for e in store.get_executions_by_id(ids)}
    assert after[ids[0]].last_known_state == pb.Execution.CANCELED
    assert 'killed' in after[ids[0]].custom_properties[run_lock.ABANDONED_PROPERTY].string_value
    assert after[ids[1]].last_known_state == pb.Execution.COMPLETE
    assert after[ids[2]].last_known_state == pb.Execution.RUNNING  # another pipeline's
    assert run_lock.cancel_abandoned_executions(store, 'nvae-mnist') == []
    assert run_lock.cancel_abandoned_executions(store, 'never-ran') == []


def test_an_error_from_inside_beam_ends_the_run_with_its_one_line():
    def wrapped(inner):
        try:
            try:
                raise inner
            except Exception as e:
                raise RuntimeError('Pipeline failed') from e
        except RuntimeError as e:
            return e

    direct = wrapped(DataError('/d/img_align_celeba/7.jpg', 'empty file'))
    assert logging_setup.failure_line(direct) == '/d/img_align_celeba/7.jpg: empty file'
    # What Beam re-raises from a worker process: the worker's traceback as text.
    text = (
        'Traceback (most recent call last):\n  File "x.py", line 1\n'
        'nvae_tfx.data.errors.DataError: /d/9.jpg: corrupt or non-image file '
        "[while running 'Read[train]'] [while running 'ReadSplits']\n"
    )
    assert logging_setup.failure_line(wrapped(RuntimeError(text))) == (
        '/d/9.jpg: corrupt or non-image file'
    )
    assert logging_setup.failure_line(RuntimeError('CUDA_ERROR_OUT_OF_MEMORY')) == (
        'RuntimeError: CUDA_ERROR_OUT_OF_MEMORY'
    )


def test_packaging_chatter_is_shown_only_when_it_fails(capfd):
    chatter = [
        sys.executable,
        '-c',
        'import sys; print("running bdist_wheel"); sys.stderr.write("warning\\n")',
    ]
    with logging_setup.captured_output(show=False):
        subprocess.run(chatter, check=True)
    assert capfd.readouterr() == ('', '')
    with pytest.raises(subprocess.CalledProcessError):
        with logging_setup.captured_output(show=False):
            subprocess.run([*chatter[:2], chatter[2] + '; sys.exit(1)'], check=True)
    assert 'running bdist_wheel' in capfd.readouterr().err


def test_component_lines_say_started_finished_cached_and_failed():
    import logging

    stream = io.StringIO()
    lines = logging_setup.ComponentLines(stream)

    def record(msg, *args):
        return logging.LogRecord('absl', logging.INFO, 'x.py', 1, msg, args, None)

    assert not lines.handles(record('something else'))
    for r in [
        record('Component %s is running.', 'Trainer'),
        record('Component %s is finished.', 'Trainer'),
        record('Component %s is running.', 'Transform'),
        record('A cached execution %d is used.', 4),
        record('Component %s is finished.', 'Transform'),
        record('Component %s is running.', 'Pusher'),
        record('Execution %d failed.', 9),
    ]:
        assert lines.handles(r)
    out = [line.split() for line in stream.getvalue().splitlines()]
    assert [o[:2] for o in out] == [
        ['Trainer', 'started'], ['Trainer', 'finished'], ['Transform', 'started'],
        ['Transform', 'cached'], ['Pusher', 'started'], ['Pusher', 'failed'],
    ]  # fmt: skip


def test_quiet_logs_keep_errors_and_drop_known_harmless_warnings(capsys):
    import logging

    handler = logging_setup._QuietHandler()

    def emit(level, msg, *args, pathname='/x/site-packages/tfx/y.py'):
        handler.emit(logging.LogRecord('tfx', level, pathname, 1, msg, args, None))

    emit(logging.INFO, 'chatter')
    emit(
        logging.INFO,
        'Evaluation: %s',
        '{"nll_nats": 90.5}',
        pathname=f'{configs.PROJECT_ROOT}/x.py',
    )
    emit(logging.WARNING, 'Examples artifact does not have %s custom property. Falling back to %s',
         'payload_format', 'FORMAT_TF_EXAMPLE')  # fmt: skip
    emit(logging.WARNING, 'deprecated', pathname='/v/tensorflow/python/util/deprecation.py')
    emit(logging.ERROR, 'Could not load dynamic library libcudnn.so.8')
    emit(logging.WARNING, 'disk nearly full')
    emit(logging.ERROR, 'Error processing instruction 3.\nTraceback (most recent call last):\n  x')
    out, err = capsys.readouterr()
    assert out.splitlines() == ['  Evaluation: {"nll_nats": 90.5}']
    assert err.splitlines() == [
        'error: Could not load dynamic library libcudnn.so.8',
        'warning: disk nearly full',
        'error: Error processing instruction 3. (more with --verbose)',
    ]


def test_quiet_import_of_tensorflow_drops_only_the_duplicate_registration_errors():
    script = (
        'import os, sys\n'
        'if sys.argv[1] == "quiet":\n'
        '    from pipeline import logging_setup\n'
        '    logging_setup.configure()\n'
        'import tensorflow\n'
        'os.write(2, b"E after the import: shown\\n")\n'
    )
    env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    env['TF_CPP_MIN_LOG_LEVEL'] = '2'  # what quiet runs use

    def stderr(mode):
        return subprocess.run(
            [sys.executable, '-c', script, mode], capture_output=True, text=True, env=env,
            cwd=configs.PROJECT_ROOT, check=True,
        ).stderr.splitlines()  # fmt: skip

    plain = [line for line in stderr('plain') if 'Unable to register' in line]
    assert len(plain) == 3  # TensorFlow 2.16 logs them on every import
    assert all(logging_setup._DUPLICATE_REGISTRATION.search(line) for line in plain)
    assert stderr('quiet') == ['E after the import: shown']
    assert not logging_setup._DUPLICATE_REGISTRATION.search(
        'E cuda_dnn.cc:535] Could not create cudnn handle: CUDNN_STATUS_INTERNAL_ERROR'
    )


def test_training_progress_counts_the_epochs_that_run():
    from nvae_tfx.training import progress

    stream = io.StringIO()
    bar = progress.TrainingProgress(total_steps=10, steps_per_epoch=5, stream=stream)
    model = types.SimpleNamespace(optimizer=types.SimpleNamespace(iterations=0))
    bar.set_model(model)
    for epoch in range(3):  # the third is the spare epoch fit gets for skipped steps
        bar.on_epoch_begin(epoch)
        for _ in range(5 if epoch < 2 else 1):
            model.optimizer.iterations += 1
            bar.on_train_batch_end(0, {'loss': 1.5})
        bar.on_epoch_end(epoch, {'loss': 1.25})
    lines = stream.getvalue().splitlines()
    assert [line.split('  ')[0] for line in lines] == [
        'epoch 1/2', 'epoch 2/2', 'extra epoch 1 (making up skipped steps)',
    ]  # fmt: skip
    assert 'step 5/10' in lines[0] and 'loss 1.25' in lines[0] and 'left' in lines[0]
    assert '0.0 s left' in lines[1]


def test_image_directory_fingerprint_follows_names_sizes_and_times(tmp_path):
    from nvae_tfx.data.fingerprint import directory_fingerprint

    names = synthetic.write_celeba_dir(str(tmp_path), counts=(3, 1, 1))
    image_dir = str(tmp_path / 'img_align_celeba')
    first = directory_fingerprint(image_dir)
    assert first.startswith('5 files, ') and first == directory_fingerprint(image_dir)
    path = os.path.join(image_dir, names[0])
    stat = os.stat(path)
    with open(path, 'wb') as f:  # replaced by an image of the same size
        f.write(synthetic.jpeg_bytes(synthetic.face(99)).ljust(stat.st_size, b'\0')[: stat.st_size])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert directory_fingerprint(image_dir) == first  # names, sizes and times only: cheap
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    touched = directory_fingerprint(image_dir)
    assert touched != first
    os.rename(path, os.path.join(image_dir, 'renamed.jpg'))
    assert directory_fingerprint(image_dir) not in (first, touched)


def test_example_gen_driver_fingerprints_celeba_images(tmp_path):
    from tfx.components.example_gen import utils
    from tfx.utils import proto_utils

    from components.example_gen.component import ImageExampleGen
    from components.example_gen.driver import Driver

    names = synthetic.write_celeba_dir(str(tmp_path), counts=(3, 1, 1))
    component = ImageExampleGen(
        SourceOptions(
            dataset='celeba', source='dir', data_dir=str(tmp_path), on_corrupt='skip'
        ).resolved()
    )

    def fingerprint():
        properties = {
            k: proto_utils.proto_to_json(v) if hasattr(v, 'DESCRIPTOR') else v
            for k, v in component.exec_properties.items()
        }
        resolved = Driver(None).resolve_exec_properties(properties, None, None)
        return resolved[utils.FINGERPRINT_PROPERTY_NAME]

    first = fingerprint()
    assert 'split:train,num_files:1' in first and 'img_align_celeba: 5 files' in first
    (tmp_path / 'img_align_celeba' / names[1]).write_bytes(synthetic.jpeg_bytes(synthetic.face(7)))
    assert fingerprint() != first  # a replaced image re-runs ingestion


def test_fail_mode_names_the_first_bad_file_and_counts_the_others(tmp_path):
    from tfx.types import standard_artifacts

    from components.example_gen.executor import Executor

    report = tmp_path / 'report'
    report.mkdir()
    (report / 'train-skipped.tsv').write_text('/d/1.jpg\tempty file\n/d/2.jpg\tcorrupt\n')
    (report / 'eval-skipped.tsv').write_text('/d/9.jpg\tempty file\n')
    for split, count in (('train', 5), ('eval', 2)):
        (report / f'{split}-count.txt').write_text(str(count))
    examples = standard_artifacts.Examples()
    with pytest.raises(DataError) as error:
        Executor._record_report(examples, ['train', 'eval'], str(report), 'fail')
    assert str(error.value) == (
        '/d/1.jpg: empty file (and 2 other bad files; --on_corrupt=skip skips and lists them all)'
    )
    Executor._record_report(examples, ['train', 'eval'], str(report), 'skip')
    assert examples.get_int_custom_property('num_skipped') == 3
    assert examples.get_int_custom_property('num_skipped_eval') == 1


def test_baseline_is_the_latest_blessed_model_other_than_the_candidate():
    from tfx.types import standard_artifacts

    from components.baseline_resolver import CANDIDATE, LatestBlessedOtherModelStrategy

    def model(i):
        a = standard_artifacts.Model()
        a.id = i
        return a

    def blessing(i, model_id, blessed):
        a = standard_artifacts.ModelBlessing()
        a.id = i
        a.set_int_custom_property('current_model_id', model_id)
        a.set_int_custom_property('blessed', blessed)
        return a

    models = [model(1), model(2), model(3)]
    blessings = [blessing(10, 1, 1), blessing(11, 2, 0), blessing(12, 3, 1)]
    strategy = LatestBlessedOtherModelStrategy()

    def baseline(candidate_id):
        inputs = {
            'model': list(models),
            'model_blessing': blessings,
            CANDIDATE: [model(candidate_id)],
        }
        resolved = strategy.resolve_artifacts(None, inputs)
        assert [a.id for a in resolved[CANDIDATE]] == [candidate_id]
        return [a.id for a in resolved['model']], [a.id for a in resolved['model_blessing']]

    assert baseline(4) == ([3], [12])  # a new candidate: the latest blessed model
    assert baseline(3) == ([1], [10])  # the blessed candidate itself (a rerun): the one before
    assert baseline(1) == ([3], [12])
    models[:] = [model(1)]
    assert baseline(1) == ([], [])  # the only blessed model is the candidate: no baseline


def test_run_summary_says_when_everything_was_cached(tmp_path):
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2 as pb

    from pipeline import report

    path = str(tmp_path / 'metadata.sqlite')
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = path
    store = mlmd.MetadataStore(config)
    kinds = {
        n: store.put_context_type(pb.ContextType(name=n))
        for n in ('pipeline', 'pipeline_run', 'node')
    }

    def record_run(run, trainer_state):
        pipeline, run_context, trainer_node, resolver_node = [
            store.get_context_by_type_and_name(kind, name)
            or pb.Context(id=store.put_contexts([pb.Context(type_id=kinds[kind], name=name)])[0])
            for kind, name in (
                ('pipeline', 'nvae'), ('pipeline_run', run), ('node', 'nvae.Trainer'),
                ('node', 'nvae.latest_blessed_model_resolver'),
            )
        ]  # fmt: skip
        trainer = store.put_execution_type(pb.ExecutionType(name='tfx.components.trainer.Trainer'))
        resolver = store.put_execution_type(
            pb.ExecutionType(name='tfx.dsl.components.common.resolver.Resolver')
        )
        ids = store.put_executions(
            [
                pb.Execution(type_id=trainer, last_known_state=trainer_state),
                pb.Execution(type_id=resolver, last_known_state=pb.Execution.COMPLETE),
            ]
        )
        store.put_attributions_and_associations(
            [],
            [
                pb.Association(context_id=c.id, execution_id=i)
                for i, node in zip(ids, (trainer_node, resolver_node), strict=True)
                for c in (pipeline, run_context, node)
            ],
        )

    record_run('run-1', pb.Execution.COMPLETE)
    assert report.run_summary(path, 'nvae').endswith('1 components ran, 0 were cached.')
    time.sleep(0.01)
    record_run('run-2', pb.Execution.CACHED)
    summary = report.run_summary(path, 'nvae')
    assert 'run-2' in summary.splitlines()[0]
    assert summary.endswith('Every component was cached: nothing ran, nothing was pushed again.')


def test_checkpoints_at_epoch_ends_only_are_accepted():
    from tests.support.runner_calls import run_local_spec

    assert run_local_spec('--checkpoint_every_steps=0').training.checkpoint_every_steps == 0
    with pytest.raises(ValueError, match='checkpoint_every_steps must be at least 0, got -1'):
        run_local_spec('--checkpoint_every_steps=-1')
