"""Registry client over the `oci.http` transport interface: auth challenges, redirects, retries, manifests,
index -> platform manifest, verified streamed blob download and uploads.

Nothing unverified is ever handed out: manifests fetched by digest and every blob are hashed before the
bytes are returned (or, when streaming into a sink, before the call returns; a failing call means the sink's
content must be discarded, which `fetch_blob_to_path` does by writing to `<path>.part` and renaming).
"""

import binascii
import hashlib

import arches
import oci
from compat import json
from oci import http
from oci.auth import basic_header, parse_challenges
from oci.errors import (
    AuthError,
    DeadlineExceeded,
    DigestMismatch,
    ManifestError,
    NotFound,
    OciError,
    RegistryError,
    ServerError,
    TooLarge,
    TransportError,
)
from oci.ref import check_digest

MANIFEST_MAX = 4 << 20
TOKEN_MAX = 1 << 20
ERROR_BODY_MAX = 4096
CHUNK = 1 << 20


def sha256_digest(data):
    """`sha256:<hex>` of bytes."""
    return "sha256:" + binascii.hexlify(hashlib.sha256(data).digest()).decode()


def _hexdigest(h):
    return "sha256:" + binascii.hexlify(h.digest()).decode()


def _error_code(body):
    # registry error JSON: {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "..."}]}
    try:
        doc = json.loads(body)
        err = doc["errors"][0]
        return str(err.get("code", "")), str(err.get("message", ""))
    except Exception:
        return "", ""


class _BytesSink:
    def __init__(self):
        self.buf = bytearray()

    def write(self, data):
        self.buf.extend(data)


class Client(http.Retrying):
    """One registry client (any number of registries); keeps tokens and Basic credentials it learnt.

    transport    object with request(method, url, headers, body) (see oci.http)
    credentials  callable(registry) -> (username, password) or None
    bearer       a static token sent on every request (e.g. from Keystone); overrides negotiation
    retries      extra attempts on 5xx/408/429 and transport errors; backoff doubles from `backoff` to
                 `backoff_max` seconds
    endpoints    oci.mirrors.Endpoints (DNS SRV names, mirrors) or None

    Mirrors: a request goes to the endpoint that last worked for its registry with the retry discipline
    above; when that fails (transport errors or 5xx/408/429 that persisted, a 404 for content named by
    digest) it goes to the next endpoint, each once, logging "registry: A failed (why), trying B". A
    download that breaks halfway resumes on the next endpoint with Range, and every blob and manifest named
    by digest is verified whoever served it: a mirror cannot change what is booted (a tag is resolved by the
    first endpoint that answers; pin digests or enforce cosign when mirrors are not trusted with tags).
    """

    def __init__(self, transport, credentials=None, bearer=None, retries=3, backoff=0.5, backoff_max=8.0,
                 max_redirects=5, sleep=None, log=None, endpoints=None, sha256=None):
        super().__init__(retries, backoff, backoff_max, sleep, log)
        self.transport = transport
        # what blobs are hashed with: a factory of objects with update/digest (and close, if it must be ended
        # when a download is abandoned); on CPython oci.hash_cpython's hashes beside the download
        self.sha256 = sha256 or hashlib.sha256
        self.credentials = credentials
        self.bearer = bearer
        self.max_redirects = max_redirects
        self.endpoints = endpoints  # oci.mirrors.Endpoints: SRV names and mirrors; None: the ref's registry only
        self._auth = {}  # (endpoint host, repository) -> Authorization header value
        self._tokens = {}  # (realm, service, scope) -> token

    # ---- plumbing -------------------------------------------------------------------------------------------

    def _creds(self, registry):
        if self.credentials is None:
            return None
        if callable(self.credentials):
            return self.credentials(registry)
        return self.credentials

    def _fetch_token(self, ref, params):
        realm = params.get("realm", "")
        if not realm:
            raise AuthError("%s: Bearer challenge without realm" % ref.registry, 401)
        query = []
        if params.get("service"):
            query.append(("service", params["service"]))
        for scope in (params.get("scope") or "").split(" "):
            if scope:
                query.append(("scope", scope))
        key = (realm, params.get("service", ""), params.get("scope", ""))
        if key in self._tokens:
            return self._tokens[key]
        url = realm + ("&" if "?" in realm else "?") + http.urlencode(query) if query else realm
        headers = {"Accept": "application/json"}
        creds = self._creds(ref.registry)
        if creds:
            headers["Authorization"] = basic_header(creds[0], creds[1])
        resp = self._send("GET", url, headers, None, follow_auth=False)
        body, truncated = http.read_capped(resp, TOKEN_MAX)
        resp.close()
        if resp.status in (401, 403):
            raise AuthError("%s: token server %s refused the credentials (%d)" % (ref.registry, realm, resp.status),
                            resp.status)
        if resp.status != 200 or truncated:
            raise AuthError("%s: token server %s answered %d" % (ref.registry, realm, resp.status), resp.status)
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except Exception:
            token = None
        if not token or not isinstance(token, str):
            raise AuthError("%s: token server %s returned no token" % (ref.registry, realm), resp.status)
        self._tokens[key] = token
        return token

    def _answer_challenge(self, ref, resp):
        header = resp.headers.get("www-authenticate", "")
        for scheme, params in parse_challenges(header):
            if scheme == "bearer":
                return "Bearer " + self._fetch_token(ref, params)
            if scheme == "basic":
                creds = self._creds(ref.registry)
                if not creds:
                    raise AuthError("%s: 401 Unauthorized: the registry wants credentials (none given)"
                                    % ref.registry, 401)
                return basic_header(creds[0], creds[1])
        raise AuthError("%s: 401 Unauthorized without a usable WWW-Authenticate challenge (%r)"
                        % (ref.registry, header[:200]), 401)

    def _send(self, method, url, headers, body, follow_auth=True):
        """One request with bounded redirects and retries; returns the final response (body unread)."""
        return self._retrying(lambda: http.follow_redirects(self.transport, method, url, headers, body,
                                                            self.max_redirects, RegistryError),
                              "%s %s" % (method, url))

    def _endpoint_list(self, ref):
        if self.endpoints is None:
            from oci.mirrors import Endpoint

            return [Endpoint(ref.scheme, ref.registry)], 0
        return self.endpoints.of(ref), self.endpoints.start(ref)

    @staticmethod
    def _at(ref, ep):
        from oci.ref import Reference

        return Reference(ep.host, ref.repository, ref.tag, ref.digest, ep.scheme)

    def endpoint_ref(self, ref):
        """ref on the endpoint in use for its registry (its SRV target or mirror)."""
        eps, i = self._endpoint_list(ref)
        return self._at(ref, eps[i])

    def base_url(self, ref):
        """`scheme://host/v2/repo` of the endpoint in use for ref."""
        return self.endpoint_ref(ref).base_url()

    def _switch(self, ref, failed, why):
        """Move ref's registry to the endpoint after `failed`; False when there is no other."""
        eps, _ = self._endpoint_list(ref)
        if len(eps) < 2:
            return False
        nxt = (failed + 1) % len(eps)
        if self.log:
            self.log("registry: %s failed (%s), trying %s" % (eps[failed].host, why, eps[nxt].host))
        self.endpoints.worked(ref, nxt)
        return True

    def request(self, method, ref, path, headers=None, body=None, what=""):
        """A registry API request on ref's endpoints in turn (see the class doc); answers one auth challenge;
        maps error statuses. An absolute URL (an upload location) goes to the endpoint in use only."""
        eps, first = self._endpoint_list(ref)
        if "://" in path[:12]:
            return self._request_at(method, self._at(ref, eps[first]), path, headers, body, what)
        for k in range(len(eps)):
            i = (first + k) % len(eps)
            try:
                resp = self._request_at(method, self._at(ref, eps[i]), path, headers, body, what)
            except (TransportError, ServerError, NotFound) as exc:
                pinned = "sha256:" in path
                if k == len(eps) - 1 or (isinstance(exc, NotFound) and not pinned):
                    raise
                self._switch(ref, i, _why(exc))
                continue
            if self.endpoints is not None:
                self.endpoints.worked(ref, i)
            resp.endpoint = eps[i].host
            return resp
        raise OciError("%s: no registry endpoint" % ref)  # not reached: the loop returns or raises

    def _request_at(self, method, ref, path, headers, body, what):
        """One request to the registry `ref` names (an endpoint)."""
        url = path if "://" in path[:12] else ref.base_url() + path
        headers = dict(headers or {})
        key = (ref.registry, ref.repository)
        if self.bearer:
            headers["Authorization"] = "Bearer " + self.bearer
        elif key in self._auth:
            headers["Authorization"] = self._auth[key]
        resp = self._send(method, url, headers, body)
        if resp.status == 401 and not self.bearer:
            auth = self._answer_challenge(ref, resp)
            http.drain(resp)
            self._auth[key] = auth
            headers["Authorization"] = auth
            resp = self._send(method, url, headers, body)
        if resp.status >= 400:
            self._raise_status(resp, method, ref, what or path)
        return resp

    def _raise_status(self, resp, method, ref, what):
        body, _ = http.read_capped(resp, ERROR_BODY_MAX)
        resp.close()
        code, message = _error_code(body)
        detail = (" (%s%s)" % (code, ": " + message if message else "")) if code else ""
        where = "%s %s" % (ref.name(), what)
        if resp.status in (401, 403):
            raise AuthError("%s: %d %s: credentials missing or rejected%s"
                            % (where, resp.status, "Unauthorized" if resp.status == 401 else "Forbidden", detail),
                            resp.status, code)
        if resp.status == 404:
            raise NotFound("%s: 404 not found%s" % (where, detail), 404, code)
        if resp.status >= 500 or resp.status in http.RETRY_STATUSES:
            raise ServerError("%s: registry error %d after %d attempts%s" % (where, resp.status, self.retries + 1,
                                                                             detail), resp.status, code)
        raise RegistryError("%s: unexpected HTTP %d%s" % (where, resp.status, detail), resp.status, code)

    # ---- manifests ------------------------------------------------------------------------------------------

    def get_manifest(self, ref, accept=None, max_size=MANIFEST_MAX):
        """(raw bytes, media type, digest) of ref's manifest or index; verified when ref has a digest."""
        resp = self.request("GET", ref, "/manifests/" + ref.reference(), {"Accept": accept or oci.ACCEPT_ALL},
                            what="manifest " + ref.reference())
        length = resp.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_size:
            http.drain(resp, 0)
            raise TooLarge("%s: manifest of %s bytes exceeds the %d byte cap" % (ref, length, max_size))
        raw, truncated = http.read_capped(resp, max_size)
        resp.close()
        if truncated:
            raise TooLarge("%s: manifest exceeds the %d byte cap" % (ref, max_size))
        digest = sha256_digest(raw)
        if ref.digest and ref.digest != digest:
            raise DigestMismatch("%s: manifest digest mismatch: got %s want %s" % (ref, digest, ref.digest))
        media_type = (resp.headers.get("content-type") or "").split(";")[0].strip()
        return raw, media_type, digest

    def head_manifest(self, ref):
        """Digest of ref's manifest (from Docker-Content-Digest) or None if absent."""
        try:
            resp = self.request("HEAD", ref, "/manifests/" + ref.reference(), {"Accept": oci.ACCEPT_ALL})
        except NotFound:
            return None
        http.drain(resp, 0)
        return resp.headers.get("docker-content-digest")

    def resolve(self, ref, os="linux", arch="amd64", variant=None, fetched=None):
        """Fetch ref; if it is an index, pick the platform's manifest and fetch that (verified by digest).

        `fetched` is an already fetched (raw, media type, digest) of ref. Returns (manifest dict, raw bytes,
        media type, ref pinned to the manifest's digest)."""
        raw, media_type, digest = fetched or self.get_manifest(ref)
        doc = parse_json_object(raw, str(ref))
        if is_index(doc, media_type):
            desc = select_platform(doc, os, arch, variant, str(ref))
            ref = ref.with_digest(desc["digest"])
            raw, media_type, digest = self.get_manifest(ref, max_size=max(desc["size"], 1))
            if len(raw) != desc["size"]:
                raise DigestMismatch("%s: manifest is %d bytes, index says %d" % (ref, len(raw), desc["size"]))
            doc = parse_json_object(raw, str(ref))
            if is_index(doc, media_type):
                raise ManifestError("%s: the index entry for %s/%s is itself an index" % (ref, os, arch))
        check_manifest(doc, str(ref))
        return doc, raw, media_type or doc.get("mediaType", ""), ref.with_digest(digest)

    # ---- blobs ----------------------------------------------------------------------------------------------

    def fetch_blob(self, ref, digest, sink, size=None, max_size=None):
        """Stream blob `digest` into `sink.write`, verifying size and sha256; returns the byte count.

        If this raises, what the sink received must be discarded (the blob was not verified)."""
        check_digest(digest)
        if not digest.startswith("sha256:"):
            raise DigestMismatch("%s: blob %s: only sha256 digests can be verified" % (ref.name(), digest))
        if size is not None and max_size is not None and size > max_size:
            raise TooLarge("%s: blob %s is %d bytes, over the %d byte cap" % (ref.name(), digest, size, max_size))
        cap = max_size if size is None else size
        resp = self.request("GET", ref, "/blobs/" + digest, {}, what="blob " + digest)
        h = self.sha256()
        try:
            length = resp.headers.get("content-length")
            if length and length.isdigit() and cap is not None and int(length) > cap:
                raise TooLarge("%s: blob %s is %s bytes, over the %s byte %s" % (
                    ref.name(), digest, length, cap, "cap" if size is None else "size its descriptor gives"))
            buf = bytearray(CHUNK)
            mv = memoryview(buf)
            total = 0
            resumed = 0
            while True:
                try:
                    n = resp.readinto(buf)
                except TransportError as exc:
                    # a dropped connection: ask for the rest (the hash and the sink simply go on), also while
                    # the registry is still coming back
                    resp.close()
                    while True:
                        if resumed >= self.retries or not total or isinstance(exc, DeadlineExceeded):
                            raise exc from None
                        self._pause(resumed, str(exc))
                        resumed += 1
                        try:
                            resp = self._resume(ref, digest, total, exc)
                            break
                        except TransportError as again:
                            exc = again
                    continue
                if not n:
                    break
                total += n
                if cap is not None and total > cap:
                    raise TooLarge("%s: blob %s exceeds %d bytes" % (ref.name(), digest, cap))
                chunk = mv[:n]
                h.update(chunk)
                sink.write(chunk)
        finally:
            resp.close()
            if hasattr(h, "close"):
                h.close()
        got = _hexdigest(h)
        if got != digest:
            raise DigestMismatch("%s: blob digest mismatch: got %s want %s (served by %s)"
                                 % (ref.name(), got, digest, resp.endpoint))
        if size is not None and total != size:
            raise DigestMismatch("%s: blob %s is %d bytes, descriptor says %d" % (ref.name(), digest, total, size))
        return total

    def _resume(self, ref, digest, offset, cause):
        """The rest of a blob from `offset` (Range); a server that answers anything but the matching 206
        re-raises `cause` (the download then starts over)."""
        resp = self.request("GET", ref, "/blobs/" + digest, {"Range": "bytes=%d-" % offset}, what="blob " + digest)
        if resp.status == 206 and resp.headers.get("content-range", "").startswith("bytes %d-" % offset):
            if self.log:
                self.log("resuming %s at byte %d from %s" % (digest, offset, resp.endpoint))
            return resp
        http.drain(resp)
        raise cause

    def _fetch_retrying(self, ref, digest, make_sink, size, max_size):
        # a transport error in the middle of a body restarts the whole download with a fresh sink
        # bytes that do not hash to the digest: the endpoint serving them is dropped for the next one
        attempt = 0
        mismatches = 0
        while True:
            sink = make_sink()
            try:
                self.fetch_blob(ref, digest, sink, size, max_size)
                return sink
            except TransportError as exc:
                if attempt >= self.retries or isinstance(exc, DeadlineExceeded):
                    raise
                self._pause(attempt, str(exc))
                attempt += 1
            except DigestMismatch as exc:
                eps, current = self._endpoint_list(ref)
                mismatches += 1
                if mismatches >= len(eps) or not self._switch(ref, current, str(exc)):
                    raise

    def fetch_blob_to_sink(self, ref, digest, make_sink, size=None, max_size=None):
        """Stream a verified blob into `make_sink()` (called again for each attempt that must start over);
        returns the sink that holds the verified bytes."""
        return self._fetch_retrying(ref, digest, make_sink, size, max_size)

    def fetch_blob_bytes(self, ref, digest, size=None, max_size=64 << 20):
        """The verified bytes of a (small) blob."""
        return bytes(self._fetch_retrying(ref, digest, _BytesSink, size, max_size).buf)

    def fetch_blob_to_path(self, ref, digest, path, size=None, max_size=None):
        """Download into `<path>.part`, verify, then rename to `path` (a failure leaves no `path`). The `.part`
        file is created anew ("x": a link planted at its name is removed, never written through). CPython."""
        import os

        part = path + ".part"

        def make_sink():
            try:
                os.remove(part)
            except OSError:
                pass
            return open(part, "xb")

        try:
            f = self._fetch_retrying(ref, digest, make_sink, size, max_size)
            f.close()
        except BaseException:
            try:
                os.remove(part)
            except OSError:
                pass
            raise
        os.rename(part, path)
        return path

    def blob_exists(self, ref, digest):
        """HEAD the blob: True if the registry has it."""
        try:
            resp = self.request("HEAD", ref, "/blobs/" + digest, {})
        except NotFound:
            return False
        http.drain(resp, 0)
        return True

    # ---- uploads (push) -------------------------------------------------------------------------------------

    def push_blob(self, ref, body, digest, size):
        """Monolithic upload (HEAD, POST, PUT ?digest=); `body` is bytes or a seekable file. Returns True if sent."""
        if self.blob_exists(ref, digest):
            return False
        resp = self.request("POST", ref, "/blobs/uploads/", {"Content-Length": "0"}, b"", what="upload start")
        location = resp.headers.get("location")
        http.drain(resp)
        if resp.status != 202 or not location:
            raise RegistryError("%s: upload start answered %d without Location" % (ref.name(), resp.status),
                                resp.status)
        url = http.resolve(self.base_url(ref) + "/blobs/uploads/", location)
        url += ("&" if "?" in url else "?") + "digest=" + http.quote(digest)
        resp = self.request("PUT", ref, url, {"Content-Type": "application/octet-stream",
                                              "Content-Length": str(size)}, body, what="blob upload " + digest)
        http.drain(resp)
        if resp.status != 201:
            raise RegistryError("%s: blob upload answered %d, want 201" % (ref.name(), resp.status), resp.status)
        return True

    def push_manifest(self, ref, raw, media_type, reference=None):
        """PUT raw manifest bytes at `reference` (default ref.reference()); returns the digest."""
        digest = sha256_digest(raw)
        target = reference or ref.tag or digest
        resp = self.request("PUT", ref, "/manifests/" + target, {"Content-Type": media_type,
                                                                  "Content-Length": str(len(raw))}, raw,
                            what="manifest " + target)
        http.drain(resp)
        if resp.status != 201:
            raise RegistryError("%s: manifest PUT answered %d, want 201" % (ref.name(), resp.status), resp.status)
        said = resp.headers.get("docker-content-digest")
        if said and said != digest:
            raise DigestMismatch("%s: registry stored manifest as %s, we computed %s" % (ref.name(), said, digest))
        return digest


def _why(exc):
    """A short reason for the switch line: the status, or the transport error without its request."""
    if isinstance(exc, RegistryError):
        return "HTTP %d" % exc.status
    text = str(exc)
    i = text.find("://")
    j = text.find(": ", i) if i >= 0 else -1
    return text[j + 2:] if j >= 0 else text


# ---- untrusted JSON --------------------------------------------------------------------------------------------

def parse_json_object(raw, where):
    """Decode untrusted bytes as a JSON object or raise ManifestError."""
    try:
        doc = json.loads(raw)
    except Exception:
        raise ManifestError("%s: manifest is not valid JSON" % where) from None
    if not isinstance(doc, dict):
        raise ManifestError("%s: manifest is not a JSON object" % where)
    return doc


def is_index(doc, media_type=""):
    """Index / manifest list by Content-Type, by mediaType, or by a non-empty `manifests` array."""
    if media_type in oci.INDEX_TYPES or doc.get("mediaType") in oci.INDEX_TYPES:
        return True
    m = doc.get("manifests")
    return isinstance(m, list) and len(m) > 0


def check_descriptor(desc, where):
    """A descriptor must have a string mediaType, a valid digest and a non-negative int size."""
    if not isinstance(desc, dict):
        raise ManifestError("%s: descriptor is not an object" % where)
    digest = desc.get("digest")
    size = desc.get("size")
    if not isinstance(digest, str):
        raise ManifestError("%s: descriptor without digest" % where)
    try:
        check_digest(digest)
    except OciError as exc:
        raise ManifestError("%s: %s" % (where, exc)) from None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError("%s: descriptor %s has no valid size" % (where, digest))
    mt = desc.get("mediaType", "")
    if not isinstance(mt, str):
        raise ManifestError("%s: descriptor %s has a non-string mediaType" % (where, digest))
    ann = desc.get("annotations", {})
    if ann is None:
        ann = {}
    if not isinstance(ann, dict):
        raise ManifestError("%s: descriptor %s has bad annotations" % (where, digest))
    return desc


def check_manifest(doc, where):
    """An image manifest: schemaVersion 2, a config descriptor and a list of layer descriptors."""
    if doc.get("schemaVersion") != 2:
        raise ManifestError("%s: schemaVersion %r, want 2" % (where, doc.get("schemaVersion")))
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise ManifestError("%s: manifest has no layers list" % where)
    if "config" in doc:
        check_descriptor(doc["config"], where + " config")
    for i, layer in enumerate(layers):
        check_descriptor(layer, "%s layer %d" % (where, i))
    return doc


def select_platform(index, os, arch, variant=None, where="index"):
    """The FIRST descriptor of an index whose platform is os/arch (and variant when given)."""
    arch = arches.go_name(arch)
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise ManifestError("%s: index has no manifests list" % where)
    for desc in manifests:
        if not isinstance(desc, dict):
            continue
        plat = desc.get("platform")
        if not isinstance(plat, dict):
            continue
        if plat.get("os") != os or arches.go_name(plat.get("architecture")) != arch:
            continue
        if variant and plat.get("variant") not in (None, variant):
            continue
        return check_descriptor(desc, where)
    seen = []
    for d in manifests:
        p = d.get("platform") if isinstance(d, dict) else None
        if isinstance(p, dict):
            seen.append("%s/%s" % (p.get("os"), p.get("architecture")))
    raise ManifestError("%s: no manifest in index for %s/%s (has: %s)" % (where, os, arch, ", ".join(seen) or "none"))


def layers_of(manifest, media_type):
    """Layers with exactly this mediaType, in order."""
    return [layer for layer in manifest.get("layers", []) if layer.get("mediaType") == media_type]
