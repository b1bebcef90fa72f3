"""The one error type for bad input data: it always names the file and the problem."""


class DataError(ValueError):
    """Raised when an input file or directory is missing, malformed or inconsistent."""

    def __init__(self, path: str, problem: str):
        super().__init__(f'{path}: {problem}')
        self.path = path
        self.problem = problem
