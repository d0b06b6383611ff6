"""Real registries for the OCI tests: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1 with a temporary
storage directory, plain, with htpasswd (bcrypt) Basic auth, or with token auth backed by a small JWT token
server (ES256, x5c) run in-process; plus a fault-injecting HTTP proxy for 5xx/timeouts. The registry runner
itself is cloudboot.registry.local (the demo uses it too)."""

from __future__ import annotations

import base64
import datetime
import json
import os
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cloudboot.registry.local import PASSWORD, USER, free_port

# ---- token server ------------------------------------------------------------------------------------------------

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues ES256 JWTs (x5c header) the way distribution's token auth expects; checks Basic credentials.

    `issued` counts tokens handed out (to show the client reuses them)."""

    def __init__(self, work: Path):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cloud-boot-test-token")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=10)).sign(self.key, hashes.SHA256()))
        self.cert_pem = work / "token.crt"
        self.cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.issued = 0
        self.port = free_port()
        self.realm = f"http://127.0.0.1:{self.port}/token"
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                auth = self.headers.get("Authorization", "")
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if auth != expected:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                access = []
                for scope in q.get("scope", []):
                    kind, _, rest = scope.partition(":")
                    name, _, actions = rest.rpartition(":")
                    access.append({"type": kind, "name": name, "actions": actions.split(",")})
                body = json.dumps({"token": server.issue(q.get("service", [""])[0], access)}).encode()
                server.issued += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def issue(self, service: str, access: list) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        now = int(time.time())
        header = {"alg": "ES256", "typ": "JWT", "x5c": [base64.b64encode(self.cert_der).decode()]}
        claims = {"iss": "cloud-boot-test-issuer", "sub": USER, "aud": service, "exp": now + 600, "nbf": now - 10,
                  "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- fault injection ---------------------------------------------------------------------------------------------

def _forward(handler: BaseHTTPRequestHandler, upstream: str):
    """Send the request `handler` is serving on to `upstream` (host:port): (connection, response)."""
    import http.client

    length = int(handler.headers.get("Content-Length") or 0)
    body = handler.rfile.read(length) if length else None
    conn = http.client.HTTPConnection(*upstream.split(":"), timeout=30)
    headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
    conn.request(handler.command, handler.path, body=body, headers=headers)
    return conn, conn.getresponse()


class _Proxy:
    """A reverse proxy on 127.0.0.1 in front of `upstream` (host:port): every request goes to `handle`."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _handle(self):
                proxy.handle(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.handle_error = lambda request, address: None  # clients and upstreams cut mid-stream: expected
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FaultProxy(_Proxy):
    """A reverse proxy in front of a registry that answers the first `fail` requests whose path contains
    `match` with `status` (or hangs for `hang` seconds), then forwards everything."""

    def __init__(self, upstream: str):
        self.fail, self.status, self.match, self.hang, self.seen = 0, 503, "", 0.0, 0
        super().__init__(upstream)

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        self.seen += 1
        if self.fail > 0 and self.match in req.path:
            self.fail -= 1
            length = int(req.headers.get("Content-Length") or 0)
            if length:
                req.rfile.read(length)
            if self.hang:
                time.sleep(self.hang)
            req.send_response(self.status)
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        conn, resp = _forward(req, self.upstream)
        data = resp.read()
        req.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                req.send_header(k, v)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(data)
        conn.close()


class CuttingProxy(_Proxy):
    """A streaming reverse proxy in front of a registry that plays a mirror dying mid-download: once it has
    forwarded `cut_after` bytes of one blob body, it calls `on_cut()` (e.g. the registry's kill), cuts that
    connection and stops listening (later connections are refused). `cut_after=None` only forwards."""

    def __init__(self, upstream: str, cut_after: int | None = None, on_cut=None):
        self.cut_after, self.on_cut = cut_after, on_cut
        self.cut = threading.Event()
        super().__init__(upstream)

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        import http.client

        conn, resp = _forward(req, self.upstream)
        req.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection"):
                req.send_header(k, v)
        req.end_headers()
        sent = 0
        cutting = self.cut_after is not None and "/blobs/" in req.path and req.command == "GET"
        while req.command != "HEAD":
            try:
                chunk = resp.read(1 << 16)
            except (OSError, http.client.HTTPException):
                chunk = b""
            if not chunk:
                if resp.length:  # the upstream died mid-body: so does this connection
                    req.close_connection = True
                    req.connection.shutdown(socket.SHUT_RDWR)
                break
            if cutting and not self.cut.is_set() and sent + len(chunk) >= self.cut_after:
                req.wfile.write(chunk[:self.cut_after - sent])
                req.wfile.flush()
                self._die(req.connection)
                req.close_connection = True
                break
            req.wfile.write(chunk)
            sent += len(chunk)
        conn.close()

    def _die(self, client: socket.socket) -> None:
        self.cut.set()
        if self.on_cut:
            self.on_cut()
        self.httpd.socket.close()  # refuse new connections at once
        try:
            client.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        threading.Thread(target=self.stop, daemon=True).start()
