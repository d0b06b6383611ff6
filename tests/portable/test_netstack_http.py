"""netstack.http and netstack.resolve against a real HTTP/1.1 server on 127.0.0.1 (tests/httptestserver.py,
through $CLOUDBOOT_HTTPTEST) over the platform's own TCP: CPython's sockets and the MicroPython unix port's.
Plain asserts: runs on both."""

import binascii
import hashlib
import os

from test_oci_client import _raises

from netstack import http, resolve
from oci.client import Client
from oci.errors import TransportError
from oci.ref import parse

BLOB = bytes((i * 131 + 7) % 251 for i in range(1 << 20))


def _base():
    addr = os.getenv("CLOUDBOOT_HTTPTEST")
    assert addr, "CLOUDBOOT_HTTPTEST is not set (tests/conftest.py sets it)"
    return "http://" + addr


def test_content_length_body_and_keep_alive():
    t = http.Transport(timeout=10)
    before = int(t.request("GET", _base() + "/count", {}).read())
    for _ in range(3):
        r = t.request("GET", _base() + "/hello", {"Accept": "text/plain"})
        assert (r.status, r.read()) == (200, b"hello\n")
        assert r.headers["content-type"] == "text/plain"
        assert r.headers["x-twice"] == "a, b"
    r = t.request("GET", _base() + "/count", {})
    assert int(r.read()) == before  # one connection served all five requests
    t.close()


def test_chunked_body_with_extensions_and_trailers():
    t = http.Transport(timeout=10)
    r = t.request("GET", _base() + "/chunked", {})
    assert r.read() == b"first " + b"second " * 100 + b"third"
    assert t.request("GET", _base() + "/hello", {}).read() == b"hello\n"  # the connection is still usable
    t.close()


def test_read_to_close_body_and_head_and_post():
    t = http.Transport(timeout=10)
    assert t.request("GET", _base() + "/close", {}).read() == b"until the end"
    r = t.request("HEAD", _base() + "/hello", {})
    assert (r.status, r.headers["content-length"], r.read()) == (200, "6", b"")
    body = b"x" * 100000
    r = t.request("POST", _base() + "/post", {}, body)
    assert r.read() == binascii.hexlify(hashlib.sha256(body).digest())
    t.close()


def test_redirect_is_returned_not_followed_and_404():
    t = http.Transport(timeout=10)
    r = t.request("GET", _base() + "/redirect", {})
    assert (r.status, r.headers["location"]) == (302, "/hello")
    r.read()
    r = t.request("GET", _base() + "/missing", {})
    assert (r.status, r.read()) == (404, b"no such path")
    t.close()


def test_large_body_into_caller_buffer_and_range():
    t = http.Transport(timeout=10)
    r = t.request("GET", _base() + "/blob", {})
    buf = bytearray(1 << 16)
    h = hashlib.sha256()
    n = 0
    while True:
        k = r.readinto(buf)
        if not k:
            break
        h.update(memoryview(buf)[:k])
        n += k
    assert n == len(BLOB) and h.digest() == hashlib.sha256(BLOB).digest()
    r = t.request("GET", _base() + "/blob", {"Range": "bytes=1000000-"})
    assert r.status == 206 and r.read() == BLOB[1000000:]
    t.close()


def test_silent_server_times_out_and_refused_connection():
    t = http.Transport(timeout=1)
    msg = _raises(TransportError, t.request, "GET", _base() + "/slow", {})
    assert "GET " in msg and "/slow" in msg
    msg = _raises(TransportError, t.request, "GET", "http://127.0.0.1:1/x", {})
    assert "connect to 127.0.0.1:1" in msg


def test_https_without_tls_is_refused():
    msg = _raises(TransportError, http.Transport().request, "GET", "https://127.0.0.1:1/x", {})
    assert "no TLS" in msg


def test_oci_blob_resumes_after_a_dropped_connection():
    """The server drops the first GET of a /v2/ blob after 300000 bytes: the client asks for the rest with
    Range and the digest still verifies over the whole."""
    logs = []
    client = Client(http.Transport(timeout=10), retries=2, backoff=0.01, log=logs.append)
    ref = parse(_base() + "/r:tag")
    digest = "sha256:" + "".join("%02x" % b for b in hashlib.sha256(BLOB).digest())
    data = client.fetch_blob_bytes(ref, digest, len(BLOB))
    assert data == BLOB
    assert [m for m in logs if m.startswith("resuming %s at byte 300000" % digest)], logs


def test_resolver_search_domain_and_literals():
    assert resolve.candidates("registry", "example.net") == ["registry.example.net", "registry"]
    assert resolve.candidates("registry.example.org.", "example.net") == ["registry.example.org"]
    assert resolve.is_ipv4("10.0.2.2") and not resolve.is_ipv4("10.0.2") and not resolve.is_ipv4("1.2.3.256")
    tried = []

    def fake(name, port):
        tried.append(name)
        raise OSError("no such name")

    msg = _raises(TransportError, resolve.address, "reg", 5000, "lab.test", fake)
    assert tried == ["reg.lab.test", "reg"]
    assert msg.startswith("DNS: cannot resolve reg: reg.lab.test (no such name); reg (no such name)")
