"""cosign policy logic (fake verifier) and metadata/Keystone logic (fake transport). Plain asserts: runs on
CPython (pytest) and the MicroPython unix port."""

import binascii
import json

from test_oci_client import FakeRegistry, _artifact, _raises

import cloudmeta
import oci
from oci import http
from oci.client import Client, sha256_digest
from oci.cosign import apply_policy, check_payload, signature_tag, simple_signing_payload
from oci.errors import SignatureError, TransportError
from oci.ref import parse

# ---- cosign ---------------------------------------------------------------------------------------------------------


class FakeVerifier:
    """'Signature' = b"sig:" + sha256 digest of the payload."""

    def verify(self, sig, payload):
        return sig == b"sig:" + sha256_digest(payload).encode()


def _sign(fake, repo, digest, payload=None, sig=None):
    payload = payload or simple_signing_payload("reg.example/" + repo, digest)
    sig = sig or b"sig:" + sha256_digest(payload).encode()
    layer = fake.add_blob(payload)
    layer["mediaType"] = oci.MT_COSIGN_SIMPLESIGNING
    layer["annotations"] = {oci.ANN_COSIGN_SIGNATURE: binascii.b2a_base64(sig).decode().strip()}
    config = fake.add_blob(b"{}")
    fake.add_manifest(repo, signature_tag(digest), {"schemaVersion": 2, "config": config, "layers": [layer]})


def test_payload_shape():
    p = simple_signing_payload("r.example/a", "sha256:" + "0" * 64)
    assert p == (b'{"critical":{"identity":{"docker-reference":"r.example/a"},"image":{"docker-manifest-digest":'
                 b'"sha256:' + b"0" * 64 + b'"},"type":"cosign container image signature"},"optional":null}')
    assert check_payload(p, "sha256:" + "0" * 64) is None
    assert "not sha256:" in check_payload(p, "sha256:" + "1" * 64)
    assert check_payload(b"[]", "x") == "payload is not a simple-signing document"
    assert signature_tag("sha256:abc") == "sha256-abc.sig"


def test_policies():
    fake = FakeRegistry()
    (digest, _), _ = _artifact(fake, "r", "v1", b"k")
    c = Client(fake, sleep=lambda s: None)
    ref = parse("reg.example/r:v1")
    logged = []
    assert "no cosign signature" in _raises(SignatureError, apply_policy, c, ref, digest, FakeVerifier())
    assert apply_policy(c, ref, digest, FakeVerifier(), "warn", logged.append) is False
    assert "no cosign signature" in logged[0]
    assert apply_policy(c, ref, digest, None, "off") is False
    _raises(SignatureError, apply_policy, c, ref, digest, None, "enforce")
    _raises(SignatureError, apply_policy, c, ref, digest, FakeVerifier(), "maybe")
    _sign(fake, "r", digest)
    assert apply_policy(c, ref, digest, FakeVerifier()) is True


def test_bad_signatures_refused():
    fake = FakeRegistry()
    (digest, _), _ = _artifact(fake, "r", "v1", b"k")
    (other, _), _ = _artifact(fake, "r", "v2", b"k2")
    c = Client(fake, sleep=lambda s: None)
    ref = parse("reg.example/r:v1")
    _sign(fake, "r", digest, sig=b"forged")
    assert "does not verify" in _raises(SignatureError, apply_policy, c, ref, digest, FakeVerifier())
    # a valid signature of another digest, stored under this digest's tag
    _sign(fake, "r", digest, payload=simple_signing_payload("reg.example/r", other))
    assert "payload signs" in _raises(SignatureError, apply_policy, c, ref, digest, FakeVerifier())


# ---- metadata -------------------------------------------------------------------------------------------------------


class FakeMeta:
    def __init__(self):
        self.routes = {}  # (method, url) -> list of (status, headers, body); last one repeats
        self.seen = []

    def request(self, method, url, headers, body=None):
        self.seen.append((method, url, dict(headers), body))
        answers = self.routes.get((method, url))
        if not answers:
            return http.BytesResponse(404)
        status, hdrs, data = answers[0] if len(answers) == 1 else answers.pop(0)
        if status == "timeout":
            raise TransportError("timed out")
        return http.BytesResponse(status, hdrs, data)


URL = "http://169.254.169.254/openstack/latest/meta_data.json"


def test_flat_and_nested_overrides():
    doc = {"cloudboot": {"plan": "r.example/p:1", "disk.fs": "xfs",
                         "disk": {"device": "LABEL=root", "luks_passphrase": "pw"},
                         "net": {"skip": True, "lldp": False}, "dns": ["1.1.1.1", "9.9.9.9"], "n": 3,
                         "gone": None, "deep": {"a": {"b": {"c_d": "e"}}}},
           "meta": {"cloudboot.target": "rescue", "other": "x"}, "uuid": "ignored"}
    assert cloudmeta.overrides_from_document(doc) == {
        "cloudboot.plan": "r.example/p:1", "cloudboot.disk.fs": "xfs", "cloudboot.disk.device": "LABEL=root",
        "cloudboot.disk.luks-passphrase": "pw", "cloudboot.net.skip": "1", "cloudboot.net.lldp": "0",
        "cloudboot.dns": "1.1.1.1,9.9.9.9", "cloudboot.n": "3", "cloudboot.deep.a.b.c-d": "e",
        "cloudboot.target": "rescue"}
    assert cloudmeta.overrides_from_document([1]) == {}
    assert cloudmeta.overrides_from_document({"cloudboot": "str"}) == {}
    logged = []
    merged = cloudmeta.merge({"cloudboot.plan": "old", "x": "1"}, {"cloudboot.plan": "new",
                                                                   "cloudboot.disk.luks-passphrase": "pw"},
                             logged.append)
    assert merged == {"cloudboot.plan": "new", "x": "1", "cloudboot.disk.luks-passphrase": "pw"}
    assert "pw" not in " ".join(logged) and "(overrides cmdline)" in logged[1]


def test_metadata_404_is_absent_and_5xx_retries_then_falls_back():
    fake = FakeMeta()
    sleeps, logged = [], []
    src = cloudmeta.MetadataSource(fake, URL, sleep=sleeps.append, log=logged.append, retries=2)
    assert src.fetch() == {}
    fake.routes[("GET", URL)] = [(503, {}, b""), ("timeout", None, None), (500, {}, b"")]
    assert src.fetch_or_fallback() == {}
    assert sleeps == [0.5, 1.0] and "continuing with the command line" in logged[-1]
    fake.routes[("GET", URL)] = [(503, {}, b""), (200, {}, b'{"cloudboot":{"plan":"p"}}')]
    assert src.fetch() == {"cloudboot.plan": "p"}
    fake.routes[("GET", URL)] = [(200, {}, b"not json")]
    assert src.fetch_or_fallback() == {}
    fake.routes[("GET", URL)] = [(200, {}, b"x" * (cloudmeta.BODY_MAX + 1))]
    assert src.fetch_or_fallback() == {}


def test_static_token_and_keystone_reuse():
    fake = FakeMeta()
    fake.routes[("GET", URL)] = [(200, {}, b'{"cloudboot":{"target":"t"}}')]
    src = cloudmeta.from_cmdline(fake, {"cloudboot.metadata.url": URL, "cloudboot.metadata.token": "abc"},
                                 sleep=lambda s: None)
    assert src.fetch() == {"cloudboot.target": "t"}
    assert fake.seen[-1][2]["Authorization"] == "Bearer abc"
    assert cloudmeta.from_cmdline(fake, {}) is None

    ks = "https://keystone.example:5000/v3/"
    tokens = "https://keystone.example:5000/v3/auth/tokens"
    fake.routes[("POST", tokens)] = [(201, {"X-Subject-Token": "ks1"}, b"{}"), (201, {"X-Subject-Token": "ks2"}, b"")]
    cmd = {"cloudboot.metadata.url": URL, "cloudboot.openstack.auth-url": ks,
           "cloudboot.openstack.app-cred-id": "id1", "cloudboot.openstack.app-cred-secret": "s3"}
    src = cloudmeta.from_cmdline(fake, cmd, sleep=lambda s: None)
    assert src.fetch() == {"cloudboot.target": "t"} and src.fetch() == {"cloudboot.target": "t"}
    assert src.keystone_exchanges == 1
    post = [s for s in fake.seen if s[0] == "POST"][0]
    body = json.loads(post[3])
    assert body["auth"]["identity"] == {"methods": ["application_credential"],
                                        "application_credential": {"id": "id1", "secret": "s3"}}
    assert fake.seen[-1][2]["Authorization"] == "Bearer ks1"
    # the metadata server stops accepting the token: one fresh exchange, then success
    fake.routes[("GET", URL)] = [(401, {}, b""), (200, {}, b'{"cloudboot":{"target":"u"}}')]
    assert src.fetch() == {"cloudboot.target": "u"} and src.keystone_exchanges == 2
    assert fake.seen[-1][2]["Authorization"] == "Bearer ks2"


def test_keystone_errors():
    fake = FakeMeta()
    f = cloudmeta.Fetcher(fake, sleep=lambda s: None)
    ks = "https://k.example/v3"
    fake.routes[("POST", ks + "/auth/tokens")] = [(401, {}, b'{"error":{"message":"bad creds"}}')]
    assert "401" in _raises(cloudmeta.MetadataError, cloudmeta.keystone_token, f, ks, "i", "s")
    assert "bad creds" in _raises(cloudmeta.MetadataError, cloudmeta.keystone_token, f, ks, "i", "s")
    fake.routes[("POST", ks + "/auth/tokens")] = [(201, {}, b"")]
    assert "X-Subject-Token" in _raises(cloudmeta.MetadataError, cloudmeta.keystone_token, f, ks, "i", "s")
    assert "required" in _raises(cloudmeta.MetadataError, cloudmeta.keystone_token, f, ks, "", "s")
