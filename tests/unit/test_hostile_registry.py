"""The registry client against hostile servers and inputs: a registry that trickles a byte at a time (in the
headers or the body) is abandoned at the request deadline (`--timeout`), not retried; nonsense timeouts are usage
errors; a FIFO or device given as a layer file is refused instead of blocking the push."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.unit.hostile import cli, refused


class Trickle(BaseHTTPRequestHandler):
    """Answers every request one byte every 0.2 s: the status line and headers too when `server.slow_headers`."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *a) -> None:
        pass

    def _drip(self, data: bytes) -> None:
        for i in range(len(data)):
            if self.server.stopping.is_set():
                return
            self.wfile.write(data[i:i + 1])
            self.wfile.flush()
            time.sleep(0.2)

    def do_GET(self) -> None:  # noqa: N802
        self.server.requests += 1
        body = b'{"schemaVersion": 2, "layers": []}' + b" " * 2000
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body))
        try:
            if self.server.slow_headers:
                self._drip(head)
            else:
                self.wfile.write(head)
            self._drip(body)
        except OSError:
            pass

    do_HEAD = do_GET


@pytest.fixture
def trickle() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    server.requests, server.slow_headers, server.stopping = 0, False, threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.stopping.set()
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("slow_headers", [False, True], ids=["body", "headers"])
def test_a_trickling_registry_is_abandoned_at_the_deadline(trickle, slow_headers: bool, tmp_path: Path) -> None:
    trickle.slow_headers = slow_headers
    ref = f"127.0.0.1:{trickle.server_address[1]}/slow/kernel:1"
    started = time.monotonic()
    refused(cli("pull", ref, "-d", str(tmp_path / "out"), "--timeout", "3", timeout=60),
            "no complete answer within 3 s (the request deadline)")
    # 2000 bytes at 5 a second would take 400 s; per-read timeouts never fire. One request, not retried.
    assert time.monotonic() - started < 30
    assert trickle.requests == 1
    assert not (tmp_path / "out").exists()


def test_nonsense_timeouts_are_usage_errors(tmp_path: Path) -> None:
    for value in ("0", "-5", "nan", "inf", "soon", "1e300"):  # 1e300 overflowed the deadline timer's time_t
        refused(cli("pull", "127.0.0.1:1/x:1", "-d", str(tmp_path / "o"), "--timeout", value), "--timeout",
                "above 0", status=2)


def test_a_fifo_or_device_as_a_layer_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "kernel"
    os.mkfifo(fifo)  # nobody writes it: reading it would block the push forever
    for path, kind in ((fifo, "is a FIFO"), (Path("/dev/zero"), "is a character device")):
        refused(cli("push", "artifact", "127.0.0.1:1/x:1", "--platform", "linux/amd64", "--kernel", str(path),
                    timeout=60), str(path), kind)
