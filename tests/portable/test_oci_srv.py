"""DNS SRV codec and RFC 2782 order (oci.srv), mirror lists and endpoints (oci.mirrors), and the client's failover
between endpoints over fake registries. Plain asserts: runs on CPython (pytest) and the MicroPython unix port."""

import struct

from test_oci_client import FakeRegistry, _artifact, _raises

from oci import http
from oci.client import Client
from oci.errors import BadReference, DigestMismatch, NotFound, TransportError
from oci.mirrors import Endpoints, parse_mirror, parse_mirror_list
from oci.ref import parse
from oci.srv import DnsError, decode_answer, encode_name, encode_query, is_service_name, order

NAME = "_oci._tcp.example.com"


def _answer(qid, records, flags=0x8180, extra=b"", count=None):
    """A response to encode_query(NAME, qid) with SRV records (owner = pointer to the question)."""
    question = encode_name(NAME) + struct.pack(">HH", 33, 1)
    body = b""
    for prio, weight, port, target in records:
        rdata = struct.pack(">HHH", prio, weight, port) + encode_name(target)
        body += b"\xc0\x0c" + struct.pack(">HHIH", 33, 1, 300, len(rdata)) + rdata
    n = len(records) if count is None else count
    return struct.pack(">HHHHHH", qid, flags, 1, n, 0, 0) + question + body + extra


def test_service_names():
    assert is_service_name("_oci._tcp.example.com")
    assert is_service_name("_oci._udp.example.com.")
    for no in ("_oci.example.com", "127.0.0.1:5000", "registry.example.com", "_oci._tcp", "_oci._tcp.a:5000",
               "_._tcp.example.com", "_oci._tcp..com"):
        assert not is_service_name(no), no
    ref = parse("_oci._tcp.example.com/boot/kernel:1")
    assert ref.registry == NAME and ref.scheme == "https" and ref.repository == "boot/kernel"
    _raises(BadReference, parse, "_oci.example.com/boot/kernel:1")


def test_query_bytes():
    q = encode_query(NAME, 0x1234)
    assert q[:12] == struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    assert q[12:] == b"\x04_oci\x04_tcp\x07example\x03com\x00\x00\x21\x00\x01"
    _raises(DnsError, encode_name, "a..b")
    _raises(DnsError, encode_name, "x" * 64 + ".com")
    _raises(DnsError, encode_name, ".".join(["abcdefgh"] * 40))


def test_decode_records_and_addresses():
    a_record = encode_name("reg1.example.com") + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([10, 0, 0, 7])
    msg = _answer(7, [(10, 60, 5000, "reg1.example.com"), (20, 0, 443, "reg2.example.com")], extra=a_record)
    msg = msg[:6] + struct.pack(">HHH", 2, 0, 1) + msg[12:]  # two answers, one additional
    records, addresses, truncated = decode_answer(msg, 7, NAME)
    assert records == [(10, 60, 5000, "reg1.example.com"), (20, 0, 443, "reg2.example.com")]
    assert addresses == {"reg1.example.com": ["10.0.0.7"]} and not truncated


def test_decode_refuses_bad_answers():
    good = _answer(9, [(1, 1, 80, "a.example")])
    assert "not a response" in _raises(DnsError, decode_answer, good, 10, NAME)
    assert "NXDOMAIN" in _raises(DnsError, decode_answer, _answer(9, [], flags=0x8183), 9, NAME)
    assert "we asked for" in _raises(DnsError, decode_answer, good, 9, "_x._tcp.other.org")
    assert "shorter than a header" in _raises(DnsError, decode_answer, good[:5], 9, NAME)
    for cut in range(12, len(good) - 1):
        _raises(DnsError, decode_answer, good[:cut], 9, NAME)
    # a name pointer to itself: a loop, not a hang
    loop = bytearray(good)
    i = len(encode_name(NAME)) + 16  # the answer's owner pointer
    loop[i:i + 2] = struct.pack(">H", 0xC000 | i)
    assert "loop" in _raises(DnsError, decode_answer, bytes(loop), 9, NAME)
    # truncated (TC) answers give what is complete and say so
    records, _, truncated = decode_answer(_answer(9, [(1, 1, 80, "a.example")], flags=0x8380)[:40], 9, NAME)
    assert truncated and records == []


def test_rfc2782_order():
    recs = [(20, 0, 1, "low"), (10, 0, 2, "zero"), (10, 60, 3, "w60"), (10, 40, 4, "w40"), (5, 1, 5, "."),
            (30, 0, 6, "")]
    # rand(n) -> 0 always picks the first record whose running sum >= 0: zero weights first, then in order
    assert [r[3] for r in order(recs, lambda n: 0)] == ["zero", "w60", "w40", "low"]
    # the top of the range picks the last of the remaining ones
    assert [r[3] for r in order(recs, lambda n: n - 1)] == ["w40", "w60", "zero", "low"]
    # weights 100 vs 1: the heavy one first in >= 90% of draws (a fixed LCG, the same on every runtime)
    state = [12345]

    def lcg(n):
        state[0] = (state[0] * 1103515245 + 12345) & 0x7FFFFFFF
        return (state[0] >> 8) % n

    heavy = 0
    for _ in range(1000):
        if order([(0, 1, 1, "light"), (0, 100, 2, "heavy")], lcg)[0][3] == "heavy":
            heavy += 1
    assert heavy >= 900, heavy
    assert order([(0, 0, 0, ".")]) == []


class FakeResolver:
    def __init__(self, targets):
        self.targets = targets
        self.asked = []

    def srv(self, name):
        self.asked.append(name)
        if name not in self.targets:
            raise DnsError("DNS: %s: no such name (NXDOMAIN)" % name)
        return self.targets[name]


def test_mirror_entries():
    assert parse_mirror("https://m.example:8443/") == ("https", "m.example:8443")
    assert parse_mirror_list(" a.example , http://127.0.0.1:5000,,") == [(None, "a.example"),
                                                                      ("http", "127.0.0.1:5000")]
    for bad in ("", "m.example/path", "bad host", "h:99999", "ftp://x"):
        _raises(BadReference, parse_mirror, bad)


def test_endpoints_order_and_schemes():
    log = []
    res = FakeResolver({NAME: [("reg1.example.com", 5000), ("127.0.0.1", 5001)]})
    eps = Endpoints([(None, "mirror.example"), (None, "127.0.0.1:6000"), ("http", "mirror.example")], res, log.append)
    got = [str(e) for e in eps.of(parse(NAME + "/boot/k:1"))]
    assert got == ["https://reg1.example.com:5000", "http://127.0.0.1:5001", "https://mirror.example",
                   "http://127.0.0.1:6000", "http://mirror.example"]
    eps.of(parse(NAME + "/other:2"))
    assert res.asked == [NAME] and "DNS SRV" in log[0]  # resolved once for the boot
    # a forced scheme (cloudboot.insecure=1) applies to the mirrors without one of their own
    got = [str(e) for e in eps.of(parse("reg.example/boot/k:1", plain_http=True))]
    assert got == ["http://reg.example", "http://mirror.example", "http://127.0.0.1:6000"]
    assert "NXDOMAIN" in _raises(DnsError, eps.of, parse("_oci._tcp.nowhere.example/x:1"))
    assert "no resolver" in _raises(BadReference, Endpoints().of, parse(NAME + "/x:1"))


class Hosts:
    """A transport over several fake registries, by host; a host missing from the map refuses connections."""

    def __init__(self, regs):
        self.regs = regs
        self.seen = []

    def request(self, method, url, headers, body=None):
        host = http.split_url(url)[1] + ":" + str(http.split_url(url)[2])
        self.seen.append((method, host, headers.get("Range")))
        if host not in self.regs:
            raise TransportError("connection refused")
        return self.regs[host].request(method, url, headers, body)


def test_client_fails_over_and_stays():
    a, b = FakeRegistry(), FakeRegistry()
    (_, _), layer = _artifact(b, "boot/k", "1", b"kernel bytes" * 100)
    _artifact(a, "boot/k", "1", b"kernel bytes" * 100)
    a.fail = [503] * 10
    log, sleeps = [], []
    t = Hosts({"a.example:443": a, "b.example:443": b})
    eps = Endpoints([(None, "b.example")], log=log.append)
    c = Client(t, retries=2, sleep=sleeps.append, log=log.append, endpoints=eps)
    ref = parse("a.example/boot/k:1")
    manifest, _, _, pinned = c.resolve(ref)
    assert "registry: a.example failed (HTTP 503), trying b.example" in log
    assert sleeps == [0.5, 1.0]  # the retry discipline on a before the switch
    assert c.fetch_blob_bytes(pinned, layer["digest"]) == b"kernel bytes" * 100
    assert [h for _, h, _ in t.seen].count("a.example:443") == 3  # then b only
    assert c.base_url(ref) == "https://b.example/v2/boot/k"


def test_client_fails_over_on_404_by_digest_only():
    a, b = FakeRegistry(), FakeRegistry()
    (digest, _), layer = _artifact(b, "boot/k", "1", b"k" * 10)
    _artifact(a, "boot/k", "1", b"k" * 10)
    del a.blobs[layer["digest"]]
    c = Client(Hosts({"a.example:443": a, "b.example:443": b}), sleep=lambda s: None,
               endpoints=Endpoints([(None, "b.example")]))
    assert c.fetch_blob_bytes(parse("a.example/boot/k@" + digest), layer["digest"]) == b"k" * 10
    c2 = Client(Hosts({"a.example:443": a, "b.example:443": b}), sleep=lambda s: None,
                endpoints=Endpoints([(None, "b.example")]))
    _raises(NotFound, c2.get_manifest, parse("a.example/boot/k:missing"))  # a tag's 404 is final


def test_client_drops_a_mirror_serving_wrong_bytes():
    a, b = FakeRegistry(), FakeRegistry()
    (_, _), layer = _artifact(b, "boot/k", "1", b"good" * 50)
    _artifact(a, "boot/k", "1", b"good" * 50)
    a.blobs[layer["digest"]] = b"evil" * 50
    log = []
    c = Client(Hosts({"a.example:443": a, "b.example:443": b}), sleep=lambda s: None, log=log.append,
               endpoints=Endpoints([(None, "b.example")]))
    assert c.fetch_blob_bytes(parse("a.example/boot/k:1"), layer["digest"]) == b"good" * 50
    assert [m for m in log if "digest mismatch" in m and "served by a.example" in m and "trying b.example" in m]
    # no mirror left that serves the right bytes: the mismatch is the error
    b.blobs[layer["digest"]] = b"evil" * 50
    c = Client(Hosts({"a.example:443": a, "b.example:443": b}), sleep=lambda s: None,
               endpoints=Endpoints([(None, "b.example")]))
    _raises(DigestMismatch, c.fetch_blob_bytes, parse("a.example/boot/k:1"), layer["digest"])


def test_every_endpoint_down_is_one_error():
    c = Client(Hosts({}), retries=1, sleep=lambda s: None, endpoints=Endpoints([(None, "b.example")]))
    msg = _raises(TransportError, c.get_manifest, parse("a.example/boot/k:1"))
    assert "b.example" in msg and "after 2 attempts" in msg
