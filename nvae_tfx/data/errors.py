"""The one error type for bad input data: it always names the file and the problem."""

import re

# '<_io.BytesIO object at 0x7f...>' and the like: a process's memory addresses mean nothing in a
# report and make identical problems look different.
_OBJECT_REPR = re.compile(r'\s*<[^<>]* at 0x[0-9a-fA-F]+>')


class DataError(ValueError):
    """Raised when an input file or directory is missing, malformed or inconsistent."""

    def __init__(self, path: str, problem: str):
        problem = _OBJECT_REPR.sub('', problem)
        super().__init__(f'{path}: {problem}')
        self.path = path
        self.problem = problem

    def __reduce__(self):  # picklable across Beam's worker processes
        return DataError, (self.path, self.problem)
