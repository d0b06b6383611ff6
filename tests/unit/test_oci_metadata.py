"""Metadata URL and Keystone over real HTTP (a local http.server and a Keystone-shaped endpoint), through the
CPython transport; and fuzzing of the parsers that see untrusted bytes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cloudmeta
from cloudboot.registry.local import free_port
from oci import http
from oci.auth import parse_challenges
from oci.client import Client, check_manifest, is_index, parse_json_object, select_platform
from oci.errors import BadReference, ManifestError, OciError
from oci.ref import parse, parse_platform
from oci.transport_cpython import Transport


class MetaServer:
    """Serves /meta (scripted answers), /v3/auth/tokens (Keystone application credentials: id1/secret1)."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, bytes, float]] = []
        self.tokens_issued = 0
        self.valid_tokens: set[str] = set()
        self.require_token = False
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802
                if self.path != "/meta":
                    return self._send(404)
                if server.require_token:
                    auth = self.headers.get("Authorization", "")
                    if not auth.startswith("Bearer ") or auth[7:] not in server.valid_tokens:
                        return self._send(401)
                status, body, delay = server.answers.pop(0) if len(server.answers) > 1 else server.answers[0]
                time.sleep(delay)
                self._send(status, body, {"Content-Type": "application/json"})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                cred = body["auth"]["identity"]["application_credential"]
                if self.path != "/v3/auth/tokens" or (cred["id"], cred["secret"]) != ("id1", "secret1"):
                    return self._send(401, b'{"error":{"code":401,"message":"The request you have made requires '
                                           b'authentication."}}')
                server.tokens_issued += 1
                token = f"gAAAA-token-{server.tokens_issued}"
                server.valid_tokens.add(token)
                self._send(201, b'{"token":{}}', {"X-Subject-Token": token})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def meta() -> Iterator[MetaServer]:
    server = MetaServer()
    yield server
    server.stop()


def source(meta: MetaServer, cmd: dict | None = None, timeout: float = 5.0, log=None) -> cloudmeta.MetadataSource:
    cmd = {"cloudboot.metadata.url": meta.base + "/meta", **(cmd or {})}
    return cloudmeta.from_cmdline(Transport(timeout=timeout), cmd, sleep=lambda s: None, retries=2, log=log)


def test_metadata_over_http(meta) -> None:
    meta.answers = [(404, b"", 0)]
    assert source(meta).fetch() == {}
    meta.answers = [(200, json.dumps({"cloudboot": {"plan": "r.example/p:1",
                                                    "disk": {"luks_passphrase": "pw", "fs": "xfs"}}}).encode(), 0)]
    assert source(meta).fetch() == {"cloudboot.plan": "r.example/p:1", "cloudboot.disk.luks-passphrase": "pw",
                                    "cloudboot.disk.fs": "xfs"}
    meta.answers = [(503, b"", 0), (502, b"", 0), (200, b'{"cloudboot":{"target":"t"}}', 0)]
    assert source(meta).fetch() == {"cloudboot.target": "t"}
    meta.answers = [(500, b"", 0)]
    logged: list[str] = []
    assert source(meta, log=logged.append).fetch_or_fallback() == {}
    assert "HTTP 500 (after 3 attempts)" in logged[-1]
    meta.answers = [(200, b"{}", 1.0)]
    logged.clear()
    assert source(meta, timeout=0.2, log=logged.append).fetch_or_fallback() == {}
    assert "after 3 attempts" in logged[-1] and "continuing with the command line" in logged[-1]


def test_keystone_over_http(meta) -> None:
    meta.require_token = True
    meta.answers = [(200, b'{"cloudboot":{"exit":"reboot"}}', 0)]
    ks = {"cloudboot.openstack.auth-url": meta.base + "/v3/", "cloudboot.openstack.app-cred-id": "id1",
          "cloudboot.openstack.app-cred-secret": "secret1"}
    src = source(meta, ks)
    assert src.fetch() == {"cloudboot.exit": "reboot"}
    assert src.fetch() == {"cloudboot.exit": "reboot"}
    assert meta.tokens_issued == 1
    meta.valid_tokens.clear()  # the token expires: one new exchange
    assert src.fetch() == {"cloudboot.exit": "reboot"} and meta.tokens_issued == 2
    bad = source(meta, {**ks, "cloudboot.openstack.app-cred-secret": "wrong"}, log=(logged := []).append)
    assert bad.fetch_or_fallback() == {}
    assert "keystone: POST" in logged[-1] and "401" in logged[-1] and "requires authentication" in logged[-1]


# ---- fuzzing the parsers of untrusted bytes -------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                                                      max_size=4), max_leaves=20)
descriptor_like = st.fixed_dictionaries({}, optional={
    "mediaType": st.sampled_from(["application/vnd.oci.image.manifest.v1+json", "x", 3]),
    "digest": st.sampled_from(["sha256:" + "a" * 64, "sha256:zz", "md5:1", 5]),
    "size": st.sampled_from([0, 10, -1, True, "7"]),
    "platform": st.fixed_dictionaries({}, optional={"os": st.sampled_from(["linux", "windows", 1]),
                                                    "architecture": st.sampled_from(["amd64", "arm64", None])}),
    "annotations": json_values})


@FUZZ
@given(st.text(max_size=200))
def test_fuzz_www_authenticate(header: str) -> None:
    for scheme, params in parse_challenges(header):
        assert scheme and scheme == scheme.lower() and isinstance(params, dict)


@FUZZ
@given(st.text(max_size=120) | st.from_regex(r"(https?://)?[a-z0-9.:\[\]]{1,20}/[a-zA-Z0-9._/-]{0,30}"
                                             r"(:[A-Za-z0-9._-]{0,10})?(@sha256:[0-9a-f]{0,64})?", fullmatch=True))
def test_fuzz_reference(text: str) -> None:
    try:
        r = parse(text)
    except BadReference:
        return
    assert parse(str(r)) == r or r.scheme == "http"
    assert r.reference()


@FUZZ
@given(st.text(max_size=40))
def test_fuzz_platform(text: str) -> None:
    try:
        parse_platform(text)
    except BadReference:
        pass


@FUZZ
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()) |
       st.fixed_dictionaries({"schemaVersion": st.sampled_from([2, 1, "2"]),
                              "manifests": st.lists(descriptor_like, max_size=4),
                              "layers": st.lists(descriptor_like, max_size=4) | json_values,
                              "config": descriptor_like}).map(lambda v: json.dumps(v).encode()))
def test_fuzz_manifest_json(raw: bytes) -> None:
    try:
        doc = parse_json_object(raw, "fuzz")
        if is_index(doc):
            d = select_platform(doc, "linux", "amd64")
            assert d["digest"].startswith("sha256:") and isinstance(d["size"], int)
        else:
            check_manifest(doc, "fuzz")
    except ManifestError:
        pass


@FUZZ
@given(json_values)
def test_fuzz_metadata_document(doc) -> None:
    out = cloudmeta.overrides_from_document({"cloudboot": doc, "meta": doc})
    assert all(k.startswith("cloudboot.") and isinstance(v, str) for k, v in out.items())


class _OneShot:
    """A transport answering every request with the same bytes (for fuzzing the client's response handling)."""

    def __init__(self, status: int, headers: dict, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def request(self, method, url, headers, body=None):
        return http.BytesResponse(self.status, self.headers, self.body)


@FUZZ
@given(st.sampled_from([200, 201, 301, 307, 400, 401, 403, 404, 429, 500, 503]),
       st.dictionaries(st.sampled_from(["WWW-Authenticate", "Location", "Content-Type", "Content-Length"]),
                       st.text(max_size=60), max_size=4),
       st.binary(max_size=200))
def test_fuzz_client_responses(status: int, headers: dict, body: bytes) -> None:
    c = Client(_OneShot(status, headers, body), retries=1, sleep=lambda s: None, max_redirects=2)
    try:
        c.resolve(parse("r.example/a:b"))
    except OciError:
        pass
