"""A 127.0.0.1 HTTP/1.1 server for the portable HTTP client's tests (CPython and the MicroPython unix port
reach it through $CLOUDBOOT_HTTPTEST): keep-alive, chunked and read-to-close bodies, redirects, Range, a
connection dropped mid-body, a silent server, and a registry-shaped blob path for the OCI resume test."""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BLOB = bytes((i * 131 + 7) % 251 for i in range(1 << 20))
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HttpTestServer

    def log_message(self, *a):
        pass

    def _send(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _blob(self, drop_after=None):
        start, status, headers = 0, 200, []
        rng = self.headers.get("Range", "")
        if rng.startswith("bytes=") and rng.endswith("-"):
            start, status = int(rng[6:-1]), 206
            headers.append(("Content-Range", f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}"))
        self.server.ranges.append(start)
        body = BLOB[start:]
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if drop_after is not None and start == 0:
            self.wfile.write(body[:drop_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def do_HEAD(self):  # noqa: N802
        self.do_GET()

    def do_GET(self):  # noqa: N802
        self.server.requests += 1
        path = self.path
        if path == "/hello":
            self._send(200, b"hello\n", [("Content-Type", "text/plain"), ("X-Twice", "a"), ("X-Twice", "b")])
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"first ", b"second " * 100, b"third"):
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
        elif path == "/close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until the end")
            self.close_connection = True
        elif path == "/redirect":
            self._send(302, b"", [("Location", "/hello")])
        elif path == "/blob":
            self._blob()
        elif path.startswith("/v2/r/blobs/"):
            self._blob(drop_after=300000)
        elif path == "/slow":
            time.sleep(3)
            self._send(200, b"late")
        elif path == "/count":
            self._send(200, str(self.server.connections).encode())
        else:
            self._send(404, b"no such path")

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._send(200, hashlib.sha256(body).hexdigest().encode())

    def setup(self):
        super().setup()
        self.server.connections += 1


class HttpTestServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests = self.connections = 0
        self.ranges: list[int] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"
