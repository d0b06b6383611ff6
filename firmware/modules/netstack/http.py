"""An HTTP/1.1 client over a `socket` module, filling the `oci.http` transport interface.

Portable: the firmware runs it over MicroPython's lwIP socket, the tests over CPython's and the MicroPython
unix port's. Keep-alive (one idle connection per origin, a stale one retried once on a fresh connection),
`Content-Length`, chunked and read-to-close bodies, HEAD; a file-like request body with a `Content-Length`
header is streamed. Redirects, authentication and retries are the callers' (oci.client follows redirects and
resumes blobs with `Range`). Bodies are read straight into the caller's buffer once the headers are parsed,
so a large blob costs one `readinto` per chunk.

Every socket failure surfaces as `oci.errors.TransportError` saying what was being done and how far it got
("connection reset after 1048576 of 67108864 body bytes").
"""

try:
    import _socket as socket  # CPython's C module: socket.py's enum classes cost the init 38 ms at boot (TCG)
except ImportError:
    import socket  # MicroPython

from netstack import resolve
from oci.errors import TransportError
from oci.http import split_url

HEADER_MAX = 64 << 10
RECV = 16384
SEND_CHUNK = 1 << 20


def _send_stream(sock, f):
    """A file-like body, a chunk at a time (a pushed blob is never held in memory whole)."""
    while True:
        data = f.read(SEND_CHUNK)
        if not data:
            return
        _send_all(sock, data)


def _send_all(sock, data):
    send = getattr(sock, "sendall", None)
    if send is not None:
        send(data)
        return
    mv = memoryview(data)
    while len(mv):
        n = sock.write(mv)
        if not n:
            raise OSError("connection closed while sending")
        mv = mv[n:]


class Connection:
    """One TCP (or TLS) connection with a read buffer: lines and headers come through `recv`, bodies through
    `readinto` of exactly what is still owed (never more: a kept-alive connection must not block)."""

    def __init__(self, sock, key, raw=None):
        self.sock, self.key = sock, key
        self.raw = raw or sock  # the TCP socket under TLS (timeouts are set there)
        self.buf = b""
        self._recv_into = getattr(sock, "recv_into", None) or sock.readinto
        self._recv = getattr(sock, "recv", None)

    def _more(self):
        if self._recv is not None:
            data = self._recv(RECV)
        else:  # TLS streams on MicroPython: read() of up to n bytes
            data = self.sock.read(RECV)
        if not data:
            return False
        self.buf = self.buf + data if self.buf else data
        return True

    def readline(self, limit=HEADER_MAX):
        """One line including its CRLF (b'' at EOF)."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return line
            if len(self.buf) > limit:
                raise TransportError("header line longer than %d bytes" % limit)
            if not self._more():
                line, self.buf = self.buf, b""
                return line

    def readinto(self, mv):
        """Up to len(mv) bytes into mv (0 at EOF)."""
        if self.buf:
            n = min(len(mv), len(self.buf))
            mv[:n] = self.buf[:n]
            self.buf = self.buf[n:]
            return n
        return self._recv_into(mv)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Response:
    """status, headers (lowercase keys; repeats joined with ', '), readinto/read/close."""

    def __init__(self, transport, conn, method, status, headers, what):
        self._t, self._conn, self._what = transport, conn, what
        self.status, self.headers = status, headers
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self._left = None  # bytes owed by Content-Length (or by the current chunk)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self._left = 0
            self._chunked = False
        elif not self._chunked and length is not None:
            try:
                self._left = int(length.strip())
            except ValueError:
                raise TransportError("%s: bad Content-Length %r" % (what, length)) from None
        self._reusable = (headers.get("connection", "").lower() != "close"
                          and (self._left is not None or self._chunked))
        self._done = False
        self._got = 0
        self._chunk_end = False
        if self._left == 0 and not self._chunked:
            self._finish()

    @property
    def done(self):
        """True once the body was read to its end or the response closed (its connection is no longer ours)."""
        return self._done

    def _finish(self):
        if not self._done:
            self._done = True
            self._t._release(self._conn, self._reusable)

    def _fail(self, exc):
        self._done = True
        self._conn.close()
        owed = " of %d" % (self._got + self._left) if self._left is not None and not self._chunked else ""
        raise TransportError("%s: %s after %d%s body bytes" % (self._what, exc or type(exc).__name__, self._got,
                                                               owed)) from None

    def _next_chunk(self):
        """Read the next chunk-size line; False at the last chunk (trailers consumed)."""
        if self._chunk_end:  # the CRLF after the previous chunk's data
            self._conn.readline()
        self._chunk_end = True
        line = self._conn.readline()
        if not line:
            raise OSError("connection closed in a chunk header")
        size = line.split(b";", 1)[0].strip()
        try:
            self._left = int(size, 16)
        except ValueError:
            raise TransportError("%s: bad chunk size %r" % (self._what, bytes(size[:40]))) from None
        if self._left == 0:
            while self._conn.readline() not in (b"\r\n", b"\n", b""):
                pass
            return False
        return True

    def readinto(self, buf):
        """Fill buf with body bytes (less only where the body or its current chunk ends); returns the count
        (0 at the end of the body)."""
        if self._done or not len(buf):
            return 0
        mv = memoryview(buf)
        try:
            if self._chunked and not self._left and not self._next_chunk():
                self._finish()
                return 0
            want = len(mv) if self._left is None else min(len(mv), self._left)
            # filled, not one socket read: those come a few KiB at a time, and each call costs the caller its
            # per-chunk work (hashing hand-off, sink write)
            n = 0
            while n < want:
                k = self._conn.readinto(mv[n:want])
                if not k:
                    break
                n += k
        except OSError as exc:
            self._fail(exc)
        if not n:
            if self._left is None:  # read-to-close body: EOF is its end
                self._finish()
                return 0
            self._fail(OSError("connection closed"))
        self._got += n
        if self._left is not None:
            self._left -= n
            if not self._left and not self._chunked:
                self._finish()
        return n

    def read(self, n=-1):
        """Up to n body bytes (all of the rest when n < 0)."""
        out = bytearray()
        buf = bytearray(RECV)
        while n < 0 or len(out) < n:
            k = self.readinto(buf if n < 0 else memoryview(buf)[:min(RECV, n - len(out))])
            if not k:
                break
            out.extend(memoryview(buf)[:k])
        return bytes(out)

    def close(self):
        """Done with the response: an unread body closes the connection (it cannot be reused)."""
        if not self._done:
            self._done = True
            self._conn.close()


class Transport:
    """request(method, url, headers, body) -> Response, over keep-alive connections.

    timeout  seconds for connect and each read (a silent server fails the request: the callers retry)
    search   DNS search domain (DHCP option 15)
    tls      callable(sock, server_hostname) -> wrapped socket, for https; None refuses https URLs
    """

    def __init__(self, timeout=30.0, search="", tls=None, user_agent="cloud-boot", sock_module=None,
                 getaddrinfo=None):
        self.timeout, self.search, self.tls, self.user_agent = timeout, search, tls, user_agent
        self.socket = sock_module or socket
        self.getaddrinfo = getaddrinfo or self.socket.getaddrinfo
        self._idle = {}

    def _connect(self, scheme, host, port):
        if scheme == "https" and self.tls is None:
            raise TransportError("https://%s:%d: this transport has no TLS" % (host, port))
        addr = resolve.address(host, port, self.search, self.getaddrinfo)
        raw = self.socket.socket(self.socket.AF_INET, self.socket.SOCK_STREAM)
        what = "connect to"
        try:
            raw.settimeout(self.timeout)
            raw.connect(addr)
            what = "TLS handshake with"
            sock = self.tls(raw, host) if scheme == "https" else raw
        except (OSError, ValueError) as exc:  # MicroPython's tls raises ValueError for some handshake errors
            raw.close()
            raise TransportError("%s %s:%d: %s" % (what, host, port, exc or type(exc).__name__)) from None
        return Connection(sock, (scheme, host, port), raw)

    def _release(self, conn, reusable):
        if reusable and conn.key not in self._idle:
            self._idle[conn.key] = conn
        else:
            conn.close()

    def request(self, method, url, headers, body=None):
        scheme, host, port, path = split_url(url)
        key = (scheme, host, port)
        default = 443 if scheme == "https" else 80
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % (host if port == default else "%s:%d" % (host, port)),
                 "User-Agent: %s" % self.user_agent]
        names = set()
        for k in headers or {}:
            lines.append("%s: %s" % (k, headers[k]))
            names.add(k.lower())
        stream = body is not None and not isinstance(body, (bytes, bytearray, memoryview))
        if stream and "content-length" not in names:  # its length is needed first
            body, stream = body.read(), False
        if body is not None and "content-length" not in names:
            lines.append("Content-Length: %d" % len(body))
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        what = "%s %s" % (method, url)
        for fresh in (False, True):
            conn = None if fresh else self._idle.pop(key, None)
            reused = conn is not None
            if conn is None:
                conn = self._connect(scheme, host, port)
            try:
                if reused:
                    conn.raw.settimeout(self.timeout)
                _send_all(conn.sock, head)
                if stream:
                    if fresh:  # the stale connection took part of it
                        body.seek(0)
                    _send_stream(conn.sock, body)
                elif body:
                    _send_all(conn.sock, body)
                status, hdrs = self._read_head(conn, what)
            except (OSError, TransportError) as exc:
                conn.close()
                if reused:
                    continue  # the server closed the kept-alive connection: once more on a new one
                if isinstance(exc, TransportError):
                    raise
                raise TransportError("%s: %s" % (what, exc or type(exc).__name__)) from None
            return Response(self, conn, method, status, hdrs, what)
        raise TransportError("%s: connection failed" % what)

    def _read_head(self, conn, what):
        while True:
            line = conn.readline()
            if not line:
                raise OSError("connection closed before the response")
            parts = line.decode("latin-1").strip().split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise TransportError("%s: not an HTTP/1.x response: %r" % (what, bytes(line[:60])))
            status = int(parts[1])
            headers = {}
            total = 0
            while True:
                h = conn.readline()
                total += len(h)
                if total > HEADER_MAX:
                    raise TransportError("%s: response headers over %d bytes" % (what, HEADER_MAX))
                if h in (b"\r\n", b"\n"):
                    break
                if not h:
                    raise OSError("connection closed in the response headers")
                text = h.decode("latin-1")
                i = text.find(":")
                if i <= 0:
                    continue
                k, v = text[:i].strip().lower(), text[i + 1:].strip()
                headers[k] = headers[k] + ", " + v if k in headers else v
            if status != 100:  # 100 Continue precedes the real answer
                return status, headers

    def close(self):
        """Close idle connections."""
        for conn in self._idle.values():
            conn.close()
        self._idle = {}
