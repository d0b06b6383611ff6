"""Reference grammar: `[http(s)://|oci://]registry[:port]/repo/path[:tag][@sha256:hex]`, and platforms.

Compatible with the original (REFERENCE §3.3): the registry is the text before the first `/` (so a
reference must name one), `@digest` wins over the tag, the tag defaults to `latest`, and registries on
`localhost`/`127.0.0.1`/`[::1]` default to plain http. A registry `_<service>._tcp.<domain>` is a DNS SRV name
(`oci.srv`, `oci.mirrors`).
"""

import arches
from oci.errors import BadReference

DEFAULT_TAG = "latest"
_LOWER_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_ALNUM = _LOWER_ALNUM + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_HEX = "0123456789abcdef"
_DIGEST_HEX_LEN = {"sha256": 64, "sha512": 128}


def _only(text, allowed):
    for c in text:
        if c not in allowed:
            return False
    return True


def check_digest(digest):
    """Return `digest` if it is `algorithm:hex` with a known algorithm and the right length, else BadReference."""
    i = digest.find(":")
    algo, hexpart = digest[:i], digest[i + 1:]
    if i <= 0 or algo not in _DIGEST_HEX_LEN:
        raise BadReference("bad digest %r: want sha256:<64 hex digits>" % digest)
    if len(hexpart) != _DIGEST_HEX_LEN[algo] or not _only(hexpart, _HEX):
        raise BadReference("bad digest %r: want %s:<%d lowercase hex digits>" % (digest, algo, _DIGEST_HEX_LEN[algo]))
    return digest


def _check_component(comp, text):
    # [a-z0-9]+ joined by exactly one of: '.', '_', '__', or a run of '-'
    bad = not comp or comp[0] not in _LOWER_ALNUM or comp[-1] not in _LOWER_ALNUM
    sep = ""
    for c in comp:
        if c in _LOWER_ALNUM:
            if sep and sep not in (".", "_", "__") and not _only(sep, "-"):
                bad = True
            sep = ""
        elif c in "._-":
            sep += c
        else:
            bad = True
    if bad:
        raise BadReference("bad repository component %r in %r (lowercase letters, digits, . _ -)" % (comp, text))


def check_registry(host, text):
    """BadReference naming `text` unless `host` is `name[:port]`, `[v6][:port]` or a DNS SRV service name
    (`_oci._tcp.<domain>`, resolved by oci.srv)."""
    from oci.srv import is_service_name

    if is_service_name(host):
        return
    if not host:
        raise BadReference("missing registry in %r" % text)
    if host.startswith("["):
        end = host.find("]")
        if end < 0 or not _only(host[1:end], "0123456789abcdefABCDEF:."):
            raise BadReference("bad registry %r in %r" % (host, text))
        rest = host[end + 1:]
        if rest and (rest[0] != ":" or not _port_ok(rest[1:])):
            raise BadReference("bad registry port %r in %r" % (rest[1:], text))
        return
    name, port = host, ""
    if ":" in host:
        name, port = host.split(":", 1)
        if not _port_ok(port):
            raise BadReference("bad registry port %r in %r" % (port, text))
    if not name or not _only(name, _ALNUM + ".-") or name[0] in ".-" or name[-1] in ".-":
        raise BadReference("bad registry host %r in %r" % (name, text))


def _port_ok(port):
    """A TCP port: 1 to 65535 in decimal digits (0 is no port to connect to)."""
    return bool(port) and len(port) <= 5 and _only(port, "0123456789") and 0 < int(port) <= 65535


class Reference:
    """A parsed reference. `digest` (if any) is what is fetched; `tag` is kept for display and pushes."""

    def __init__(self, registry, repository, tag=None, digest=None, scheme="https"):
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest
        self.scheme = scheme

    def reference(self):
        """What goes after /manifests/: the digest if known, else the tag (default `latest`)."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_digest(self, digest):
        return Reference(self.registry, self.repository, self.tag, digest, self.scheme)

    def with_tag(self, tag):
        return Reference(self.registry, self.repository, tag, None, self.scheme)

    def base_url(self):
        return "%s://%s/v2/%s" % (self.scheme, self.registry, self.repository)

    def name(self):
        """`registry/repository` (cosign's docker-reference)."""
        return "%s/%s" % (self.registry, self.repository)

    def __str__(self):
        s = self.name()
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    def __repr__(self):
        return "Reference(%r)" % str(self)

    def __eq__(self, other):
        return isinstance(other, Reference) and str(self) == str(other) and self.scheme == other.scheme


def default_scheme(registry):
    """Plain http for loopback registries (as the original), https for everything else."""
    host = registry.split(":")[0] if not registry.startswith("[") else registry[:registry.find("]") + 1]
    if host.startswith("localhost") or host.startswith("127.") or host == "[::1]":
        return "http"
    return "https"


def parse(text, plain_http=None):
    """Parse `text` into a Reference; `plain_http` True/False forces the scheme (None: from prefix/host)."""
    if not isinstance(text, str):
        raise BadReference("reference must be a string")
    s = text.strip()
    scheme = None
    for prefix, sch in (("http://", "http"), ("https://", "https"), ("oci://", None)):
        if s.startswith(prefix):
            s = s[len(prefix):]
            scheme = sch
            break
    slash = s.find("/")
    if slash < 0:
        raise BadReference("missing repository in %r (want registry/repository[:tag][@digest])" % text)
    registry, rest = s[:slash], s[slash + 1:]
    check_registry(registry, text)
    digest = None
    at = rest.find("@")
    if at >= 0:
        digest = check_digest(rest[at + 1:])
        rest = rest[:at]
    tag = None
    colon = rest.rfind(":")
    if colon >= 0:
        tag = rest[colon + 1:]
        rest = rest[:colon]
        if not tag or len(tag) > 128 or tag[0] not in _ALNUM + "_" or not _only(tag, _ALNUM + "_.-"):
            raise BadReference("bad tag %r in %r (letters, digits, _ . -; at most 128)" % (tag, text))
    if not rest:
        raise BadReference("missing repository in %r" % text)
    if len(rest) > 255:
        raise BadReference("repository name longer than 255 characters in %r" % text)
    for comp in rest.split("/"):
        _check_component(comp, text)
    if digest is None and tag is None:
        tag = DEFAULT_TAG
    if plain_http is not None:
        scheme = "http" if plain_http else "https"
    elif scheme is None:
        scheme = default_scheme(registry)
    return Reference(registry, rest, tag, digest, scheme)


def bootfile_reference(text):
    """The DHCP boot file name `text` (option 67 or the BOOTP `file` field) as a plan reference, stripped, if it
    is an OCI reference naming its registry host (a dotted name, an IP, host:port or `localhost`); BadReference
    saying why not otherwise: a PXE file name such as `pxelinux.0` or `boot/grubx64.efi` is not one. The Linux
    init and the firmware's network boot both decide with this."""
    ref = parse(text)
    host = ref.registry
    if not (host.startswith("[") or "." in host or ":" in host or host == "localhost"):
        raise BadReference("%r is not a registry host (want a dotted name, an IP, host:port or localhost)" % host)
    return text.strip()


def parse_platform(text):
    """`os/arch[/variant]` -> (os, arch, variant or None); arch names we know are normalised to GOARCH names
    (the OCI platform vocabulary), others kept."""
    parts = text.split("/") if isinstance(text, str) else []
    if len(parts) not in (2, 3) or not parts[0] or not parts[1] or (len(parts) == 3 and not parts[2]):
        raise BadReference("bad platform %r: want os/arch[/variant], e.g. linux/arm64" % (text,))
    arch = arches.go_name(parts[1])
    return parts[0], arch, (parts[2] if len(parts) == 3 else None)
