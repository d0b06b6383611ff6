"""The one redirect policy (oci.http.follow_redirects) that the registry client and the metadata fetcher share:
credentials stay with their origin, 303 becomes GET, bodies are re-sent from the start, the hop count is
bounded. Plain asserts: runs on CPython (pytest) and the MicroPython unix port."""

import io

import cloudmeta
from oci import http
from oci.client import Client
from oci.errors import RegistryError, TransportError
from oci.ref import parse


class Hops:
    """A transport answering from a script: url -> (status, headers); everything else 200 with the url as
    body. Records (method, url, Authorization, body bytes) of every request."""

    def __init__(self, script):
        self.script = script
        self.seen = []

    def request(self, method, url, headers, body=None):
        data = body
        if body is not None and not isinstance(body, bytes):
            data = body.read()
        self.seen.append((method, url, headers.get("Authorization"), data))
        if url in self.script:
            status, hdrs = self.script[url]
            return http.BytesResponse(status, hdrs)
        return http.BytesResponse(200, {}, url.encode())


AUTH = {"Authorization": "Bearer secret", "Accept": "*/*"}


def _follow(script, url, headers=None, body=None, method="GET", max_redirects=5, error=TransportError):
    t = Hops(script)
    resp = http.follow_redirects(t, method, url, dict(headers or AUTH), body, max_redirects, error)
    return t.seen, resp.read().decode()


def _fails(script, url, max_redirects=5, error=TransportError):
    try:
        _follow(script, url, max_redirects=max_redirects, error=error)
    except error as exc:
        return exc
    raise AssertionError("no %s" % error.__name__)


def test_same_origin_keeps_credentials():
    seen, final = _follow({"https://reg.example/a": (307, {"Location": "/b"}),
                           "https://reg.example/b": (302, {"Location": "https://reg.example:443/c"})},
                          "https://reg.example/a")
    assert final == "https://reg.example:443/c"
    assert [s[2] for s in seen] == ["Bearer secret"] * 3, seen


def test_cross_origin_drops_credentials_for_every_later_hop():
    # another host, then back to the first origin: Authorization never comes back
    seen, final = _follow({"https://reg.example/v2/r/blobs/x": (307, {"Location": "https://blobs.example/x"}),
                           "https://blobs.example/x": (302, {"Location": "https://reg.example/again"})},
                          "https://reg.example/v2/r/blobs/x")
    assert final == "https://reg.example/again"
    assert [s[2] for s in seen] == ["Bearer secret", None, None], seen
    for target in ("https://reg.example:8443/x",  # another port
                   "http://reg.example/x",  # https -> http on the same host: followed (the digest still
                   "//cdn.example/x"):  # guards blobs), without the credentials; scheme-relative: another host
        seen, _ = _follow({"https://reg.example/a": (301, {"Location": target})}, "https://reg.example/a")
        assert [s[2] for s in seen] == ["Bearer secret", None], (target, seen)


def test_caller_headers_are_not_changed():
    headers = dict(AUTH)
    t = Hops({"https://reg.example/a": (307, {"Location": "https://blobs.example/b"})})
    http.follow_redirects(t, "GET", "https://reg.example/a", headers)
    assert headers == AUTH


def test_303_becomes_get_and_307_resends_the_body_from_its_start():
    seen, _ = _follow({"https://reg.example/up": (303, {"Location": "/done"})}, "https://reg.example/up",
                      body=b"payload", method="POST")
    assert [(s[0], s[3]) for s in seen] == [("POST", b"payload"), ("GET", None)], seen
    seen, _ = _follow({"https://reg.example/up": (307, {"Location": "/there"})}, "https://reg.example/up",
                      body=io.BytesIO(b"stream"), method="PUT")
    assert [(s[0], s[3]) for s in seen] == [("PUT", b"stream"), ("PUT", b"stream")], seen


def test_redirects_are_bounded_and_need_a_location():
    loop = {"https://reg.example/a": (302, {"Location": "/b"}), "https://reg.example/b": (302, {"Location": "/a"})}
    exc = _fails(loop, "https://reg.example/a", max_redirects=3, error=RegistryError)
    assert exc.status == 310 and "more than 3 redirects" in str(exc), exc
    t = Hops(loop)
    try:
        http.follow_redirects(t, "GET", "https://reg.example/a", {}, None, 3)
    except TransportError:
        pass
    assert len(t.seen) == 4  # the first request and three redirects, no more
    exc = _fails({"https://reg.example/a": (308, {})}, "https://reg.example/a", error=RegistryError)
    assert exc.status == 308 and str(exc) == "GET https://reg.example/a: redirect 308 without Location", exc


def test_registry_client_and_metadata_fetcher_share_the_policy():
    script = {"https://reg.example/v2/r/manifests/v1": (307, {"Location": "https://other.example/m"}),
              "http://169.254.169.254/meta": (302, {"Location": "http://elsewhere.example/meta"})}
    t = Hops(script)
    c = Client(t, bearer="secret", retries=0)
    c.request("GET", parse("reg.example/r:v1"), "/manifests/v1")
    f = cloudmeta.Fetcher(t, retries=0)
    status, _, body = f.request("GET", "http://169.254.169.254/meta", {"Authorization": "Bearer tok"})
    assert (status, body) == (200, b"http://elsewhere.example/meta")
    assert [s[2] for s in t.seen] == ["Bearer secret", None, "Bearer tok", None], t.seen
    loop = {"http://m.example/a": (302, {"Location": "/a"})}
    try:
        cloudmeta.Fetcher(Hops(loop), retries=0, max_redirects=2).request("GET", "http://m.example/a", {})
    except cloudmeta.MetadataError as exc:
        assert exc.status == 310, exc
    else:
        raise AssertionError("redirect loop not refused")
