"""cloudmeta: `cloudboot.metadata.url` overrides and the Keystone v3 token that may guard them (portable).

Runs over the `oci.http` transport interface, like the OCI client. Behaviour (REFERENCE §1.1, metadata and
Keystone notes), fixed where the original was weak:

* GET the URL with `Accept: application/json` (and `Authorization: Bearer <token>` when there is one), body
  capped at 1 MiB. 404 means "no metadata" (not an error). 5xx/408/429 and transport errors are retried
  with bounded exponential backoff; after that, and for any other failure, we fall back to the command line
  (an empty override set and one logged line), never failing the boot.
* The `cloudboot` object may be flat (`{"plan": "..."}`, keys may contain dots) or nested as the original's
  docs promised (`{"disk": {"luks_passphrase": "..."}}` -> `cloudboot.disk.luks-passphrase`): snake_case
  becomes kebab-case, true/false become 1/0, numbers become text, lists are joined with commas, null drops
  the key. OpenStack's `meta` map is read too: its `cloudboot.*` keys (flat strings) apply.
* Keystone v3 application credentials: POST `<auth-url>/auth/tokens`, 201 + `X-Subject-Token`. The token is
  reused for every later request and fetched again once if the metadata server answers 401.
"""

from compat import json
from oci import http
from oci.errors import TransportError

BODY_MAX = 1 << 20
ERROR_BODY_MAX = 4096
MAX_DEPTH = 8


class MetadataError(Exception):
    """A metadata or Keystone request failed (the caller falls back to the command line)."""

    def __init__(self, msg, status=0):
        super().__init__(msg)
        self.status = status


def _kebab(key):
    return key.replace("_", "-")


def _text(value):
    if value is True:
        return "1"
    if value is False:
        return "0"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    return None


def flatten(block, prefix="cloudboot", depth=0, out=None):
    """`{"disk": {"luks_passphrase": "x"}, "plan": "p"}` -> {"cloudboot.disk.luks-passphrase": "x", ...}."""
    if out is None:
        out = {}
    if not isinstance(block, dict) or depth > MAX_DEPTH:
        return out
    for key in block:
        if not isinstance(key, str) or not key:
            continue
        value = block[key]
        name = prefix + "." + _kebab(key)
        if isinstance(value, dict):
            flatten(value, name, depth + 1, out)
        elif isinstance(value, list):
            parts = [_text(v) for v in value]
            if all(p is not None for p in parts):
                out[name] = ",".join(parts)
        elif value is not None:
            t = _text(value)
            if t is not None:
                out[name] = t
    return out


def overrides_from_document(doc):
    """Overrides from a decoded metadata document (see the module doc); unknown shapes give {}."""
    out = {}
    if not isinstance(doc, dict):
        return out
    meta = doc.get("meta")
    if isinstance(meta, dict):  # OpenStack meta_data.json: user metadata, flat strings
        for key in meta:
            if isinstance(key, str) and key.startswith("cloudboot.") and isinstance(meta[key], str):
                out[key] = meta[key]
    flatten(doc.get("cloudboot"), "cloudboot", 0, out)
    return out


def merge(cmdline, overrides, log=None):
    """cmdline < metadata: a new dict with the overrides applied, each change logged."""
    merged = dict(cmdline)
    for key in sorted(overrides):
        old = merged.get(key)
        if log and old != overrides[key]:
            shown = "***" if "passphrase" in key or "secret" in key or "token" in key else overrides[key]
            log("metadata: %s=%s %s" % (key, shown, "(was unset)" if old is None else "(overrides cmdline)"))
        merged[key] = overrides[key]
    return merged


class Fetcher(http.Retrying):
    """Requests with bounded redirects and retries (exponential backoff, capped) over a transport."""

    def __init__(self, transport, retries=3, backoff=0.5, backoff_max=8.0, sleep=None, log=None, max_redirects=5,
                 budget=None):
        super().__init__(retries, backoff, backoff_max, sleep, log, budget)
        self.transport = transport
        self.max_redirects = max_redirects

    def request(self, method, url, headers, body=None, cap=BODY_MAX):
        """(status, headers, body bytes) after retries; TransportError/5xx that persist raise MetadataError."""
        what = "%s %s" % (method, url)

        def once():
            # The body is read inside the attempt: a transport error halfway through it is retried too.
            resp = http.follow_redirects(self.transport, method, url, headers, body, self.max_redirects,
                                         MetadataError)
            data, truncated = http.read_capped(resp, cap)
            resp.close()
            whole = http.BytesResponse(resp.status, resp.headers, data)
            whole.truncated = truncated
            return whole

        try:
            resp = self._retrying(once, what)
        except TransportError as exc:
            raise MetadataError(str(exc)) from None
        if resp.status in http.RETRY_STATUSES:
            raise MetadataError("%s: HTTP %d (after %d attempts)" % (what, resp.status, self.retries + 1), resp.status)
        if resp.truncated:
            raise MetadataError("%s: body larger than %d bytes" % (what, cap), resp.status)
        return resp.status, resp.headers, resp.read()


def keystone_token(fetcher, auth_url, cred_id, cred_secret):
    """Exchange a Keystone v3 application credential for a token (`X-Subject-Token` of a 201)."""
    if not cred_id or not cred_secret:
        raise MetadataError("keystone: application credential id and secret are both required")
    body = json.dumps({"auth": {"identity": {"methods": ["application_credential"],
                                             "application_credential": {"id": cred_id, "secret": cred_secret}}}})
    url = auth_url.rstrip("/") + "/auth/tokens"
    status, headers, data = fetcher.request("POST", url, {"Content-Type": "application/json",
                                                          "Accept": "application/json"}, body.encode(),
                                            cap=ERROR_BODY_MAX * 64)
    if status != 201:
        raise MetadataError("keystone: POST %s answered %d: %s" % (url, status,
                                                                   data[:ERROR_BODY_MAX].decode("utf-8", "replace")),
                            status)
    token = headers.get("x-subject-token")
    if not token:
        raise MetadataError("keystone: 201 from %s without X-Subject-Token" % url, status)
    return token


class MetadataSource:
    """One metadata URL, optionally guarded by a static bearer token or a Keystone application credential.

    `keystone` is None or (auth_url, app_cred_id, app_cred_secret). fetch() returns the overrides dict;
    fetch_or_fallback() never raises."""

    def __init__(self, transport, url, token=None, keystone=None, retries=3, backoff=0.5, backoff_max=8.0,
                 sleep=None, log=None, keystone_transport=None, budget=None, keystone_budget=None):
        self.url = url
        self.static_token = token
        self.keystone = keystone
        self.log = log
        self.fetcher = Fetcher(transport, retries, backoff, backoff_max, sleep, log, budget=budget)
        # Keystone may have a transport (timeout) and a retry budget of its own (the original: 10 s vs 15 s)
        self.keystone_fetcher = self.fetcher if keystone_transport is None and keystone_budget is None else \
            Fetcher(keystone_transport or transport, retries, backoff, backoff_max, sleep, log, budget=keystone_budget)
        self._token = None
        self.keystone_exchanges = 0

    def token(self, renew=False):
        """The bearer token: static, or Keystone's (exchanged once, reused until a 401)."""
        if self.static_token and not self.keystone:
            return self.static_token
        if not self.keystone:
            return None
        if self._token is None or renew:
            self.keystone_exchanges += 1
            self._token = keystone_token(self.keystone_fetcher, self.keystone[0], self.keystone[1], self.keystone[2])
        return self._token

    def fetch(self):
        """Overrides from the URL: {} when it answers 404; MetadataError for failures that persisted."""
        for renew in (False, True):
            headers = {"Accept": "application/json"}
            token = self.token(renew)
            if token:
                headers["Authorization"] = "Bearer " + token
            status, _, data = self.fetcher.request("GET", self.url, headers)
            if status == 401 and self.keystone and not renew:
                continue
            break
        if status == 404:
            return {}
        if not 200 <= status < 300:
            raise MetadataError("metadata %s: HTTP %d" % (self.url, status), status)
        try:
            doc = json.loads(data)
        except Exception:
            raise MetadataError("metadata %s: not JSON" % self.url, status) from None
        return overrides_from_document(doc)

    def close(self):
        """Close the transports' idle connections (those that have a close())."""
        for f in (self.fetcher, self.keystone_fetcher):
            if hasattr(f.transport, "close"):
                f.transport.close()

    def fetch_or_fallback(self):
        """fetch(), or {} with one logged line (boot continues with the command line)."""
        try:
            return self.fetch()
        except MetadataError as exc:
            if self.log:
                self.log("metadata: %s; continuing with the command line" % exc)
            return {}


def from_cmdline(transport, cmd, **kwargs):
    """A MetadataSource from `cloudboot.metadata.url`, `.metadata.token` and `cloudboot.openstack.*`; None
    when no URL is set."""
    url = cmd.get("cloudboot.metadata.url")
    if not url:
        return None
    keystone = None
    if cmd.get("cloudboot.openstack.auth-url"):
        keystone = (cmd["cloudboot.openstack.auth-url"], cmd.get("cloudboot.openstack.app-cred-id", ""),
                    cmd.get("cloudboot.openstack.app-cred-secret", ""))
    return MetadataSource(transport, url, token=cmd.get("cloudboot.metadata.token"), keystone=keystone, **kwargs)
