"""The small HTTP/1.1 interface the OCI client and the metadata fetcher run over, and URL helpers.

A transport is any object with

    request(method, url, headers, body) -> response

where `headers` is a dict, `body` is None, bytes, or a file-like object with read() (its length is given in
`Content-Length`), and the response has `status` (int), `headers` (dict with lowercase keys), and
`readinto(buf) -> int` (0 at the end), `read(n=-1) -> bytes`, `close()`. A transport raises
`oci.errors.TransportError` for connection failures and timeouts. It does not follow redirects and does
no authentication: the callers do both, redirects through `follow_redirects` (the one credential policy).
CPython fills it with `oci.transport_cpython`; the firmware's TCP/IP stack fills it later; tests fill it
with fakes.
"""

import time

from oci.errors import TransportError

#: Statuses worth another attempt (timeouts, rate limits, server errors); the callers share them.
RETRY_STATUSES = (408, 429, 500, 502, 503, 504)
REDIRECTS = (301, 302, 303, 307, 308)
_UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


def quote(text, safe=""):
    """Percent-encode `text` (str) for a URL query component."""
    out = []
    for b in text.encode("utf-8"):
        if b in _UNRESERVED or chr(b) in safe:
            out.append(chr(b))
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def urlencode(pairs):
    """`[(k, v), ...]` -> `k=v&...` with both sides quoted (repeated keys allowed)."""
    return "&".join(quote(k) + "=" + quote(v) for k, v in pairs)


def split_url(url):
    """`scheme://host[:port]/path?query` -> (scheme, host, port, path_with_query); bad URLs raise TransportError."""
    i = url.find("://")
    if i <= 0:
        raise TransportError("bad URL %r: no scheme" % url)
    scheme = url[:i].lower()
    if scheme not in ("http", "https"):
        raise TransportError("bad URL %r: only http and https are supported" % url)
    rest = url[i + 3:]
    j = len(rest)
    for sep in "/?#":
        k = rest.find(sep)
        if 0 <= k < j:
            j = k
    hostport, path = rest[:j], rest[j:]
    k = path.find("#")
    if k >= 0:
        path = path[:k]
    if not path.startswith("/"):
        path = "/" + path
    if "@" in hostport:
        raise TransportError("bad URL %r: credentials in URLs are not supported" % url)
    port = 443 if scheme == "https" else 80
    host = hostport
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise TransportError("bad URL %r" % url)
        host = hostport[1:end]
        if hostport[end + 1:end + 2] == ":":
            port = _port(hostport[end + 2:], url)
    elif ":" in hostport:
        host, p = hostport.rsplit(":", 1)
        port = _port(p, url)
    if not host:
        raise TransportError("bad URL %r: no host" % url)
    return scheme, host, port, path


def _port(text, url):
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise TransportError("bad URL %r: bad port" % url)
    return port


def origin(url):
    """`scheme://host:port` of a URL (to decide whether credentials may follow a redirect)."""
    scheme, host, port, _ = split_url(url)
    return "%s://%s:%d" % (scheme, host, port)


def resolve(base, location):
    """Absolute URL for a `Location` header relative to `base`."""
    if "://" in location[:12]:
        return location
    scheme, host, port, path = split_url(base)
    netloc = ("[%s]" % host) if ":" in host else host
    default = 443 if scheme == "https" else 80
    if port != default:
        netloc += ":%d" % port
    if location.startswith("//"):
        return scheme + ":" + location
    if location.startswith("/"):
        return "%s://%s%s" % (scheme, netloc, location)
    q = path.find("?")
    if q >= 0:
        path = path[:q]
    return "%s://%s%s/%s" % (scheme, netloc, path[:path.rfind("/")], location)


def follow_redirects(transport, method, url, headers, body=None, max_redirects=5, error=TransportError):
    """`transport.request(...)`, following up to `max_redirects` redirects (301, 302, 303, 307, 308) by the one
    policy every client here shares; returns the first response that is not a redirect (body unread).

    Credentials never leave the first origin: once a redirect points to another scheme, host or port (a
    registry sending blobs to a storage service, https -> http included), `Authorization` is dropped for
    that hop and every later one. A 303 turns the request into a body-less GET; other redirects repeat the
    method and body (a file-like body is rewound first). A redirect without Location, or more than
    `max_redirects` of them, raises `error(message, status)` (the caller's exception class)."""
    first = origin(url)
    for _ in range(max_redirects + 1):
        if body is not None and not isinstance(body, (bytes, bytearray, memoryview)):
            body.seek(0)
        resp = transport.request(method, url, headers, body)
        if resp.status not in REDIRECTS:
            return resp
        location = resp.headers.get("location")
        drain(resp)
        if not location:
            raise error("%s %s: redirect %d without Location" % (method, url, resp.status), resp.status)
        url = resolve(url, location)
        if origin(url) != first and "Authorization" in headers:
            headers = dict(headers)
            del headers["Authorization"]
        if resp.status == 303:
            method, body = "GET", None
    raise error("%s: more than %d redirects" % (url, max_redirects), 310)


def read_capped(resp, cap):
    """Read the whole body, at most `cap` bytes; returns (data, truncated?)."""
    buf = bytearray()
    chunk = bytearray(16384)
    mv = memoryview(chunk)
    while True:
        n = resp.readinto(chunk)
        if not n:
            return bytes(buf), False
        buf.extend(mv[:n])
        if len(buf) > cap:
            return bytes(buf[:cap]), True


def drain(resp, limit=1 << 16):
    """Discard up to `limit` bytes of an unwanted body (keeps the connection reusable) and close it."""
    try:
        read_capped(resp, limit)
    except Exception:
        pass
    try:
        resp.close()
    except Exception:
        pass


class BytesResponse:
    """A complete in-memory response (for fakes and tests)."""

    def __init__(self, status, headers=None, body=b""):
        self.status = status
        self.headers = {}
        for k in headers or {}:
            self.headers[k.lower()] = headers[k]
        self._body = body
        self._pos = 0

    def readinto(self, buf):
        n = min(len(buf), len(self._body) - self._pos)
        buf[:n] = self._body[self._pos:self._pos + n]
        self._pos += n
        return n

    def read(self, n=-1):
        if n is None or n < 0:
            n = len(self._body) - self._pos
        data = self._body[self._pos:self._pos + n]
        self._pos += len(data)
        return data

    def close(self):
        self._pos = len(self._body)


class Retrying:
    """Bounded retries with capped exponential backoff, the base of the clients over this interface (the OCI
    client, the metadata fetcher): attempt n (from 0) waits min(backoff * 2**n, backoff_max) seconds, each
    wait logged through `log`."""

    def __init__(self, retries=3, backoff=0.5, backoff_max=8.0, sleep=None, log=None):
        self.retries = retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.sleep = sleep or time.sleep
        self.log = log

    def _pause(self, attempt, why):
        delay = min(self.backoff * (1 << attempt), self.backoff_max)
        if self.log:
            self.log("retrying in %.1fs: %s" % (delay, why))
        self.sleep(delay)

    def _retrying(self, attempt_once, what):
        """`attempt_once()` -> a response, tried again (after a pause) on TransportError and RETRY_STATUSES up to
        `retries` more times. Returns the last response, whatever its status (the caller judges a status that
        persisted); a TransportError that persisted is raised again as "<what>: <error> (after N attempts)"."""
        attempt = 0
        while True:
            try:
                resp = attempt_once()
            except TransportError as exc:
                if attempt >= self.retries:
                    raise TransportError("%s: %s (after %d attempts)" % (what, exc, attempt + 1)) from None
                self._pause(attempt, "%s: %s" % (what, exc))
                attempt += 1
                continue
            if resp.status in RETRY_STATUSES and attempt < self.retries:
                drain(resp)
                self._pause(attempt, "%s: HTTP %d" % (what, resp.status))
                attempt += 1
                continue
            return resp
