"""OCI pull client logic over a fake transport: references, WWW-Authenticate, index selection, auth challenges,
redirects, retries, verification and caps. Plain asserts: runs on CPython (pytest) and the MicroPython unix port."""

import binascii
import hashlib
import json

import oci
from oci import http
from oci.auth import basic_header, bearer_challenge, parse_challenges
from oci.client import Client, select_platform, sha256_digest
from oci.errors import (
    AuthError,
    BadReference,
    DigestMismatch,
    ManifestError,
    NotFound,
    ServerError,
    TooLarge,
    TransportError,
)
from oci.ref import parse, parse_platform

HEX = "0123456789abcdef" * 4


def _raises(exc_type, fn, *args):
    try:
        fn(*args)
    except exc_type as exc:
        return str(exc)
    raise AssertionError(exc_type.__name__ + " not raised")


# ---- references -------------------------------------------------------------------------------------------------

def test_reference_defaults_and_parts():
    r = parse("ghcr.io/org/boot/kernel")
    assert (r.registry, r.repository, r.tag, r.digest, r.scheme) == ("ghcr.io", "org/boot/kernel", "latest", None,
                                                                      "https")
    assert r.reference() == "latest"
    r = parse("127.0.0.1:5000/plans/prod:v2@sha256:" + HEX)
    assert (r.registry, r.tag, r.digest, r.scheme) == ("127.0.0.1:5000", "v2", "sha256:" + HEX, "http")
    assert r.reference() == "sha256:" + HEX
    assert str(r) == "127.0.0.1:5000/plans/prod:v2@sha256:" + HEX
    assert parse("localhost:5000/a").scheme == "http"
    assert parse("oci://r.example/a:b").scheme == "https"
    assert parse("http://r.example/a").scheme == "http"
    assert parse("r.example/a", plain_http=True).scheme == "http"
    assert parse("[::1]:5000/a/b:c").registry == "[::1]:5000"
    assert parse("r.example/a/b@sha256:" + HEX).tag is None
    assert parse("r.example/a__b/c-d--e/f.g:T_1.0-x").repository == "a__b/c-d--e/f.g"


def test_reference_errors():
    for bad in ("ubuntu", "r.example/", "r.example/UPPER", "r.example/a:", "r.example/a@sha256:abc",
                "r.example/a@md5:" + HEX, "r.example:0x/a", "r.example/a..b", "r.example/-a", "r.example/a._b",
                "r.example/a:-tag", "/a", "r.example/a:" + "t" * 129, "r.exa mple/a", "127.0.0.1:0/a", "r:65536/a",
                "r:" + "9" * 5000 + "/a", "[::1]:0/a", "[::1]:99999/a", "[::1]:/a"):
        _raises(BadReference, parse, bad)
    assert "bad registry port '0'" in _raises(BadReference, parse, "127.0.0.1:0/x:1")  # was tried 4 times
    assert "missing repository" in _raises(BadReference, parse, "ubuntu")


def test_platform():
    assert parse_platform("linux/amd64") == ("linux", "amd64", None)
    assert parse_platform("linux/x86_64") == ("linux", "amd64", None)
    assert parse_platform("linux/aarch64") == ("linux", "arm64", None)
    assert parse_platform("linux/loongarch64") == ("linux", "loong64", None)
    assert parse_platform("linux/arm/v7") == ("linux", "arm", "v7")
    for bad in ("linux", "linux/", "/amd64", "a/b/c/d", "linux/arm/"):
        _raises(BadReference, parse_platform, bad)


# ---- WWW-Authenticate -------------------------------------------------------------------------------------------

def test_www_authenticate():
    h = ('Bearer realm="https://auth.example/token",service="registry.example",'
         'scope="repository:a/b:pull,push"')
    assert bearer_challenge(h) == {"realm": "https://auth.example/token", "service": "registry.example",
                                   "scope": "repository:a/b:pull,push"}
    assert parse_challenges('Basic realm="Registry Realm"') == [("basic", {"realm": "Registry Realm"})]
    both = parse_challenges('Basic realm="x", Bearer realm="a\\"b", error="insufficient_scope"')
    assert both == [("basic", {"realm": "x"}), ("bearer", {"realm": 'a"b', "error": "insufficient_scope"})]
    assert parse_challenges("") == []
    assert parse_challenges("Bearer") == [("bearer", {})]
    assert parse_challenges("Negotiate abcdef") == [("negotiate", {"": "abcdef"})]
    assert bearer_challenge("bearer REALM=http://x/t , service=s") == {"realm": "http://x/t", "service": "s"}
    assert bearer_challenge('Bearer realm="unterminated') == {"realm": "unterminated"}
    assert basic_header("u", "p") == "Basic dTpw"


def test_urls():
    assert http.split_url("https://r.example/v2/") == ("https", "r.example", 443, "/v2/")
    assert http.split_url("http://127.0.0.1:5000") == ("http", "127.0.0.1", 5000, "/")
    assert http.split_url("http://[::1]:81/x?y#z") == ("http", "::1", 81, "/x?y")
    assert http.resolve("http://a:5000/v2/r/blobs/uploads/", "/v2/r/blobs/uploads/u?x=1") == \
        "http://a:5000/v2/r/blobs/uploads/u?x=1"
    assert http.resolve("https://a/v2/x", "https://s3.example/blob") == "https://s3.example/blob"
    assert http.resolve("https://a/v2/x/y", "z") == "https://a/v2/x/z"
    assert http.quote("repository:a/b:pull") == "repository%3Aa%2Fb%3Apull"
    for bad in ("ftp://x/", "nourl", "http://:80/", "http://h:99999/", "http://u@h/"):
        _raises(TransportError, http.split_url, bad)


# ---- a fake registry ---------------------------------------------------------------------------------------------

class FakeRegistry:
    """Answers /v2/<repo>/manifests|blobs from dicts; scripted failures; optional bearer or basic auth."""

    def __init__(self, auth=None):
        self.manifests = {}  # (repo, reference) -> (media_type, raw)
        self.blobs = {}
        self.auth = auth
        self.fail = []  # statuses (or "timeout") to answer before serving
        self.log = []
        self.tokens_issued = 0
        self.redirect_blobs = False

    def add_manifest(self, repo, tag, doc, media_type=oci.MT_OCI_MANIFEST):
        raw = json.dumps(doc).encode()
        digest = sha256_digest(raw)
        self.manifests[(repo, digest)] = (media_type, raw)
        if tag:
            self.manifests[(repo, tag)] = (media_type, raw)
        return digest, len(raw)

    def add_blob(self, data):
        digest = sha256_digest(data)
        self.blobs[digest] = data
        return {"mediaType": "application/octet-stream", "digest": digest, "size": len(data)}

    def request(self, method, url, headers, body=None):
        self.log.append((method, url, headers.get("Authorization")))
        if self.fail:
            what = self.fail.pop(0)
            if what == "timeout":
                raise TransportError("timed out")
            return http.BytesResponse(what, {}, b"")
        if url.startswith("https://token.example/"):
            self.tokens_issued += 1
            return http.BytesResponse(200, {}, json.dumps({"token": "tok" + str(self.tokens_issued)}).encode())
        if url.startswith("https://blobs.example/"):
            assert headers.get("Authorization") is None
            return http.BytesResponse(200, {}, self.blobs[url.rsplit("/", 1)[1]])
        if self.auth == "bearer" and not (headers.get("Authorization") or "").startswith("Bearer tok"):
            return http.BytesResponse(401, {"WWW-Authenticate": 'Bearer realm="https://token.example/t",'
                                                                'service="fake",scope="repository:r:pull"'})
        if self.auth == "basic" and headers.get("Authorization") != basic_header("u", "p"):
            return http.BytesResponse(401, {"WWW-Authenticate": 'Basic realm="fake"'})
        path = url.split("/v2/", 1)[1]
        if "/manifests/" in path:
            repo, ref = path.split("/manifests/")
            if (repo, ref) not in self.manifests:
                return http.BytesResponse(404, {}, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}')
            mt, raw = self.manifests[(repo, ref)]
            return http.BytesResponse(200, {"Content-Type": mt, "Content-Length": str(len(raw))}, raw)
        if "/blobs/" in path:
            digest = path.split("/blobs/")[1]
            if digest not in self.blobs:
                return http.BytesResponse(404, {}, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')
            if self.redirect_blobs:
                return http.BytesResponse(307, {"Location": "https://blobs.example/" + digest})
            data = self.blobs[digest]
            return http.BytesResponse(200, {"Content-Length": str(len(data))}, data)
        return http.BytesResponse(400)


def _client(fake, **kw):
    sleeps = []
    c = Client(fake, sleep=sleeps.append, **kw)
    return c, sleeps


def _artifact(fake, repo, tag, payload):
    layer = fake.add_blob(payload)
    layer["mediaType"] = oci.MT_KERNEL
    config = fake.add_blob(b"{}")
    return fake.add_manifest(repo, tag, {"schemaVersion": 2, "mediaType": oci.MT_OCI_MANIFEST, "config": config,
                                         "layers": [layer]}), layer


def _index(fake, repo, tag, entries):
    manifests = []
    for os_, arch, (digest, size) in entries:
        manifests.append({"mediaType": oci.MT_OCI_MANIFEST, "digest": digest, "size": size,
                          "platform": {"os": os_, "architecture": arch}})
    return fake.add_manifest(repo, tag, {"schemaVersion": 2, "mediaType": oci.MT_OCI_INDEX,
                                         "manifests": manifests}, oci.MT_OCI_INDEX)


def test_index_picks_platform():
    fake = FakeRegistry()
    amd, _ = _artifact(fake, "r", None, b"amd64 kernel")
    arm, layer = _artifact(fake, "r", None, b"arm64 kernel")
    rv, _ = _artifact(fake, "r", None, b"riscv64 kernel")
    _index(fake, "r", "multi", [("linux", "amd64", amd), ("linux", "arm64", arm), ("linux", "riscv64", rv)])
    c, _ = _client(fake)
    doc, _, _, pinned = c.resolve(parse("reg.example/r:multi"), "linux", "aarch64")
    assert pinned.digest == arm[0]
    assert c.fetch_blob_bytes(pinned, doc["layers"][0]["digest"], doc["layers"][0]["size"]) == b"arm64 kernel"
    assert "has: linux/amd64, linux/arm64, linux/riscv64" in _raises(
        ManifestError, c.resolve, parse("reg.example/r:multi"), "linux", "loong64")


def test_select_platform_first_match_and_junk():
    idx = {"manifests": [5, {"platform": "x"}, {"digest": "sha256:" + HEX, "size": 1,
                                                 "platform": {"os": "linux", "architecture": "amd64"}},
                         {"digest": "sha256:" + "f" * 64, "size": 1,
                          "platform": {"os": "linux", "architecture": "amd64"}}]}
    assert select_platform(idx, "linux", "x86_64")["digest"] == "sha256:" + HEX
    _raises(ManifestError, select_platform, {"manifests": "no"}, "linux", "amd64")
    bad = {"manifests": [{"digest": "sha256:zz", "size": 1, "platform": {"os": "linux", "architecture": "amd64"}}]}
    _raises(ManifestError, select_platform, bad, "linux", "amd64")


def test_bearer_token_fetched_once_and_reused():
    fake = FakeRegistry(auth="bearer")
    (digest, _), layer = _artifact(fake, "r", "v1", b"payload")
    c, _ = _client(fake)
    ref = parse("reg.example/r:v1")
    c.get_manifest(ref)
    assert c.fetch_blob_bytes(ref, layer["digest"]) == b"payload"
    c.get_manifest(ref.with_digest(digest))
    assert fake.tokens_issued == 1
    assert fake.log[-1][2] == "Bearer tok1"


def test_basic_auth_and_missing_credentials():
    fake = FakeRegistry(auth="basic")
    _artifact(fake, "r", "v1", b"x")
    c, _ = _client(fake, credentials=lambda registry: ("u", "p"))
    c.get_manifest(parse("reg.example/r:v1"))
    assert "wants credentials" in _raises(AuthError, Client(fake).get_manifest, parse("reg.example/r:v1"))
    wrong = Client(fake, credentials=lambda registry: ("u", "wrong"))
    assert "401 Unauthorized" in _raises(AuthError, wrong.get_manifest, parse("reg.example/r:v1"))


def test_distinct_errors():
    fake = FakeRegistry()
    (digest, _), layer = _artifact(fake, "r", "v1", b"0123456789")
    c, sleeps = _client(fake, retries=2)
    ref = parse("reg.example/r:v1")
    assert "MANIFEST_UNKNOWN" in _raises(NotFound, c.get_manifest, parse("reg.example/r:nope"))
    fake.fail = [503, 503, 503]
    assert "503" in _raises(ServerError, c.get_manifest, ref)
    assert sleeps == [0.5, 1.0]
    fake.blobs[layer["digest"]] = b"0123456789X"
    _raises(TooLarge, c.fetch_blob_bytes, ref, layer["digest"], 10)
    fake.blobs[layer["digest"]] = b"012345678X"
    assert "digest mismatch" in _raises(DigestMismatch, c.fetch_blob_bytes, ref, layer["digest"], 10)
    _raises(TooLarge, c.fetch_blob_bytes, ref, layer["digest"], None, 5)
    _raises(TooLarge, c.fetch_blob_bytes, ref, layer["digest"], 100, 50)
    bad = ref.with_digest("sha256:" + HEX)
    fake.manifests[("r", bad.digest)] = fake.manifests[("r", "v1")]
    _raises(DigestMismatch, c.get_manifest, bad)


def test_retries_then_success_with_bounded_backoff():
    fake = FakeRegistry()
    _artifact(fake, "r", "v1", b"x")
    c, sleeps = _client(fake, retries=6, backoff=1.0, backoff_max=4.0)
    fake.fail = ["timeout", 502, 500, 429, 504, 503]
    c.get_manifest(parse("reg.example/r:v1"))
    assert sleeps == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    fake.fail = ["timeout"] * 7
    _raises(TransportError, c.get_manifest, parse("reg.example/r:v1"))


def test_redirect_drops_credentials():
    fake = FakeRegistry(auth="basic")
    _, layer = _artifact(fake, "r", "v1", b"blob via redirect")
    fake.redirect_blobs = True
    c, _ = _client(fake, credentials=lambda registry: ("u", "p"))
    assert c.fetch_blob_bytes(parse("reg.example/r:v1"), layer["digest"]) == b"blob via redirect"


def test_manifest_size_cap_and_bad_json():
    fake = FakeRegistry()
    fake.manifests[("r", "big")] = (oci.MT_OCI_MANIFEST, b" " * 5000)
    c, _ = _client(fake)
    _raises(TooLarge, c.get_manifest, parse("reg.example/r:big"), None, 4096)
    fake.manifests[("r", "junk")] = (oci.MT_OCI_MANIFEST, b"{not json")
    _raises(ManifestError, c.resolve, parse("reg.example/r:junk"))
    fake.add_manifest("r", "nolayers", {"schemaVersion": 2})
    _raises(ManifestError, c.resolve, parse("reg.example/r:nolayers"))


def test_sha256_digest_matches_hashlib():
    data = b"abc" * 1000
    assert sha256_digest(data) == "sha256:" + binascii.hexlify(hashlib.sha256(data).digest()).decode()
