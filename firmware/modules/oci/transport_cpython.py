"""The `oci.http` transport interface on CPython: the firmware's own HTTP/1.1 client (`netstack.http`:
keep-alive, chunked bodies, streamed uploads) over the OS's sockets, TLS through `ssl`, and a whole-request
deadline.

CPython only (the host CLI and the Linux init). `ssl` is imported on the first https request: the init on a
plain-http registry never loads it, nor `http.client` and the `email` package under it (together 0.23 s of
the init's start on arm64 under TCG, measured with -X importtime at boot).
"""

import _socket as socket  # not socket.py (see netstack.http)
import threading

from netstack import http
from oci.errors import DeadlineExceeded, TransportError
from oci.http import split_url


class _Deadline:
    """A request's whole-life limit: when it passes, the connection's socket is shut down (a read blocked on a
    registry that trickles a byte at a time returns at once) and `expired` is set for the reader to report."""

    def __init__(self, seconds, what):
        self.seconds, self.what = seconds, what
        self.expired = False
        self._conn = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, conn):
        with self._lock:
            self._conn = conn
            if self.expired:
                self._shutdown()

    def _shutdown(self):
        sock = getattr(self._conn, "sock", None)
        if sock is not None:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's: under TLS too
            except OSError:
                pass

    def _expire(self):
        with self._lock:
            self.expired = True
            self._shutdown()

    def cancel(self):
        self._timer.cancel()

    def error(self):
        return DeadlineExceeded("%s: no complete answer within %g s (the request deadline)" % (self.what,
                                                                                            self.seconds))


class _Response:
    """netstack's response under a deadline: a read cut short by it says DeadlineExceeded."""

    def __init__(self, resp, deadline):
        self._resp, self._deadline = resp, deadline
        self.status, self.headers = resp.status, resp.headers

    def _checked(self, read, arg):
        try:
            out = read(arg)
        except TransportError:
            self._deadline.cancel()
            if self._deadline.expired:
                raise self._deadline.error() from None
            raise
        if self._deadline.expired:  # a short read of a socket shut down by the deadline is no end of the body
            self._resp.close()
            raise self._deadline.error()
        if self._resp.done:  # the connection may serve the next request: this deadline must not touch it
            self._deadline.cancel()
        return out

    def readinto(self, buf):
        return self._checked(self._resp.readinto, buf)

    def read(self, n=-1):
        return self._checked(self._resp.read, n)

    def close(self):
        self._deadline.cancel()
        self._resp.close()


def _getaddrinfo(host, port):
    """socket.getaddrinfo with an ASCII name as bytes: a str goes through the idna codec, whose import
    (stringprep, unicodedata) costs the init 15 ms under TCG even for an IP address."""
    return socket.getaddrinfo(host.encode() if host.isascii() else host, port)


class Transport(http.Transport):
    """request(method, url, headers, body) over pooled HTTP/1.1 connections.

    timeout   seconds for connect and for each read (an idle connection)
    deadline  seconds for each whole request, connect to last byte of the body (None: no limit); when it
              passes the request fails with DeadlineExceeded, which is not retried
    insecure  TLS without certificate verification (`--insecure`); plain http is chosen by the URL
    cafile    extra CA bundle for private registries
    """

    def __init__(self, timeout=60.0, insecure=False, cafile=None, user_agent="cloud-boot", deadline=None):
        super().__init__(timeout=timeout if deadline is None else min(timeout, deadline), tls=self._tls,
                         user_agent=user_agent, getaddrinfo=_getaddrinfo)
        self.deadline = deadline
        self.insecure, self.cafile = insecure, cafile
        self._ssl_context = None
        self._watching = None  # the deadline of the request being made
        if cafile:
            self.ssl_context  # noqa: B018 - a bad --ca-file is reported at once, not at the first https request

    @property
    def ssl_context(self):
        """The TLS context, made on first use (loading the system's CA store takes ~0.1 s, wasted on plain http)."""
        if self._ssl_context is None:
            import ssl

            if self.insecure:
                self._ssl_context = ssl._create_unverified_context()
            else:
                self._ssl_context = ssl.create_default_context(cafile=self.cafile)
        return self._ssl_context

    def _tls(self, sock, host):
        return self.ssl_context.wrap_socket(sock, server_hostname=host)

    def _connect(self, scheme, host, port):
        conn = super()._connect(scheme, host, port)
        conn.raw = conn.sock  # ssl detached the TCP socket it wrapped: timeouts go to the TLS one
        if self._watching is not None:
            self._watching.watch(conn)
        return conn

    def request(self, method, url, headers, body=None):
        if self.deadline is None:
            return super().request(method, url, headers, body)
        scheme, host, port, path = split_url(url)
        deadline = _Deadline(self.deadline, "%s %s://%s:%d%s" % (method, scheme, host, port, path[:200]))
        idle = self._idle.get((scheme, host, port))
        if idle is not None:
            deadline.watch(idle)
        self._watching = deadline
        try:
            resp = super().request(method, url, headers, body)
        except TransportError:
            deadline.cancel()
            if deadline.expired:
                raise deadline.error() from None
            raise
        finally:
            self._watching = None
        if deadline.expired:
            resp.close()
            raise deadline.error()
        if resp.done:  # HEAD, 204, an empty body
            deadline.cancel()
        return _Response(resp, deadline)
