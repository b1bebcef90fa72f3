"""Machine description and the shared results file for every benchmark in bench/."""

import datetime
import json
import os
import platform

RESULTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results.jsonl')


def machine_info() -> dict:
    cpu = platform.processor()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    mem_gb = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30
    # The 1-minute load average when the result is recorded shows whether other work shared the CPU.
    return {
        'host': platform.node(),
        'cpu': cpu,
        'cores': os.cpu_count(),
        'memory_gb': round(mem_gb, 1),
        'python': platform.python_version(),
        'load_average_1m': round(os.getloadavg()[0], 2),
    }


def append_result(record: dict, path: str = RESULTS_FILE) -> dict:
    """Adds time and machine to a benchmark record, appends it to `path` (results.jsonl),
    returns it."""
    record = {
        'time': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'machine': machine_info(),
        **record,
    }
    with open(path, 'a') as f:
        f.write(json.dumps(record) + '\n')
    return record
