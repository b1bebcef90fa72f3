"""The documentation stays what the code and the measurements make it: the measurements page is
generated from bench/results.jsonl, README stays a short entry page, and every page and picture
a page links to exists."""

import os
import re

from bench import measurements
from pipeline import configs

DOCS = os.path.join(configs.PROJECT_ROOT, 'docs')
# A project file named in a code span: `tests/unit/test_docs.py`.
FILE_NAME = r'`([a-z_]+/[\w/.-]+\.(?:py|sh|md|jsonl|json|txt|lock))(?!\w)'


def pages():
    yield os.path.join(configs.PROJECT_ROOT, 'README.md')
    for name in sorted(os.listdir(DOCS)):
        if name.endswith('.md'):
            yield os.path.join(DOCS, name)


def test_the_measurements_page_is_generated_from_the_results():
    assert measurements.main(['--check']) == 0, 'run: python -m bench.measurements'


def test_readme_is_an_entry_page():
    with open(os.path.join(configs.PROJECT_ROOT, 'README.md')) as f:
        assert len(f.read().splitlines()) <= 180


def test_every_local_link_and_picture_exists():
    missing = []
    for page in pages():
        with open(page) as f:
            text = f.read()
        targets = re.findall(r'\]\(([^)#\s]+)', text) + re.findall(r'<img src="([^"]+)"', text)
        for target in targets:
            if '://' in target:
                continue
            if not os.path.exists(os.path.join(os.path.dirname(page), target)):
                missing.append(f'{os.path.relpath(page, configs.PROJECT_ROOT)}: {target}')
    assert not missing, missing


def test_every_project_file_a_page_names_exists():
    """`tests/...py`, `bench/...py` and the like, named in code spans: moved or deleted files
    leave no stale names behind."""
    tops = ('tests/', 'bench/', 'pipeline/', 'components/', 'nvae_tfx/', 'model_code/', 'scripts/')
    missing = []
    for page in pages():
        with open(page) as f:
            text = f.read()
        for name in re.findall(FILE_NAME, text):
            if name.startswith(tops) and not os.path.exists(
                os.path.join(configs.PROJECT_ROOT, name)
            ):
                missing.append(f'{os.path.relpath(page, configs.PROJECT_ROOT)}: {name}')
    assert not missing, missing
