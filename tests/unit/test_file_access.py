"""Components and the library reach files only through tf.io.gfile, so gs:// works wherever a path
may be an artifact URI, a data directory or a weights file: a static check of the source for
calls that only work on this machine's disk, with the few truly local ones listed and why."""

import ast
import os

import pytest

from pipeline import configs

SCANNED = ('components', 'nvae_tfx', 'pipeline')

# Calls that read, write, list or resolve paths on the local disk only.
LOCAL_ONLY = {
    'open',
    'io.open',
    'gzip.open',
    'tarfile.open',
    'zipfile.ZipFile',
    'h5py.File',
    'PIL.Image.open',
    'glob.glob',
    'glob.iglob',
    *(
        f'os.{name}'
        for name in (
            'makedirs mkdir listdir scandir walk remove unlink rmdir removedirs rename replace '
            'stat chmod symlink link'
        ).split()
    ),
    *(
        f'os.path.{name}'
        for name in (
            'exists lexists isfile isdir islink getsize getmtime getctime abspath realpath '
            'expanduser samefile'
        ).split()
    ),
    *(
        f'numpy.{name}'
        for name in 'load save savez savez_compressed loadtxt savetxt fromfile'.split()
    ),
}
LOCAL_ONLY_MODULES = ('shutil.', 'pathlib.')

# (file, enclosing function or '<module>', call): why it is right on the local disk.
ALLOWED = {
    ('nvae_tfx/training/checkpoints.py', 'TrainingState.save', 'numpy.savez'): (
        'writes into an in-memory buffer, which goes to the checkpoint file through tf.io.gfile'
    ),
    ('pipeline/configs.py', '<module>', 'os.path.abspath'): "this module's own location",
    ('pipeline/code_fingerprints.py', '_source', 'os.path.isfile'): (
        "the project's source files, hashed where the pipeline is built"
    ),
    ('pipeline/code_fingerprints.py', '_imported', 'open'): (
        "the project's source files, hashed where the pipeline is built"
    ),
    ('pipeline/code_fingerprints.py', 'fingerprint', 'open'): (
        "the project's source files, hashed where the pipeline is built"
    ),
    ('pipeline/cli.py', 'local_path', 'os.path.abspath'): 'only paths that are not URIs',
    ('pipeline/cli.py', 'local_path', 'os.path.expanduser'): 'only paths that are not URIs',
    ('pipeline/inspect_mlmd.py', 'main', 'os.path.abspath'): 'the report file, written locally',
    ('pipeline/inspect_mlmd.py', 'main', 'os.path.expanduser'): 'the report file, written locally',
    ('pipeline/run_report/writer.py', 'default_path', 'os.path.abspath'): (
        'beside the SQLite ML Metadata file, local'
    ),
    ('pipeline/sample.py', 'parse_args', 'os.path.expanduser'): 'only paths that are not URIs',
    ('nvae_tfx/training/checkpoints.py', 'fingerprint', 'pathlib.Path'): (
        "model_code's own source files, hashed where the Trainer runs"
    ),
    ('nvae_tfx/data/fingerprint.py', '_local_stats', 'os.stat'): (
        'only for a local directory (URIs go through tf.io.gfile.stat): fast for 202,599 files'
    ),
    ('nvae_tfx/data/fingerprint.py', 'directory_fingerprint', 'os.listdir'): (
        'only for a local directory (URIs go through tf.io.gfile.listdir)'
    ),
    ('pipeline/preflight.py', 'check_files', 'os.path.isfile'): (
        'only paths that are not URIs: remote files are checked where the components run'
    ),
    ('pipeline/run_local.py', '_run', 'os.path.exists'): 'the SQLite ML Metadata file, local',
    ('pipeline/run_lock.py', 'lock_file', 'os.path.abspath'): (
        'flock works on local files only; remote outputs are held by a lease (hold)'
    ),
    ('pipeline/run_lock.py', '_flock', 'os.makedirs'): 'lock files, local (flock)',
    ('pipeline/run_lock.py', '_flock', 'open'): 'lock files, local (flock)',
    ('pipeline/run_kubeflow.py', 'compile_pipeline', 'os.path.abspath'): (
        'the compiled job file, written on this machine'
    ),
    ('pipeline/run_kubeflow.py', 'compile_pipeline', 'os.makedirs'): (
        'the compiled job file, written on this machine'
    ),
    ('pipeline/inspect_mlmd.py', 'main', 'os.path.isfile'): (
        'the SQLite ML Metadata file, which is on this machine'
    ),
}


class _LocalCalls(ast.NodeVisitor):
    """Collects (enclosing function, call) for every local-only call in a module. Names are
    resolved through the module's imports (np.load -> numpy.load); a call whose first argument
    is io.BytesIO(...) works in memory and is not collected."""

    def __init__(self):
        self.aliases = {}
        self.scope = []
        self.found = []

    def visit_Import(self, node):
        for alias in node.names:
            self.aliases[(alias.asname or alias.name).split('.')[0]] = (
                alias.name if alias.asname else alias.name.split('.')[0]
            )

    def visit_ImportFrom(self, node):
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f'{node.module}.{alias.name}'

    def _scoped(self, node):
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def _dotted(self, node):
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(self.aliases.get(node.id, node.id))
        return '.'.join(reversed(parts))

    def visit_Call(self, node):
        name = self._dotted(node.func)
        in_memory = node.args and self._dotted(getattr(node.args[0], 'func', None)) == 'io.BytesIO'
        if name and not in_memory and (name in LOCAL_ONLY or name.startswith(LOCAL_ONLY_MODULES)):
            self.found.append(('.'.join(self.scope) or '<module>', name, node.lineno))
        self.generic_visit(node)


def local_calls(source: str):
    visitor = _LocalCalls()
    visitor.visit(ast.parse(source))
    return visitor.found


def _project_sources():
    for package in SCANNED:
        for directory, _, files in os.walk(os.path.join(configs.PROJECT_ROOT, package)):
            for name in sorted(files):
                if name.endswith('.py'):
                    path = os.path.join(directory, name)
                    yield os.path.relpath(path, configs.PROJECT_ROOT), path


def test_components_and_library_use_no_local_only_file_calls():
    found, used = [], set()
    for relative, path in _project_sources():
        with open(path) as f:
            calls = local_calls(f.read())
        for scope, call, line in calls:
            if (relative, scope, call) in ALLOWED:
                used.add((relative, scope, call))
            else:
                found.append(f'{relative}:{line} {scope}: {call}()')
    assert not found, 'use tf.io.gfile (gs:// must work):\n' + '\n'.join(found)
    assert not set(ALLOWED) - used, f'allowed but no longer called: {sorted(set(ALLOWED) - used)}'


@pytest.mark.parametrize(
    'source, expected',
    [
        ('import os\ndef f(uri):\n    os.path.isfile(uri)', [('f', 'os.path.isfile', 3)]),
        ('import numpy as np\nnp.load(path)', [('<module>', 'numpy.load', 2)]),
        ('import io\nimport numpy as np\nnp.load(io.BytesIO(data))', []),
        ('from PIL import Image\nImage.open(path)', [('<module>', 'PIL.Image.open', 2)]),
        ('from os import path as p\np.exists(x)', [('<module>', 'os.path.exists', 2)]),
        (
            'import shutil\nclass A:\n    def m(self):\n        shutil.copy(a, b)',
            [('A.m', 'shutil.copy', 4)],
        ),
        ('with open(uri) as f:\n    pass', [('<module>', 'open', 1)]),
        ('import tensorflow as tf\ntf.io.gfile.exists(uri)\nos_path = "x"', []),
    ],
)
def test_the_check_finds_local_only_calls(source, expected):
    assert local_calls(source) == expected


# --- The same functions on a file system that is not the local disk ----------------------------
# TensorFlow's in-memory ram:// file system, reached only through tf.io.gfile: a call that goes
# to the local disk instead finds nothing there (tests/pipeline/test_vertex_local_run.py covers gs://
# across processes).


@pytest.fixture
def ram_dir(request):
    import tensorflow as tf

    root = f'ram://{request.node.name}'
    tf.io.gfile.makedirs(root)
    yield root
    tf.io.gfile.rmtree(root)


def test_transformed_examples_are_read_from_any_file_system(ram_dir):
    import numpy as np
    import tensorflow as tf
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

    from nvae_tfx.data import transformed

    spec = {
        'image': tf.io.FixedLenFeature([4], tf.float32),
        'label': tf.io.FixedLenFeature([], tf.int64),
    }
    graph = f'{ram_dir}/transform_graph'
    metadata_io.write_metadata(
        dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec)),
        f'{graph}/transformed_metadata',
    )
    images = np.arange(20, dtype=np.float32).reshape(5, 4)
    examples = f'{ram_dir}/examples'
    for shard, rows in (('00000-of-00002', range(0, 3)), ('00001-of-00002', range(3, 5))):
        tf.io.gfile.makedirs(f'{examples}/Split-eval')
        options = tf.io.TFRecordOptions(compression_type='GZIP')
        with tf.io.TFRecordWriter(f'{examples}/Split-eval/data-{shard}.gz', options) as writer:
            for i in rows:
                feature = {
                    'image': tf.train.Feature(float_list=tf.train.FloatList(value=images[i])),
                    'label': tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
                }
                writer.write(
                    tf.train.Example(
                        features=tf.train.Features(feature=feature)
                    ).SerializeToString()
                )
    data = transformed.read_transformed_split(examples, graph, 'eval')
    np.testing.assert_array_equal(data['image'], images)
    np.testing.assert_array_equal(data['label'], np.arange(5))
    assert len(transformed.read_transformed_split(examples, graph, 'eval', limit=2)['label']) == 2
    with pytest.raises(FileNotFoundError, match=f'{examples}/Split-train: no transformed examples'):
        transformed.read_transformed_split(examples, graph, 'train')


def test_digit_classifier_is_saved_and_loaded_on_any_file_system(ram_dir):
    import numpy as np
    import tensorflow as tf

    from nvae_tfx.evaluation import feature_networks as fn

    model = fn.build_digit_classifier()
    directory = f'{ram_dir}/classifier'
    fn.save_digit_classifier(model, directory, eval_accuracy=0.5)
    assert sorted(tf.io.gfile.listdir(directory)) == [
        'digit_classifier.json',
        'digit_classifier.keras',
    ]
    network = fn.load_digit_classifier(directory)
    assert network.name == fn.DIGIT_CLASSIFIER_NAME and network.info['eval_accuracy'] == 0.5
    images = np.random.RandomState(0).uniform(0, 1, (3, 32, 32, 1)).astype(np.float32)
    expected = fn.digit_classifier_features(model).features(images)
    np.testing.assert_allclose(network.features(images), expected, rtol=1e-5, atol=1e-6)
    tf.io.gfile.remove(f'{directory}/digit_classifier.json')
    with pytest.raises(FileNotFoundError, match=f'{directory}/digit_classifier.json: missing'):
        fn.load_digit_classifier(directory)


def test_inception_weights_are_read_from_any_file_system(ram_dir, tmp_path):
    import h5py
    import keras
    import numpy as np
    import tensorflow as tf
    from keras.src.legacy.saving import legacy_h5_format

    from nvae_tfx.evaluation import feature_networks as fn

    reference = keras.applications.InceptionV3(
        include_top=False, pooling='avg', weights=None, input_shape=(299, 299, 3)
    )
    local = str(tmp_path / fn.INCEPTION_WEIGHTS_FILE)
    with h5py.File(local, 'w') as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    weights = f'{ram_dir}/weights/{fn.INCEPTION_WEIGHTS_FILE}'
    tf.io.gfile.makedirs(f'{ram_dir}/weights')
    tf.io.gfile.copy(local, weights)
    network = fn.load_inception_v3(weights)
    assert network.info == {'weights': weights}  # the URI, not the temporary copy
    rgb = np.random.RandomState(0).uniform(0, 1, (2, 8, 8, 3)).astype(np.float32)
    expected = reference(tf.image.resize(rgb, (299, 299)) * 2 - 1).numpy()
    np.testing.assert_allclose(network.features(rgb), expected, rtol=1e-4, atol=1e-5)
    for missing in (f'{ram_dir}/nothing.h5', f'{ram_dir}/weights'):
        with pytest.raises(FileNotFoundError, match=f'{missing}: Inception-v3 weights file not'):
            fn.load_inception_v3(missing)
