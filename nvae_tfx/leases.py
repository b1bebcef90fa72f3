"""Exclusive use of a directory on any file system tf.io.gfile reaches (local disk, gs://), by
processes that may run on different machines, as two resubmitted jobs do.

Cloud Storage has no locks, so a holder keeps a lease: a file of its own under
<directory>/.leases/, rewritten four times every ttl_s seconds while it holds the directory. A
lease is live while it was rewritten within ttl_s seconds, judged by the storage's own clock
(the files' modification times), or, on the same machine, while its process is alive. A process
takes the directory by writing its lease and then listing the others: if another is live, it
withdraws its own and waits for that one to end or expire (a holder that was killed stops
renewing). Two that write at once both withdraw and try again after random pauses; neither can
take the directory unseen by the other, given only that a file, once written, is listed, which
local disks and Cloud Storage guarantee.
"""

import json
import os
import random
import socket
import threading
import time
import uuid

import tensorflow as tf
from absl import logging

LEASES = '.leases'


class Held(RuntimeError):
    """Another process holds the directory; holder_text says which."""

    def __init__(self, message: str, holder_text: str):
        super().__init__(message)
        self.holder_text = holder_text


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lease:
    """with Lease(directory, note): ... holds the directory for the block.

    ttl_s: a lease not renewed for this long has expired; wait_s: how long to wait for another
    holder before raising Held (0: at once)."""

    def __init__(
        self,
        directory: str,
        note: str = '',
        ttl_s: float = 120.0,
        wait_s: float = 300.0,
        poll_s: float = 5.0,
    ):
        self.directory = directory.rstrip('/')
        self.ttl_s, self.wait_s, self.poll_s = ttl_s, wait_s, poll_s
        self.holder = {
            'id': uuid.uuid4().hex,
            'host': socket.gethostname(),
            'pid': os.getpid(),
            'note': note,
        }
        self.path = f'{self.directory}/{LEASES}/{self.holder["id"]}.json'
        self._stop = threading.Event()
        self._renewer = None

    def _write(self) -> None:
        with tf.io.gfile.GFile(self.path, 'w') as f:
            f.write(json.dumps(self.holder))

    def _leases(self) -> list[tuple[float, str, dict]]:
        """(modification time, file, holder) of every lease file, ours included."""
        found = []
        for name in tf.io.gfile.glob(f'{self.directory}/{LEASES}/*.json'):
            try:
                stat = tf.io.gfile.stat(name)
                with tf.io.gfile.GFile(name) as f:
                    found.append((stat.mtime_nsec / 1e9, name, json.loads(f.read())))
            except (tf.errors.NotFoundError, json.JSONDecodeError):
                continue  # released or half-written meanwhile
        return found

    def _live(self, mtime: float, holder: dict, now: float) -> bool:
        if holder.get('host') == self.holder['host']:
            return _alive(int(holder.get('pid', -1)))
        return now - mtime < self.ttl_s

    def _other_live_holder(self) -> dict | None:
        """A live lease other than ours, or None; leases certainly dead (their process ended,
        or long expired) are removed on the way."""
        leases = self._leases()
        ours = next((m for m, name, _ in leases if name == self.path), None)
        if ours is None:
            raise RuntimeError(f'{self.path}: the lease just written is not listed')
        for mtime, name, holder in leases:
            if name == self.path:
                continue
            if self._live(mtime, holder, now=ours):
                return {**holder, 'renewed_s_ago': round(max(ours - mtime, 0.0), 1)}
            if holder.get('host') == self.holder['host'] or ours - mtime > 10 * self.ttl_s:
                tf.io.gfile.remove(name)
        return None

    def acquire(self) -> None:
        tf.io.gfile.makedirs(f'{self.directory}/{LEASES}')
        deadline = time.time() + self.wait_s
        while True:
            self._write()
            other = self._other_live_holder()
            if other is None:
                break
            # Withdraw: two that write at once both see the other and both withdraw, then try
            # again after different pauses.
            tf.io.gfile.remove(self.path)
            if time.time() >= deadline:
                holder = (
                    f'process {other["pid"]} on {other["host"]}'
                    + (f', {other["note"]}' if other.get('note') else '')
                    + f'; its lease was renewed {other["renewed_s_ago"]} s ago'
                )
                raise Held(f'{self.directory} is in use by another process ({holder})', holder)
            logging.info('%s is in use by %s; waiting.', self.directory, other)
            time.sleep(self.poll_s * random.uniform(0.5, 1.5))
        self._renewer = threading.Thread(target=self._renew, daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            try:
                self._write()
            except Exception as e:  # noqa: BLE001  (a storage error: try again next time)
                logging.warning('Could not renew the lease %s: %s', self.path, e)

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        try:
            tf.io.gfile.remove(self.path)
        except tf.errors.NotFoundError:
            pass  # the directory was removed with it

    def __enter__(self) -> 'Lease':
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
