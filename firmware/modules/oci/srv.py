"""DNS SRV discovery for registry names `_<service>._tcp.<domain>` (RFC 2782), portable.

The original resolved registry hosts shaped `_oci._tcp.example.com` through SRV records (REFERENCE §3.3). This
module is the codec (one query, its answer, bounded and checked: answers are untrusted bytes), the RFC 2782
order (priority ascending, then a weighted random draw within each priority), and a small stub resolver that
sends the query over UDP (TCP when the answer is truncated) to the name servers of /etc/resolv.conf or any
given ones. It uses only `socket`, `struct` and `random`/`os.urandom`, so it runs on MicroPython too.
"""

import struct

from oci.errors import TransportError

TYPE_A = 1
TYPE_SRV = 33
CLASS_IN = 1
MAX_NAME = 255
MAX_POINTERS = 32
_RCODES = {1: "format error", 2: "server failure", 3: "no such name (NXDOMAIN)", 4: "not implemented",
           5: "refused"}


class DnsError(TransportError):
    """A DNS query failed, or its answer is malformed (the message names what and where)."""


def is_service_name(host):
    """True for `_svc._tcp.domain` / `_svc._udp.domain` (no port): the names resolved through SRV."""
    labels = host.rstrip(".").split(".")
    return (len(labels) >= 3 and len(labels[0]) > 1 and labels[0][0] == "_" and labels[1] in ("_tcp", "_udp")
            and all(labels[2:]) and ":" not in host)


def encode_name(name):
    """A domain name in wire form (labels, root byte); DnsError for an empty or over-long label or name."""
    out = bytearray()
    for label in name.rstrip(".").split("."):
        raw = label.encode()
        if not raw or len(raw) > 63:
            raise DnsError("bad DNS name %r: empty label or label over 63 bytes" % name)
        out.append(len(raw))
        out.extend(raw)
    out.append(0)
    if len(out) > MAX_NAME:
        raise DnsError("bad DNS name %r: longer than 255 bytes" % name)
    return bytes(out)


def encode_query(name, qid, qtype=TYPE_SRV):
    """A recursive query for `name`/`qtype` class IN with message id `qid`."""
    return struct.pack(">HHHHHH", qid & 0xFFFF, 0x0100, 1, 0, 0, 0) + encode_name(name) + struct.pack(">HH", qtype,
                                                                                                       CLASS_IN)


def _read_name(msg, off):
    """(name, offset after the name in place) for a possibly compressed name at `off`."""
    labels = []
    end = None
    jumps = 0
    total = 0
    while True:
        if off >= len(msg):
            raise DnsError("DNS answer: name runs past the end at offset %d" % off)
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if off + 1 >= len(msg):
                raise DnsError("DNS answer: truncated name pointer at offset %d" % off)
            jumps += 1
            if jumps > MAX_POINTERS:
                raise DnsError("DNS answer: name pointer loop at offset %d" % off)
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            continue
        if n & 0xC0:
            raise DnsError("DNS answer: bad label type 0x%02x at offset %d" % (n, off))
        off += 1
        if n == 0:
            break
        if off + n > len(msg):
            raise DnsError("DNS answer: label runs past the end at offset %d" % off)
        total += n + 1
        if total > MAX_NAME:
            raise DnsError("DNS answer: name longer than 255 bytes at offset %d" % off)
        labels.append(bytes(msg[off:off + n]).decode("ascii", "replace"))
        off += n
    return ".".join(labels), (off if end is None else end)


def _same_name(a, b):
    return a.rstrip(".").lower() == b.rstrip(".").lower()


def decode_answer(msg, qid, name, qtype=TYPE_SRV):
    """Records answering `name`/`qtype` in a response to query `qid`:
    ([(priority, weight, port, target)] for SRV or [address] for A, {target: [IPv4 address]} from any A records,
    truncated?). DnsError for a malformed message, a mismatched id or question, or an error rcode."""
    if len(msg) < 12:
        raise DnsError("DNS answer: %d bytes, shorter than a header" % len(msg))
    rid, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", bytes(msg[:12]))
    if rid != qid & 0xFFFF or not flags & 0x8000:
        raise DnsError("DNS answer: not a response to our query (id %d, want %d)" % (rid, qid & 0xFFFF))
    rcode = flags & 0xF
    if rcode:
        raise DnsError("DNS: %s: %s" % (name, _RCODES.get(rcode, "error code %d" % rcode)))
    truncated = bool(flags & 0x0200)
    off = 12
    for _ in range(qd):
        qname, off = _read_name(msg, off)
        if off + 4 > len(msg):
            raise DnsError("DNS answer: question runs past the end at offset %d" % off)
        if not _same_name(qname, name):
            raise DnsError("DNS answer: question is %r, we asked for %r" % (qname, name))
        off += 4
    records = []
    addresses = {}
    for i in range(an + ns + ar):
        try:
            rname, off = _read_name(msg, off)
        except DnsError:
            if truncated:  # a TC answer ends anywhere: keep what is complete
                break
            raise
        if off + 10 > len(msg):
            if truncated:
                break
            raise DnsError("DNS answer: record header runs past the end at offset %d" % off)
        rtype, rclass, _ttl, rdlen = struct.unpack(">HHIH", bytes(msg[off:off + 10]))
        off += 10
        if off + rdlen > len(msg):
            if truncated:
                break
            raise DnsError("DNS answer: record data runs past the end at offset %d" % off)
        if rclass == CLASS_IN and rtype == TYPE_A and rdlen == 4:
            addr = "%d.%d.%d.%d" % tuple(msg[off:off + 4])
            addresses.setdefault(rname.lower(), []).append(addr)
            if i < an and qtype == TYPE_A and _same_name(rname, name):
                records.append(addr)
        elif i < an and rclass == CLASS_IN and rtype == TYPE_SRV == qtype and _same_name(rname, name):
            if rdlen < 7:
                raise DnsError("DNS answer: SRV record of %d bytes at offset %d" % (rdlen, off))
            prio, weight, port = struct.unpack(">HHH", bytes(msg[off:off + 6]))
            target, after = _read_name(msg, off + 6)
            if after > off + rdlen:
                raise DnsError("DNS answer: SRV target runs past its record at offset %d" % off)
            records.append((prio, weight, port, target))
        off += rdlen
    return records, addresses, truncated


def _random_below(n):
    """A random integer in [0, n) (n <= 2**16)."""
    try:
        import random

        return random.getrandbits(16) % n
    except (ImportError, AttributeError):
        import os

        return struct.unpack(">H", os.urandom(2))[0] % n


def order(records, rand=None):
    """RFC 2782's order of SRV records: by priority ascending; within one priority, repeatedly pick a record
    with probability proportional to its weight (zero-weight records get a small chance, placed first as the
    RFC says). A lone "." target means the service is not offered: no records."""
    rand = rand or _random_below
    usable = [r for r in records if r[3] not in ("", ".")]
    out = []
    for prio in sorted(set(r[0] for r in usable)):
        # zero weights first (RFC 2782), otherwise as given (MicroPython's sort is not stable: no sort here)
        group = [r for r in usable if r[0] == prio and not r[1]] + [r for r in usable if r[0] == prio and r[1]]
        while group:
            total = 0
            for r in group:
                total += r[1]
            pick = rand(total + 1)
            running = 0
            for i, r in enumerate(group):
                running += r[1]
                if running >= pick:
                    out.append(group.pop(i))
                    break
    return out


def nameservers(text):
    """The `nameserver` addresses of resolv.conf text, in order."""
    out = []
    for line in text.split("\n"):
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            out.append(words[1])
    return out


class Resolver:
    """A stub resolver: each query goes to each server in turn (`attempts` rounds), over UDP, again over TCP when
    the answer is truncated. `servers` are (host, port) pairs; `socket_module` lets tests or a firmware supply
    their own `socket`."""

    def __init__(self, servers, timeout=2.0, attempts=2, socket_module=None, path=None):
        self.servers = None if servers is None else list(servers)
        self.path = path
        self.timeout = timeout
        self.attempts = attempts
        self._socket = socket_module
        self._qid = None  # drawn at the first query: most boots never ask (random's import is 8 ms on arm64 TCG)

    @classmethod
    def from_resolv_conf(cls, path="/etc/resolv.conf", **kw):
        """A resolver using the name servers of resolv.conf (port 53), read at each query: the init rewrites
        the file when DHCP, `cloudboot.dns=` or the plan's `dns` say so."""
        return cls(None, path=path, **kw)

    def _servers(self):
        if self.servers is not None:
            return self.servers
        try:
            with open(self.path) as f:
                text = f.read()
        except OSError:
            text = ""
        return [(s, 53) for s in nameservers(text)]

    def _sock(self):
        if self._socket is None:
            import socket

            self._socket = socket
        return self._socket

    def _exchange_udp(self, addr, query):
        socket = self._sock()
        s = socket.socket(addr[0], socket.SOCK_DGRAM)
        try:
            s.settimeout(self.timeout)
            s.sendto(query, addr[1])
            return s.recv(4096)
        finally:
            s.close()

    def _exchange_tcp(self, addr, query):
        socket = self._sock()
        s = socket.socket(addr[0], socket.SOCK_STREAM)
        try:
            s.settimeout(self.timeout)
            s.connect(addr[1])
            s.send(struct.pack(">H", len(query)) + query)
            data = b""
            while len(data) < 2 or len(data) < 2 + struct.unpack(">H", data[:2])[0]:
                chunk = s.recv(4096)
                if not chunk:
                    raise DnsError("DNS over TCP: connection closed after %d bytes" % len(data))
                data += chunk
            return data[2:2 + struct.unpack(">H", data[:2])[0]]
        finally:
            s.close()

    def query(self, name, qtype=TYPE_SRV):
        """(records, addresses) of decode_answer for `name`; DnsError naming every server's failure."""
        servers = self._servers()
        if not servers:
            raise DnsError("DNS: cannot resolve %s: no name servers%s" % (name, " in " + self.path if self.path
                                                                         else ""))
        socket = self._sock()
        errors = []
        for _ in range(self.attempts):
            for host, port in servers:
                self._qid = _random_below(1 << 16) if self._qid is None else (self._qid + 1) & 0xFFFF
                query = encode_query(name, self._qid, qtype)
                try:
                    info = socket.getaddrinfo(host, port)[0]
                    addr = (info[0], info[-1])
                    records, addresses, truncated = decode_answer(self._exchange_udp(addr, query), self._qid,
                                                                  name, qtype)
                    if truncated:
                        records, addresses, _ = decode_answer(self._exchange_tcp(addr, query), self._qid, name,
                                                              qtype)
                    return records, addresses
                except DnsError as exc:
                    if "NXDOMAIN" in str(exc):
                        raise
                    errors.append("%s:%d: %s" % (host, port, exc))
                except OSError as exc:
                    errors.append("%s:%d: %s" % (host, port, exc or "timed out"))
        raise DnsError("DNS: cannot resolve %s: %s" % (name, "; ".join(errors)))

    def srv(self, name, rand=None):
        """[(target, port)] of `name`'s SRV records in RFC 2782 order; DnsError when there are none."""
        records, _ = self.query(name, TYPE_SRV)
        ordered = order(records, rand)
        if not ordered:
            raise DnsError("DNS: %s has no SRV records" % name)
        return [(r[3].rstrip("."), r[2]) for r in ordered]
