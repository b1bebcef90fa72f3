"""The runners' and tools' flag parser: a bad flag is one line, like every other error."""

import argparse


class FlagParser(argparse.ArgumentParser):
    """A bad flag is one line, `error: ...` (exit status 2), like every other error a runner
    reports; --help shows the usage."""

    def error(self, message):
        self.exit(2, f'error: {message} (--help lists the flags)\n')
