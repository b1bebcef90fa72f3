"""A Google Cloud Storage on this machine, shared by every process a test starts: gs:// offline.

The data lives in gcp-storage-emulator (a Python implementation of the Cloud Storage JSON API)
served here. Each client that the pipeline uses reaches it with its production code path:

* google-cloud-storage (Beam's gcsio) honours STORAGE_EMULATOR_HOST.
* TensorFlow's own GCS file system (tf.io.gfile, TFRecord readers and writers, SavedModel) has
  its endpoints compiled in (https://www.googleapis.com for the JSON API and uploads,
  https://storage.googleapis.com for reads) and no setting to move them, but it talks through
  libcurl, which honours the proxy variables and CURL_CA_BUNDLE. A forward proxy here answers
  for those two hosts only: CONNECT with TLS under a certificate from a certificate authority
  made for this server, and plain-HTTP requests (the emulator's upload-session URLs are
  http://) forwarded as an origin server would receive them. Any other host is refused, so a
  client that tries to reach the internet fails loudly instead of hanging.
* Credentials: TensorFlow takes GOOGLE_AUTH_TOKEN_FOR_TESTING; google-auth (Beam, the storage
  client) loads a service-account key file whose token endpoint is this proxy.

Usage: ``with LocalGcs(tmp_dir) as gcs: gcs.create_bucket('b'); env = gcs.environment()`` and run
processes with ``env``; ``gcs.activate()`` sets it in this process too.
"""

import datetime
import functools
import http.server
import io
import json
import logging
import os
import select
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import urllib.parse
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from gcp_storage_emulator import server as emulator_server
from gcp_storage_emulator.handlers import objects as emulator_objects
from gcp_storage_emulator.storage import Storage

# The hosts TensorFlow's GCS file system sends requests to.
GOOGLE_STORAGE_HOSTS = ('www.googleapis.com', 'storage.googleapis.com')
TOKEN_PATH = '/token'
PROJECT = 'local-gcs'
IDLE_SECONDS = 120  # a relayed connection with no traffic for this long is closed

# One request at a time reaches the emulator's store, which rewrites its whole index on every
# change and is not written for concurrent use.
_STORE_LOCK = threading.Lock()


class _EmulatorHandler(emulator_server.RequestHandler):
    """The emulator's request handler, given each request's whole body first.

    libcurl uploads TensorFlow's files with both a Content-Length header and chunked transfer
    encoding, where chunked encoding rules (RFC 9112 6.3); the emulator reads Content-Length
    bytes. The body is read here by the standard's rule, before the store's lock is taken, and
    handed to the emulator with its length.
    """

    def _dispatch(self, handle):
        if self.headers.get('Expect', '').lower() == '100-continue':
            # Else libcurl waits a second before each upload's body.
            self.wfile.write(b'HTTP/1.1 100 Continue\r\n\r\n')
            self.wfile.flush()
        body = _request_body(self)
        del self.headers['Transfer-Encoding']
        del self.headers['Content-Length']
        self.headers['Content-Length'] = str(len(body))
        self.rfile = io.BytesIO(body)
        with _STORE_LOCK:
            handle(self)

    def do_GET(self):
        self._dispatch(emulator_server.RequestHandler.do_GET)

    def do_POST(self):
        self._dispatch(emulator_server.RequestHandler.do_POST)

    def do_PUT(self):
        self._dispatch(emulator_server.RequestHandler.do_PUT)

    def do_PATCH(self):
        self._dispatch(emulator_server.RequestHandler.do_PATCH)

    def do_DELETE(self):
        self._dispatch(emulator_server.RequestHandler.do_DELETE)

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


def _request_body(handler) -> bytes:
    if 'chunked' in handler.headers.get('Transfer-Encoding', '').lower():
        chunks = []
        while size := int(handler.rfile.readline().split(b';')[0].strip() or b'0', 16):
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        while handler.rfile.readline() not in (b'\r\n', b'\n', b''):  # trailer fields
            pass
        return b''.join(chunks)
    return handler.rfile.read(int(handler.headers.get('Content-Length') or 0))


def _media_upload_of_empty_objects(upload):
    """The emulator reads an empty request body as None, and its simple ('media') upload then
    fails on len(None); TensorFlow writes directory markers (empty objects) that way."""

    @functools.wraps(upload)
    def run(request, response, storage):
        if request.data is None:
            request._data = b''
        return upload(request, response, storage)

    return run


emulator_objects._media_upload = _media_upload_of_empty_objects(emulator_objects._media_upload)


class _ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self, emulator_address, tls_context):
        super().__init__(('127.0.0.1', 0), _ProxyHandler)
        self.emulator_address = emulator_address
        self.tls_context = tls_context


class _ProxyHandler(socketserver.BaseRequestHandler):
    def handle(self):
        head, rest = _read_head(self.request)
        if head is None:
            return
        request_line, _, headers = head.partition(b'\r\n')
        try:
            method, target, version = request_line.decode('latin-1').split()
        except ValueError:
            return
        if method == 'CONNECT':
            host, _, port = target.rpartition(':')
            if host not in GOOGLE_STORAGE_HOSTS or port != '443':
                return self._answer('403 Forbidden', f'no route to {target} (offline test)')
            self.request.sendall(b'HTTP/1.1 200 Connection established\r\n\r\n')
            client = self.server.tls_context.wrap_socket(self.request, server_side=True)
            with socket.create_connection(self.server.emulator_address) as upstream:
                _relay(client, upstream)
        elif target.startswith('http://'):
            url = urllib.parse.urlsplit(target)
            if url.hostname not in GOOGLE_STORAGE_HOSTS:
                return self._answer('403 Forbidden', f'no route to {target} (offline test)')
            path = url.path + (f'?{url.query}' if url.query else '')
            with socket.create_connection(self.server.emulator_address) as upstream:
                line = f'{method} {path} {version}\r\n'.encode('latin-1')
                upstream.sendall(line + headers + b'\r\n\r\n' + rest)
                _relay(self.request, upstream)
        elif method == 'POST' and target == TOKEN_PATH:
            # The token request's small form body is not needed: every token is the same.
            self._answer(
                '200 OK',
                json.dumps(
                    {'access_token': 'local-gcs', 'expires_in': 3600, 'token_type': 'Bearer'}
                ),
                'application/json',
            )
        else:
            self._answer('403 Forbidden', f'no route to {target} (offline test)')

    def _answer(self, status, body, content_type='text/plain'):
        body = body.encode()
        self.request.sendall(
            f'HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n'
            f'Content-Length: {len(body)}\r\nConnection: close\r\n\r\n'.encode()
            + body
        )


def _read_head(sock):
    """(request line and headers, bytes after them) of the request on sock; (None, b'') at EOF."""
    data = b''
    while b'\r\n\r\n' not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b''
        data += chunk
    head, _, rest = data.partition(b'\r\n\r\n')
    return head, rest


def _relay(client, upstream):
    """Copies bytes both ways until either side closes (the emulator answers HTTP/1.0 and
    closes after each response)."""
    sockets = [client, upstream]
    while True:
        ready = [s for s in sockets if isinstance(s, ssl.SSLSocket) and s.pending()]
        if not ready:
            ready, _, _ = select.select(sockets, [], [], IDLE_SECONDS)
            if not ready:
                return
        for source in ready:
            try:
                data = source.recv(65536)
            except (ConnectionError, ssl.SSLError):
                return
            if not data:
                return
            (upstream if source is client else client).sendall(data)


def _certificates(directory):
    """(CA certificate file, TLS context serving the storage hosts under a certificate it
    signed); the CA exists only for this server."""
    now = datetime.datetime.now(datetime.timezone.utc)
    valid = dict(
        not_valid_before=now - datetime.timedelta(hours=1),
        not_valid_after=now + datetime.timedelta(days=2),
    )

    def name(common_name):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder(**valid)
        .subject_name(name('local GCS test CA'))
        .issuer_name(name('local GCS test CA'))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder(**valid)
        .subject_name(name(GOOGLE_STORAGE_HOSTS[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(h) for h in GOOGLE_STORAGE_HOSTS]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = os.path.join(directory, 'ca.pem')
    chain_file = os.path.join(directory, 'server.pem')
    with open(ca_file, 'wb') as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(chain_file, 'wb') as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain_file)
    return ca_file, context


def _service_account(token_uri: str) -> dict:
    """A service-account key file whose token endpoint is this proxy (google-auth takes the
    endpoint from the file only for service accounts)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        'type': 'service_account',
        'project_id': PROJECT,
        'private_key_id': 'local-gcs',
        'private_key': pem.decode(),
        'client_email': f'local-gcs@{PROJECT}.iam.gserviceaccount.com',
        'client_id': '0',
        'token_uri': token_uri,
    }


def serve(directory: str):
    """Serves until standard input closes; the first line on standard output is the
    environment (JSON) that reaches this storage."""
    logging.basicConfig(level=logging.ERROR)  # the emulator logs every response at WARNING
    os.makedirs(directory, exist_ok=True)
    emulator = _ThreadingServer(
        ('127.0.0.1', 0), functools.partial(_EmulatorHandler, Storage(use_memory_fs=True))
    )
    ca_file, tls_context = _certificates(directory)
    proxy = _ProxyServer(emulator.server_address, tls_context)
    for server in (emulator, proxy):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    emulator_url = 'http://{}:{}'.format(*emulator.server_address)
    proxy_url = 'http://{}:{}'.format(*proxy.server_address)
    credentials = os.path.join(directory, 'service_account.json')
    with open(credentials, 'w') as f:
        json.dump(_service_account(token_uri=proxy_url + TOKEN_PATH), f)
    local = '127.0.0.1,localhost'
    environment = {
        'STORAGE_EMULATOR_HOST': emulator_url,
        'GOOGLE_APPLICATION_CREDENTIALS': credentials,
        'GOOGLE_CLOUD_PROJECT': PROJECT,
        'GOOGLE_AUTH_TOKEN_FOR_TESTING': 'local-gcs',
        'NO_GCE_CHECK': 'true',
        'CURL_CA_BUNDLE': ca_file,
        'https_proxy': proxy_url,
        'HTTPS_PROXY': proxy_url,
        'http_proxy': proxy_url,
        'HTTP_PROXY': proxy_url,
        'no_proxy': local,
        'NO_PROXY': local,
    }
    print(json.dumps(environment), flush=True)
    sys.stdin.read()


class LocalGcs:
    """The storage, served by a process of its own (TensorFlow holds the interpreter lock in
    some calls, so it must not serve requests from the process it runs in)."""

    def __init__(self, directory: str):
        self._directory = directory
        self._process = None
        self._saved = {}

    def start(self) -> 'LocalGcs':
        self._process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), self._directory],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f'local GCS server exited with {self._process.wait()}')
        self._environment = json.loads(line)
        return self

    def environment(self) -> dict:
        """The variables a process needs to reach this storage at gs://."""
        return dict(self._environment)

    def activate(self):
        """Sets the environment in this process (the previous values come back at stop())."""
        self._saved = {name: os.environ.get(name) for name in self._environment}
        os.environ.update(self._environment)

    def create_bucket(self, name: str):
        request = urllib.request.Request(
            self._environment['STORAGE_EMULATOR_HOST'] + '/storage/v1/b',
            data=json.dumps({'name': name}).encode(),
            headers={'Content-Type': 'application/json'},
            method='POST',
        )
        with urllib.request.urlopen(request) as response:
            if response.status != 200:
                raise RuntimeError(f'cannot create bucket {name}: HTTP {response.status}')

    def stop(self):
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved = {}
        if self._process is not None:
            self._process.stdin.close()
            self._process.wait(timeout=30)
            self._process.stdout.close()
            self._process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == '__main__':
    serve(sys.argv[1])
