"""Host names -> IPv4 addresses through the platform's resolver (`socket.getaddrinfo`: lwIP's DNS client in
the firmware, with every server the DHCP lease gave, tried in turn; libc on CPython), with a search domain."""

try:
    import _socket as socket  # CPython's C module (see netstack.http)
except ImportError:
    import socket  # MicroPython

from oci.errors import TransportError


def is_ipv4(host):
    """True for a dotted-quad IPv4 address."""
    parts = host.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p or len(p) > 3 or not all("0" <= c <= "9" for c in p) or int(p) > 255:
            return False
    return True


def candidates(host, search=""):
    """Names to try, in order: a single-label name is tried in the search domain first (as resolv.conf's
    `search` with ndots:1), then as given."""
    host = host.rstrip(".")
    if search and "." not in host:
        return [host + "." + search.strip("."), host]
    return [host]


def address(host, port, search="", getaddrinfo=None):
    """The socket address to connect() to for host:port (an IPv4 literal resolves without DNS); TransportError
    naming every name tried when none resolves."""
    lookup = getaddrinfo or socket.getaddrinfo
    names = [host] if is_ipv4(host) else candidates(host, search)
    tried = []
    for name in names:
        try:
            infos = lookup(name, port)
        except OSError as exc:
            tried.append("%s (%s)" % (name, exc))
            continue
        for info in infos:
            if info[0] == socket.AF_INET:
                return info[-1]
        tried.append("%s (no IPv4 address)" % name)
    raise TransportError("DNS: cannot resolve %s: %s" % (host, "; ".join(tried)))
