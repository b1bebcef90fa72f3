"""The code each of the project's components runs, hashed into its cache key.

TFX keys a component's cache on its inputs and settings, not on the code it imports; a module
file's hash covers only that file's directory, and code imported from the installed project
(Airflow, the container image) is not hashed at all. Each component therefore gets the hash of
exactly the project modules its entry module imports, directly or through other modules (read
from their import statements, those inside functions included): editing evaluation code reruns
the Evaluator and leaves the Trainer's cache as it is, and editing model code reruns both.
"""

import ast
import hashlib
import os

from pipeline import configs

PACKAGES = ('components', 'model_code', 'nvae_tfx')  # the code that runs inside components
# {component id: its entry modules}: an executor, a module file, a component function.
ENTRY_MODULES = {
    'ImageExampleGen': ('components.example_gen.executor', 'components.example_gen.driver'),
    'ValidationGate': ('components.validation_gate',),
    'Transform': ('components.transform.preprocessing',),
    'Trainer': ('components.trainer.trainer_module',),
    'DigitClassifierTrainer': ('components.digit_classifier_trainer',),
    'GenerativeEvaluator': ('components.evaluator.executor',),
}


def _source(module: str, root: str) -> str | None:
    """The file of a project module or package, None if it is not one."""
    base = os.path.join(root, *module.split('.'))
    for path in (base + '.py', os.path.join(base, '__init__.py')):
        if os.path.isfile(path):
            return path
    return None


def _imported(module: str, path: str) -> set[str]:
    """Names of the modules (or module attributes) that the file imports, absolute."""
    with open(path, 'rb') as f:
        tree = ast.parse(f.read(), path)
    package = module if path.endswith('__init__.py') else module.rpartition('.')[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parent = package.split('.')[: len(package.split('.')) - node.level + 1]
                base = '.'.join(parent + ([base] if base else []))
            names.add(base)
            names.update(f'{base}.{alias.name}' for alias in node.names)
    return names


def module_closure(entry_modules, root: str = configs.PROJECT_ROOT) -> dict[str, str]:
    """{module: file} of the entry modules and every project module they import, with the
    packages whose __init__ runs on the way."""
    found, pending = {}, list(entry_modules)
    while pending:
        name = pending.pop()
        if name in found or name.split('.')[0] not in PACKAGES:
            continue
        parts = name.split('.')
        # A package's __init__ runs before any of its modules.
        pending.extend('.'.join(parts[:i]) for i in range(1, len(parts)))
        path = _source(name, root)
        if path is None:  # an attribute, e.g. `from nvae_tfx.options import TrainingOptions`
            continue
        found[name] = path
        pending.extend(_imported(name, path))
    return found


def fingerprint(component_id: str, root: str = configs.PROJECT_ROOT) -> str:
    """The hash of the code the component runs: its modules' names and contents."""
    digest = hashlib.sha256()
    for name, path in sorted(module_closure(ENTRY_MODULES[component_id], root).items()):
        with open(path, 'rb') as f:
            digest.update(name.encode() + b'\0' + f.read() + b'\0')
    return digest.hexdigest()[:16]
