"""Headless Chromium (Debian's package, /usr/bin/chromium) driven over the Chrome DevTools
protocol on a pipe (--remote-debugging-pipe: commands on the browser's fd 3, replies on its fd 4,
each message JSON ended by a NUL byte): no port, no browser download, no client package.

  python -m tests.support.chromium PAGE.html SCREENSHOT.png [HEIGHT]

writes a screenshot of a local page, whole or its top HEIGHT pixels.
"""

import base64
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time

CHROMIUM = '/usr/bin/chromium'
# Offline and reproducible: no GPU, no first-run UI, no updates, sync or background requests.
FLAGS = (
    '--headless',
    '--no-sandbox',  # required as root
    '--disable-gpu',
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-extensions',
    '--hide-scrollbars',
    '--remote-debugging-pipe',
)


class BrowserError(RuntimeError):
    pass


def _high_fd(fd: int) -> int:
    """A copy of fd numbered 10 or above, so that moving the pipe ends to 3 and 4 in the child
    cannot overwrite one another."""
    copy = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return copy


class Chromium:
    """One headless browser with one page; use as a context manager."""

    def __init__(self, width: int = 1280, height: int = 900, timeout_s: float = 60):
        if not os.access(CHROMIUM, os.X_OK):
            raise BrowserError(f'{CHROMIUM} is missing: `make setup-browser` installs it')
        self.width, self.height, self.timeout_s = width, height, timeout_s
        self._profile = tempfile.TemporaryDirectory(prefix='chromium-profile-')
        commands_read, commands_write = (_high_fd(fd) for fd in os.pipe())
        replies_read, replies_write = (_high_fd(fd) for fd in os.pipe())

        def child_fds():
            os.dup2(commands_read, 3)
            os.dup2(replies_write, 4)

        self._process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f'--user-data-dir={self._profile.name}', 'about:blank'],
            # 3 and 4 are kept open in the child: they are the pipe ends child_fds placed there.
            pass_fds=(3, 4, commands_read, replies_write),
            preexec_fn=child_fds,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.close(commands_read)
        os.close(replies_write)
        self._commands = os.fdopen(commands_write, 'wb', buffering=0)
        self._replies = os.fdopen(replies_read, 'rb', buffering=0)
        self._buffer = b''
        self._next_id = 0
        self.events = []  # every event received, in order: {'method', 'params', 'sessionId'}
        self._waited = 0  # events before this index were consumed by wait_for_event
        target = self.send('Target.createTarget', url='about:blank')['targetId']
        self._session = self.send('Target.attachToTarget', targetId=target, flatten=True)[
            'sessionId'
        ]
        for domain in ('Page', 'Runtime', 'Network'):
            self.send(f'{domain}.enable', session=True)
        self.send(
            'Emulation.setDeviceMetricsOverride',
            session=True,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                self.send('Browser.close')
            except (BrowserError, OSError):
                pass
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._commands.close()
        self._replies.close()
        self._process.stderr.close()
        self._profile.cleanup()

    # --- protocol --------------------------------------------------------------------------

    def send(self, method: str, session: bool = False, **params) -> dict:
        """Sends one command and returns its result; events that arrive first are kept."""
        self._next_id += 1
        message = {'id': self._next_id, 'method': method, 'params': params}
        if session:
            message['sessionId'] = self._session
        self._commands.write(json.dumps(message).encode() + b'\0')
        while True:
            reply = self._receive()
            if reply.get('id') == self._next_id:
                if 'error' in reply:
                    raise BrowserError(f'{method}: {reply["error"]}')
                return reply['result']
            if 'method' in reply:
                self.events.append(reply)

    def _receive(self) -> dict:
        deadline = time.monotonic() + self.timeout_s
        while b'\0' not in self._buffer:
            if time.monotonic() > deadline:
                raise BrowserError(f'no reply from Chromium within {self.timeout_s} s')
            chunk = self._replies.read(1 << 16)
            if not chunk:
                stderr = self._process.stderr.read().decode(errors='replace')
                raise BrowserError(f'Chromium exited: {stderr.strip()[-2000:]}')
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b'\0', 1)
        return json.loads(message)

    def wait_for_event(self, method: str) -> dict:
        """The first event `method` received after the one the last wait returned."""
        while True:
            for i in range(self._waited, len(self.events)):
                if self.events[i]['method'] == method:
                    self._waited = i + 1
                    return self.events[i]['params']
            self.events.append(self._receive())

    # --- page ------------------------------------------------------------------------------

    def open(self, path: str) -> None:
        """Loads a local file and waits for its load event (every image decoded or failed);
        requested_urls: every URL the page requested."""
        start = len(self.events)
        result = self.send('Page.navigate', session=True, url='file://' + os.path.abspath(path))
        if result.get('errorText'):
            raise BrowserError(f'{path}: {result["errorText"]}')
        self.wait_for_event('Page.loadEventFired')
        self.requested_urls = [
            e['params']['request']['url']
            for e in self.events[start:]
            if e['method'] == 'Network.requestWillBeSent'
        ]

    def evaluate(self, expression: str):
        """The JSON value of a JavaScript expression evaluated in the page."""
        result = self.send(
            'Runtime.evaluate', session=True, expression=expression, returnByValue=True
        )
        if 'exceptionDetails' in result:
            raise BrowserError(f'{expression[:80]}: {result["exceptionDetails"]}')
        return result['result'].get('value')

    def screenshot(self, path: str, max_height: int = 0) -> tuple[int, int]:
        """A PNG of the whole page (or of its top max_height pixels) at the window's width;
        returns its (width, height) in pixels."""
        size = self.send('Page.getLayoutMetrics', session=True)['cssContentSize']
        width, height = self.width, int(size['height'])
        if max_height:
            height = min(height, max_height)
        data = self.send(
            'Page.captureScreenshot',
            session=True,
            format='png',
            captureBeyondViewport=True,
            clip={'x': 0, 'y': 0, 'width': width, 'height': height, 'scale': 1},
        )['data']
        with open(path, 'wb') as f:
            f.write(base64.b64decode(data))
        return width, height


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3):
        sys.exit('usage: python -m tests.support.chromium PAGE.html SCREENSHOT.png [HEIGHT]')
    with Chromium() as browser:
        browser.open(argv[0])
        width, height = browser.screenshot(argv[1], int(argv[2]) if len(argv) == 3 else 0)
    print(f'{argv[1]}: {width}x{height}')


if __name__ == '__main__':
    main()
