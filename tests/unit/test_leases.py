"""Leases on a directory (nvae_tfx/leases.py): one holder at a time, across processes and
machines; a holder that died is replaced, a live one is waited for or refused."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from nvae_tfx import leases


def other_machines_lease(directory, age_s: float, name='other'):
    """A lease file as another machine's live (or expired) holder leaves it."""
    path = directory / leases.LEASES / f'{name}.json'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({'id': name, 'host': 'elsewhere', 'pid': 1, 'note': 'job 7'}))
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def test_one_holder_at_a_time_and_the_next_after_release(tmp_path):
    first = leases.Lease(str(tmp_path), note='first', wait_s=0)
    with first:
        with pytest.raises(leases.Held, match=f'process {os.getpid()} on .*, first'):
            leases.Lease(str(tmp_path), wait_s=0).acquire()
    assert os.listdir(tmp_path / leases.LEASES) == []
    with leases.Lease(str(tmp_path), wait_s=0):
        pass


def test_a_waiting_process_gets_the_directory_when_the_holder_releases_it(tmp_path):
    holder = leases.Lease(str(tmp_path), wait_s=0)
    holder.acquire()
    got = []

    def second():
        with leases.Lease(str(tmp_path), wait_s=30, poll_s=0.1):
            got.append(time.time())

    waiting = threading.Thread(target=second)
    waiting.start()
    time.sleep(0.5)
    assert got == []
    released = time.time()
    holder.release()
    waiting.join(10)
    assert got and got[0] >= released


def test_a_killed_holder_on_this_machine_is_replaced_at_once(tmp_path):
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True)  # fmt: skip
    path = other_machines_lease(tmp_path, age_s=0, name='dead')
    holder = json.loads(path.read_text())
    path.write_text(json.dumps({**holder, 'host': leases.socket.gethostname(),
                                'pid': int(dead.stdout)}))  # fmt: skip
    with leases.Lease(str(tmp_path), wait_s=0):
        assert not path.exists()  # removed on the way


def test_another_machines_holder_is_live_until_its_lease_expires(tmp_path):
    other_machines_lease(tmp_path, age_s=5)
    with pytest.raises(leases.Held, match='process 1 on elsewhere, job 7; its lease was renewed'):
        leases.Lease(str(tmp_path), ttl_s=60, wait_s=0).acquire()
    other_machines_lease(tmp_path, age_s=90)  # not renewed for longer than the ttl
    with leases.Lease(str(tmp_path), ttl_s=60, wait_s=0):
        pass


def test_the_holder_renews_its_lease(tmp_path):
    with leases.Lease(str(tmp_path), ttl_s=0.4, wait_s=0) as lease:
        path = lease.path.replace('file://', '')
        first = os.stat(path).st_mtime_ns
        time.sleep(0.5)
        assert os.stat(path).st_mtime_ns > first
