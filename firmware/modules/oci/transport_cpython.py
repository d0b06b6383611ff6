"""The `oci.http` transport interface on CPython (http.client + ssl), with keep-alive connections.

CPython only (the host CLI and the Linux init); the firmware fills the same interface with its own stack.
"""

import http.client
import socket
import ssl

from oci.errors import TransportError
from oci.http import split_url


class _Response:
    def __init__(self, transport, key, conn, resp):
        self._transport, self._key, self._conn, self._resp = transport, key, conn, resp
        self.status = resp.status
        self.headers = {}
        for k, v in resp.getheaders():
            k = k.lower()
            self.headers[k] = self.headers[k] + ", " + v if k in self.headers else v
        self._done = False

    def readinto(self, buf):
        try:
            n = self._resp.readinto(buf)
        except (OSError, http.client.HTTPException) as exc:
            self._fail()
            raise TransportError("reading the response: %s" % (exc or type(exc).__name__)) from None
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
            self._fail()
            raise TransportError("reading the response: %s" % (exc or type(exc).__name__)) from None
        if n is None or n < 0 or not data:
            self._finish()
        return data

    def _finish(self):
        if not self._done:
            self._done = True
            self._transport._release(self._key, self._conn, reusable=not self._resp.will_close)

    def _fail(self):
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

    timeout   seconds for connect and for each read
    insecure  TLS without certificate verification (`--insecure`); plain http is chosen by the URL
    cafile    extra CA bundle for private registries
    """

    def __init__(self, timeout=60.0, insecure=False, cafile=None, user_agent="cloud-boot"):
        self.timeout = timeout
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
            try:
                conn.request(method, path, body=body, headers=hdrs)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if reused and not isinstance(exc, socket.timeout):
                    if body is not None and hasattr(body, "seek"):
                        body.seek(0)
                    continue  # a kept-alive connection the server had closed: once more on a new one
                raise TransportError("%s %s://%s:%d: %s" % (method, scheme, host, port,
                                                             exc or type(exc).__name__)) from None
            r = _Response(self, key, conn, resp)
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
