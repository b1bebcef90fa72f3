"""The GPU install path: requirements-gpu.lock is the CPU lock plus exactly the CUDA libraries
of TensorFlow's and-cuda extra, and scripts/choose_lock.sh picks the set make setup installs."""

import importlib.metadata
import os
import re
import subprocess

import pytest

from pipeline import configs

REPO = configs.PROJECT_ROOT


def pins(name):
    with open(os.path.join(REPO, name)) as f:
        return dict(
            line.strip().lower().split('==') for line in f if re.match(r'^[A-Za-z0-9].*==', line)
        )


def test_gpu_lock_is_the_cpu_lock_plus_tensorflows_cuda_libraries():
    cpu, gpu = pins('requirements.lock'), pins('requirements-gpu.lock')
    assert {name: gpu.get(name) for name in cpu} == cpu  # every CPU pin, at its version
    added = {name: version for name, version in gpu.items() if name not in cpu}
    # The and-cuda extra of the TensorFlow installed here (requirements.lock's).
    extra = {}
    for requirement in importlib.metadata.requires('tensorflow'):
        match = re.match(r"([\w-]+) ?==([\w.]+) ?; extra == 'and-cuda'", requirement)
        if match:
            extra[match.group(1).lower()] = match.group(2)
    assert {'nvidia-cudnn-cu12', 'nvidia-cublas-cu12', 'nvidia-nccl-cu12'} <= set(extra)
    assert added == extra


def test_gpu_requirements_are_the_cpu_ones_with_the_same_tensorflows_cuda_extra():
    with open(os.path.join(REPO, 'requirements-gpu.txt')) as f:
        lines = [line.strip() for line in f if line.strip() and not line.startswith('#')]
    assert lines == [
        '-r requirements.txt',
        f'tensorflow[and-cuda]=={pins("requirements.txt")["tensorflow"]}',
    ]


@pytest.fixture
def choose(tmp_path):
    """Runs choose_lock.sh for a .venv at tmp_path/venv, with an nvidia-smi on PATH that lists a
    GPU (gpu=True), fails (False) or is absent (None); returns (stdout, stderr, status)."""

    def run(gpu_env=None, gpu=None, recorded=None):
        venv, bin_dir = tmp_path / 'venv', tmp_path / 'bin'
        venv.mkdir(exist_ok=True)
        bin_dir.mkdir(exist_ok=True)
        (venv / '.lock-file').unlink(missing_ok=True)
        if recorded:
            (venv / '.lock-file').write_text(recorded + '\n')
        smi = bin_dir / 'nvidia-smi'
        smi.unlink(missing_ok=True)
        if gpu is not None:
            smi.write_text(
                '#!/bin/sh\necho "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)"\n'
                if gpu
                else '#!/bin/sh\necho "NVIDIA-SMI has failed" >&2; exit 9\n'
            )
            smi.chmod(0o755)
        env = {'PATH': f'{bin_dir}:/usr/bin:/bin'}
        if gpu_env is not None:
            env['GPU'] = gpu_env
        out = subprocess.run(
            ['bash', os.path.join(REPO, 'scripts', 'choose_lock.sh'), str(venv)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        return out.stdout.strip(), out.stderr.strip(), out.returncode

    return run


def test_lock_choice(choose):
    assert choose() == ('requirements.lock', '', 0)  # no driver
    assert choose(gpu=False) == ('requirements.lock', '', 0)  # a driver that finds no GPU
    lock, said, _ = choose(gpu=True)
    assert lock == 'requirements-gpu.lock' and 'nvidia-smi lists a GPU' in said
    assert choose(gpu_env='0', gpu=True) == ('requirements.lock', '', 0)
    lock, said, _ = choose(gpu_env='1')
    assert lock == 'requirements-gpu.lock' and 'lists no GPU' in said
    assert choose(gpu_env='1', gpu=True) == ('requirements-gpu.lock', '', 0)
    # An existing .venv keeps its set until GPU= says otherwise.
    assert choose(gpu=True, recorded='requirements.lock') == ('requirements.lock', '', 0)
    assert choose(recorded='requirements-gpu.lock') == ('requirements-gpu.lock', '', 0)
    _, said, status = choose(gpu_env='yes')
    assert status == 2 and said == (
        "setup: GPU=yes: expected GPU=1 (TensorFlow's CUDA libraries) or GPU=0"
    )
