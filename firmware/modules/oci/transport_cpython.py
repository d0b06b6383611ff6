"""The `oci.http` transport interface on CPython (http.client + ssl), with keep-alive connections.

CPython only (the host CLI and the Linux init); the firmware fills the same interface with its own stack.
"""

import http.client
import socket
import ssl
import threading

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
    def __init__(self, transport, key, conn, resp, deadline=None):
        self._transport, self._key, self._conn, self._resp = transport, key, conn, resp
        self._deadline = deadline
        self.status = resp.status
        self.headers = {}
        for k, v in resp.getheaders():
            k = k.lower()
            self.headers[k] = self.headers[k] + ", " + v if k in self.headers else v
        self._done = False

    def _expired(self):
        return self._deadline is not None and self._deadline.expired

    def _failed(self, exc):
        self._fail()
        if self._expired():
            return self._deadline.error()
        return TransportError("reading the response: %s" % (exc or type(exc).__name__))

    def readinto(self, buf):
        try:
            n = self._resp.readinto(buf)
        except (OSError, http.client.HTTPException) as exc:
            raise self._failed(exc) from None
        if self._expired():  # a short read of a socket shut down by the deadline is no end of the body
            raise self._failed(None)
        if not n and len(buf) and self._resp.length:
            # http.client ends a body cut short by the peer silently: a dropped connection, said as one
            missing = self._resp.length
            self._fail()
            raise TransportError("connection closed with %d bytes of the body missing" % missing)
        if not n:
            self._finish()
        return n

    def read(self, n=-1):
        try:
            data = self._resp.read() if n is None or n < 0 else self._resp.read(n)
        except (OSError, http.client.HTTPException) as exc:
            raise self._failed(exc) from None
        if self._expired():
            raise self._failed(None)
        if n is None or n < 0 or not data:
            self._finish()
        return data

    def _finish(self):
        if self._deadline is not None:
            self._deadline.cancel()
        if not self._done:
            self._done = True
            self._transport._release(self._key, self._conn, reusable=not self._resp.will_close)

    def _fail(self):
        if self._deadline is not None:
            self._deadline.cancel()
        if not self._done:
            self._done = True
            self._conn.close()

    def close(self):
        if self._done:
            return
        if self._resp.isclosed():
            self._finish()
        else:
            self._fail()  # unread body: the connection cannot be reused


class Transport:
    """request(method, url, headers, body) over pooled HTTP/1.1 connections.

    timeout   seconds for connect and for each read (an idle connection)
    deadline  seconds for each whole request, connect to last byte of the body (None: no limit); when it
              passes the request fails with DeadlineExceeded, which is not retried
    insecure  TLS without certificate verification (`--insecure`); plain http is chosen by the URL
    cafile    extra CA bundle for private registries
    """

    def __init__(self, timeout=60.0, insecure=False, cafile=None, user_agent="cloud-boot", deadline=None):
        self.timeout = timeout if deadline is None else min(timeout, deadline)
        self.deadline = deadline
        self.user_agent = user_agent
        self.insecure, self.cafile = insecure, cafile
        self._ssl_context = None
        self._idle = {}
        if cafile:
            self.ssl_context  # noqa: B018 - a bad --ca-file is reported at once, not at the first https request

    @property
    def ssl_context(self):
        """The TLS context, made on first use (loading the system's CA store takes ~0.1 s, wasted on plain http)."""
        if self._ssl_context is None:
            if self.insecure:
                self._ssl_context = ssl._create_unverified_context()
            else:
                self._ssl_context = ssl.create_default_context(cafile=self.cafile)
        return self._ssl_context

    def _connect(self, scheme, host, port):
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self.ssl_context,
                                               blocksize=1 << 20)
        return http.client.HTTPConnection(host, port, timeout=self.timeout, blocksize=1 << 20)

    def _release(self, key, conn, reusable):
        if reusable and key not in self._idle:
            self._idle[key] = conn
        else:
            conn.close()

    def request(self, method, url, headers, body=None):
        scheme, host, port, path = split_url(url)
        key = (scheme, host, port)
        hdrs = {"User-Agent": self.user_agent}
        hdrs.update(headers or {})
        if body is not None and not any(k.lower() == "content-length" for k in hdrs):
            if isinstance(body, (bytes, bytearray, memoryview)):
                hdrs["Content-Length"] = str(len(body))
        for fresh in (False, True):
            conn = None if fresh else self._idle.pop(key, None)
            reused = conn is not None
            if conn is None:
                conn = self._connect(scheme, host, port)
            deadline = None
            if self.deadline is not None:
                deadline = _Deadline(self.deadline, "%s %s://%s:%d%s" % (method, scheme, host, port, path[:200]))
                deadline.watch(conn)
            try:
                if conn.sock is None:
                    conn.connect()
                    if deadline is not None:
                        deadline.watch(conn)
                conn.request(method, path, body=body, headers=hdrs)
                resp = conn.getresponse()
                if deadline and deadline.expired:
                    raise OSError("deadline")
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if deadline is not None:
                    deadline.cancel()
                    if deadline.expired:
                        raise deadline.error() from None
                if reused and not isinstance(exc, socket.timeout):
                    if body is not None and hasattr(body, "seek"):
                        body.seek(0)
                    continue  # a kept-alive connection the server had closed: once more on a new one
                raise TransportError("%s %s://%s:%d: %s" % (method, scheme, host, port,
                                                             exc or type(exc).__name__)) from None
            r = _Response(self, key, conn, resp, deadline)
            if method == "HEAD":
                resp.read()
                r._finish()
            return r
        raise TransportError("%s %s: connection failed" % (method, url))

    def close(self):
        """Close idle connections."""
        for conn in self._idle.values():
            conn.close()
        self._idle.clear()
