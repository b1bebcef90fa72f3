"""One run at a time per set of outputs, and what a killed run leaves behind.

Two runs writing the same ML Metadata store, pipeline root (the Trainer's checkpoints) or serving
directory would corrupt each other: one run's cleanup deletes the other's checkpoint, both push.
A run therefore holds each of them for as long as it runs; a second run refuses with the
holder's process id, or waits (--wait). A local path is held by an flock, which the kernel
releases when the process ends however it ends, on a file in a directory of its own beside the
path (.nvae-tfx-locks/), where it cannot clobber a file of the user's. A remote one (gs://) is
held by a lease (nvae_tfx/leases.py), which another machine's run sees too.

Holding the locks also proves that no other run is alive, so executions that ML Metadata still
records as RUNNING were left by a run that was killed: they are marked CANCELED with a note.
"""

import contextlib
import datetime
import fcntl
import os

LOCK_DIRECTORY = '.nvae-tfx-locks'
# The custom property that says why an execution was marked CANCELED.
ABANDONED_PROPERTY = 'abandoned'


class Busy(RuntimeError):
    """Another run holds a lock on these outputs."""


def lock_file(path: str) -> str:
    """The lock of a local file or directory: in a directory of its own beside it (never inside
    a serving directory, whose entries are model versions)."""
    path = os.path.abspath(path).rstrip(os.sep)
    return os.path.join(os.path.dirname(path), LOCK_DIRECTORY, os.path.basename(path) + '.lock')


def _busy(path: str, holder: str) -> Busy:
    return Busy(
        f'{path} is in use by another run ({holder}); wait for it to finish, run again with '
        '--wait, or choose other outputs'
    )


@contextlib.contextmanager
def hold(paths, wait: bool = False):
    """Holds every path in `paths` for the block. Raises Busy naming the path and the process
    that holds it, unless `wait`."""
    paths = sorted({p for p in paths if p})  # one order: no deadlock
    with contextlib.ExitStack() as stack:
        for path in paths:
            if '://' in path:
                stack.enter_context(_lease(path, wait))
            else:
                stack.enter_context(_flock(path, wait))
        yield


@contextlib.contextmanager
def _flock(path: str, wait: bool):
    name = lock_file(path)
    os.makedirs(os.path.dirname(name), exist_ok=True)
    with open(name, 'a+') as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            f.seek(0)
            raise _busy(path, f.read().strip() or 'another process') from None
        f.seek(0)
        f.truncate()
        started = datetime.datetime.now().isoformat(timespec='seconds')
        f.write(f'process {os.getpid()}, started {started}\n')
        f.flush()
        yield


@contextlib.contextmanager
def _lease(uri: str, wait: bool):
    from nvae_tfx import leases  # imports TensorFlow: only for remote outputs

    lease = leases.Lease(uri, note='a pipeline run', wait_s=float('inf') if wait else 0.0)
    try:
        lease.acquire()
    except leases.Held as e:
        raise _busy(uri, e.holder_text) from None
    try:
        yield
    finally:
        lease.release()


def cancel_abandoned_executions(store, pipeline_name: str) -> list:
    """Marks this pipeline's executions that are still RUNNING as CANCELED, with a note; call
    only while holding the locks. Returns the executions changed."""
    from ml_metadata.proto import metadata_store_pb2

    state = metadata_store_pb2.Execution.State
    pipeline = store.get_context_by_type_and_name('pipeline', pipeline_name)
    if pipeline is None:
        return []
    abandoned = [
        e
        for e in store.get_executions_by_context(pipeline.id)
        if e.last_known_state == state.RUNNING
    ]
    now = datetime.datetime.now().isoformat(timespec='seconds')
    for execution in abandoned:
        execution.last_known_state = state.CANCELED
        execution.custom_properties[ABANDONED_PROPERTY].string_value = (
            f'left RUNNING by a run that ended without finishing it (killed?); marked CANCELED '
            f'by the next run of {pipeline_name} at {now}'
        )
    if abandoned:
        store.put_executions(abandoned)
    return abandoned
