"""Times the fingerprint of a CelebA-sized image directory (nvae_tfx/data/fingerprint.py), which
ImageExampleGen's driver computes on every run of a CelebA directory source: 202,599 files by
default, each a few bytes (only names, sizes and times are read), stat'ed by 1 thread and by the
pool the fingerprint uses, side by side, cold directory cache aside.

  python -m bench.bench_fingerprint [--files 202599] [--reps 3]

Figures are printed and appended, with machine and config, to bench/results.jsonl.
"""

import argparse
import os
import statistics
import tempfile
import time
from unittest import mock

from bench.machine import append_result
from nvae_tfx.data import fingerprint


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--files', type=int, default=202_599)
    p.add_argument('--reps', type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        for i in range(1, args.files + 1):
            with open(os.path.join(directory, f'{i:06d}.jpg'), 'wb') as f:
                f.write(b'x' * (i % 7))
        seconds = {}
        for threads in (1, fingerprint._THREADS):
            times = []
            with mock.patch.object(fingerprint, '_THREADS', threads):
                for _ in range(args.reps):
                    started = time.perf_counter()
                    fingerprint.directory_fingerprint(directory)
                    times.append(time.perf_counter() - started)
            seconds[f'{threads}_threads'] = round(statistics.median(times), 3)
    record = append_result(
        {
            'benchmark': 'image_dir_fingerprint',
            'files': args.files,
            'reps': args.reps,
            'median_seconds': seconds,
            'ratio_1_thread_to_pool': round(
                seconds['1_threads'] / seconds[f'{fingerprint._THREADS}_threads'], 2
            ),
        }
    )
    print(record)


if __name__ == '__main__':
    main()
