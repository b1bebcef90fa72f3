"""A cheap fingerprint of a directory of many files: every file's name, size and modification
time, hashed. ExampleGen's own fingerprint covers the files its split patterns match, which for
CelebA is the partition file alone (matching 202,599 JPEGs would stat each on every pipeline
build); this one lets a replaced or touched image re-run ingestion instead of reusing a cache
that skipped it."""

import concurrent.futures
import hashlib
import os

# Files stat'ed per task: large enough that the pool's overhead does not dominate, small enough
# that remote file systems (one request per stat) keep every thread busy.
_CHUNK = 2048
_THREADS = 32


def _local_stats(directory: str, names) -> list[tuple[int, int]]:
    return [
        (s.st_size, s.st_mtime_ns) for s in (os.stat(os.path.join(directory, n)) for n in names)
    ]


def _gfile_stats(directory: str, names) -> list[tuple[int, int]]:
    import tensorflow as tf

    return [
        (s.length, s.mtime_nsec)
        for s in (tf.io.gfile.stat(f'{directory.rstrip("/")}/{n}') for n in names)
    ]


def directory_fingerprint(directory: str, names=None) -> str:
    """'<n> files, <bytes> bytes, sha256 <digest of name, size, mtime per file>' of the files
    `names` (paths relative to directory; None: every entry of the directory); stats run in
    parallel threads (a stat releases the GIL; on remote file systems it is a request)."""
    if '://' in directory:
        import tensorflow as tf

        names = tf.io.gfile.listdir(directory) if names is None else names
        stats = _gfile_stats
    else:
        names = os.listdir(directory) if names is None else names
        stats = _local_stats
    names = sorted(names)
    chunks = [names[i : i + _CHUNK] for i in range(0, len(names), _CHUNK)]
    digest, total = hashlib.sha256(), 0
    with concurrent.futures.ThreadPoolExecutor(_THREADS) as pool:
        for chunk, chunk_stats in zip(
            chunks, pool.map(lambda c: stats(directory, c), chunks), strict=True
        ):
            for name, (size, mtime) in zip(chunk, chunk_stats, strict=True):
                digest.update(f'{name}\t{size}\t{mtime}\n'.encode())
                total += size
    return f'{len(names)} files, {total} bytes, sha256 {digest.hexdigest()}'
