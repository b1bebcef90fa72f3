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
    ('pipeline/configs.py', 'code_fingerprint', 'glob.glob'): (
        "the project's source files, hashed where the pipeline is built"
    ),
    ('pipeline/configs.py', 'code_fingerprint', 'open'): (
        "the project's source files, hashed where the pipeline is built"
    ),
    ('pipeline/cli.py', 'local_path', 'os.path.abspath'): 'only paths that are not URIs',
    ('pipeline/cli.py', 'local_path', 'os.path.expanduser'): 'only paths that are not URIs',
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
