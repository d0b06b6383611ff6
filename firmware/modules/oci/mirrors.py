"""The ordered registries ("endpoints") that may serve a reference's registry, and which one is in use.

For a registry name the list is: its SRV targets in RFC 2782 order when the name is `_svc._tcp.<domain>`
(resolved once per boot and cached), else the name itself; then every configured mirror (the
`cloudboot.registry.mirror=` list, then the plan's `mirrors`), duplicates dropped. The client tries them in
that order with one retry discipline each and stays on the one that last worked (see `oci.client`).

A mirror is `[http://|https://]host[:port]`. Without a scheme it takes the reference's when that was forced
(`cloudboot.insecure=1`, `--plain-http`), else the default for its host (http for loopback, https elsewhere).
"""

from oci.errors import BadReference
from oci.ref import check_registry, default_scheme


class Endpoint:
    """One registry to talk to: scheme and `host[:port]`."""

    def __init__(self, scheme, host):
        self.scheme = scheme
        self.host = host

    def __str__(self):
        return "%s://%s" % (self.scheme, self.host)

    def __eq__(self, other):
        return isinstance(other, Endpoint) and self.scheme == other.scheme and self.host == other.host


def parse_mirror(text):
    """(scheme or None, host[:port]) of one mirror entry; BadReference naming it when malformed."""
    s = text.strip()
    scheme = None
    for prefix in ("http://", "https://"):
        if s.startswith(prefix):
            scheme = prefix[:-3]
            s = s[len(prefix):]
    s = s.rstrip("/")
    if not s or "/" in s:
        raise BadReference("bad registry mirror %r: want [http://|https://]host[:port]" % text)
    check_registry(s, text)
    return scheme, s


def parse_mirror_list(text):
    """The comma-separated mirror list of `cloudboot.registry.mirror=` (blanks around entries ignored)."""
    return [parse_mirror(part) for part in text.split(",") if part.strip()]


class Endpoints:
    """Endpoints per registry name for one boot.

    mirrors   [(scheme or None, host)] tried after a registry's own endpoints (add more with add_mirrors)
    resolver  an object with srv(name) -> [(target, port)] (oci.srv.Resolver), needed for SRV names
    log       callable(message) for the switch lines
    """

    def __init__(self, mirrors=(), resolver=None, log=None):
        self.mirrors = []
        self.add_mirrors(mirrors)
        self.resolver = resolver
        self.log = log
        self._srv = {}  # SRV name -> [(target, port)] (the boot's cache)
        self._current = {}  # registry name -> index of the endpoint that last worked

    def add_mirrors(self, mirrors):
        """Append mirrors (entries as parse_mirror gives them), keeping the first of duplicates."""
        for m in mirrors:
            if m not in self.mirrors:
                self.mirrors.append(m)

    def _own(self, registry):
        from oci.srv import is_service_name

        if not is_service_name(registry):
            return [registry]
        if registry not in self._srv:
            if self.resolver is None:
                raise BadReference("%s is a DNS SRV name and no resolver is configured" % registry)
            targets = self.resolver.srv(registry)
            self._srv[registry] = ["%s:%d" % (t, p) for t, p in targets]
            if self.log:
                self.log("registry: %s -> %s (DNS SRV)" % (registry, ", ".join(self._srv[registry])))
        return self._srv[registry]

    def of(self, ref):
        """[Endpoint] for ref's registry, in the order to try."""
        forced = ref.scheme != default_scheme(ref.registry)
        out = []
        for host in self._own(ref.registry):
            ep = Endpoint(ref.scheme if forced or host == ref.registry else default_scheme(host), host)
            if ep not in out:
                out.append(ep)
        for scheme, host in self.mirrors:
            ep = Endpoint(scheme or (ref.scheme if forced else default_scheme(host)), host)
            if ep not in out:
                out.append(ep)
        return out

    def start(self, ref):
        """Index (into of(ref)) of the endpoint to try first: the one that last worked."""
        return self._current.get(ref.registry, 0)

    def worked(self, ref, index):
        """Remember that endpoint `index` answered for ref's registry."""
        self._current[ref.registry] = index
