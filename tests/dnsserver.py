"""A small authoritative DNS server on 127.0.0.1 (UDP and TCP, one port) for the SRV tests: it answers SRV and A
questions from a table, NXDOMAIN for other names, and can set the truncation bit on UDP answers so clients
must retry over TCP. Written with struct from RFC 1035, independent of the client's codec in oci.srv."""

from __future__ import annotations

import errno
import socket
import socketserver
import struct
import threading


def _name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def _question(msg: bytes) -> tuple[str, int, int]:
    off, labels = 12, []
    while msg[off]:
        n = msg[off]
        labels.append(msg[off + 1:off + 1 + n].decode())
        off += 1 + n
    qtype, _ = struct.unpack(">HH", msg[off + 1:off + 5])
    return ".".join(labels), qtype, off + 5


def build_answer(msg: bytes, srv: dict, a: dict, truncate: bool = False) -> bytes:
    """The response to query `msg` from the tables (NXDOMAIN for names in neither); `truncate`: TC, no records."""
    qid = struct.unpack(">H", msg[:2])[0]
    name, qtype, end = _question(msg)
    key = name.lower()
    answers = b""
    count = 0
    if qtype == 33:
        for prio, weight, port, target in srv.get(key, []):
            rdata = struct.pack(">HHH", prio, weight, port) + _name(target)
            # owner name as a compression pointer to the question (offset 12)
            answers += b"\xc0\x0c" + struct.pack(">HHIH", 33, 1, 60, len(rdata)) + rdata
            count += 1
    elif qtype == 1:
        for addr in a.get(key, []):
            answers += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(addr)
            count += 1
    flags = 0x8180 if key in srv or key in a else 0x8183
    if truncate:
        return struct.pack(">HHHHHH", qid, flags | 0x0200, 1, 0, 0, 0) + msg[12:end]
    return struct.pack(">HHHHHH", qid, flags, 1, count, 0, 0) + msg[12:end] + answers


class DnsServer:
    """`srv[name] = [(priority, weight, port, target)]`, `a[name] = [ipv4]`; `queries` counts questions asked;
    `truncate_udp` makes every UDP answer empty with TC set."""

    def __init__(self) -> None:
        self.srv: dict[str, list[tuple[int, int, int, str]]] = {}
        self.a: dict[str, list[str]] = {}
        self.queries: list[tuple[str, int, str]] = []
        self.truncate_udp = False
        server = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                sock.sendto(server.answer(data, "udp"), self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                head = self.request.recv(2)
                (n,) = struct.unpack(">H", head)
                data = b""
                while len(data) < n:
                    data += self.request.recv(n - len(data))
                out = server.answer(data, "tcp")
                self.request.sendall(struct.pack(">H", len(out)) + out)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        for _ in range(100):  # the UDP port the kernel picks may be taken for TCP (an outgoing connection's port)
            self.udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Udp)
            self.port = self.udp.server_address[1]
            try:
                self.tcp = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Tcp)
                break
            except OSError as e:
                self.udp.server_close()
                if e.errno != errno.EADDRINUSE:
                    raise
        else:
            raise OSError(errno.EADDRINUSE, "no port free for both UDP and TCP on 127.0.0.1")
        for s in (self.udp, self.tcp):
            threading.Thread(target=s.serve_forever, daemon=True).start()

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def answer(self, msg: bytes, proto: str) -> bytes:
        self.queries.append((*_question(msg)[:2], proto))
        return build_answer(msg, self.srv, self.a, truncate=proto == "udp" and self.truncate_udp)

    def stop(self) -> None:
        for s in (self.udp, self.tcp):
            s.shutdown()
            s.server_close()
