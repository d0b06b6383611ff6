"""Real registries for the OCI tests: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1 with a temporary
storage directory, plain, with htpasswd (bcrypt) Basic auth, or with token auth backed by a small JWT token
server (ES256, x5c) run in-process; plus a fault-injecting HTTP proxy for 5xx/timeouts."""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

USER, PASSWORD = "tester", "s3cret-pass"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_registry_packages() -> None:
    """docker-registry and htpasswd (apache2-utils), installed from the system's apt sources if missing."""
    if shutil.which("docker-registry") and shutil.which("htpasswd"):
        return
    from cloudboot.toolchain.apt import system_install

    system_install(["docker-registry", "apache2-utils"])


class Registry:
    """A running `docker-registry serve CONFIG`; `host` is `127.0.0.1:PORT`, `root` its storage.

    `tls` (certificate, key) serves https; `port` and `storage` let a restarted registry take over another's
    address and blobs."""

    def __init__(self, work: Path, auth: str = "none", token_realm: str = "", token_cert: Path | None = None,
                 tls: tuple[Path, Path] | None = None, port: int | None = None, storage: Path | None = None):
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.root = storage or work / "storage"
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        lines = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
                 "storage:", "  filesystem:", f"    rootdirectory: {self.root}", "  delete:", "    enabled: true",
                 "http:", f"  addr: 127.0.0.1:{self.port}", f"  secret: {os.urandom(8).hex()}"]
        if tls:
            lines += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
        if auth == "htpasswd":
            htpasswd = work / "htpasswd"
            subprocess.run(["htpasswd", "-Bbc", str(htpasswd), USER, PASSWORD], check=True, capture_output=True)
            lines += ["auth:", "  htpasswd:", "    realm: cloud-boot-test", f"    path: {htpasswd}"]
        elif auth == "token":
            lines += ["auth:", "  token:", f"    realm: {token_realm}", "    service: cloud-boot-test",
                      "    issuer: cloud-boot-test-issuer", f"    rootcertbundle: {token_cert}"]
        self.config = work / "config.yml"
        self.config.write_text("\n".join(lines) + "\n")
        self.log = open(work / "registry.log", "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(self.config)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not start: {(work / 'registry.log').read_text()[-2000:]}")

    def blob_path(self, digest: str) -> Path:
        """Where distribution keeps a blob's bytes (to tamper with them)."""
        hexd = digest.split(":", 1)[1]
        return self.root / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"

    def kill(self) -> None:
        """SIGKILL: connections drop mid-transfer (stop() lets distribution finish what it serves)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@contextlib.contextmanager
def serving(work: Path, **kw) -> Iterator[Registry]:
    """A started Registry in `work` (its Debian packages installed first if missing; `kw` as Registry's),
    stopped on exit: what the `registry*` fixtures and bench_init hold."""
    ensure_registry_packages()
    reg = Registry(work, **kw)
    try:
        yield reg
    finally:
        reg.stop()


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

class FaultProxy:
    """A reverse proxy in front of a registry that answers the first `fail` requests whose path contains
    `match` with `status` (or hangs for `hang` seconds), then forwards everything."""

    def __init__(self, upstream: str):
        import http.client

        self.upstream = upstream
        self.fail, self.status, self.match, self.hang, self.seen = 0, 503, "", 0.0, 0
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _handle(self):
                proxy.seen += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.fail > 0 and proxy.match in self.path:
                    proxy.fail -= 1
                    if proxy.hang:
                        time.sleep(proxy.hang)
                    self.send_response(proxy.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection(*proxy.upstream.split(":"), timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
