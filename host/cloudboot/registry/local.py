"""A throw-away OCI registry on 127.0.0.1: Debian's `docker-registry` (distribution 2.8) with its storage in a
directory of ours, plain, with htpasswd (bcrypt) Basic auth, or with token auth (the tests' token server).
Used by `cloud-boot demo`, the tests and the benchmarks; installed from the system's apt sources when missing."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from cloudboot.errors import CloudBootError
from cloudboot.run import echo, run

#: The htpasswd user of auth="htpasswd" registries.
USER, PASSWORD = "tester", "s3cret-pass"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_registry_packages() -> None:
    """docker-registry and htpasswd (apache2-utils), installed from the system's apt sources if missing
    (the demo needs only the first, the tests both)."""
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
            run(["htpasswd", "-Bbc", htpasswd, USER, PASSWORD], quiet=True)
            lines += ["auth:", "  htpasswd:", "    realm: cloud-boot-test", f"    path: {htpasswd}"]
        elif auth == "token":
            lines += ["auth:", "  token:", f"    realm: {token_realm}", "    service: cloud-boot-test",
                      "    issuer: cloud-boot-test-issuer", f"    rootcertbundle: {token_cert}"]
        self.config = work / "config.yml"
        self.config.write_text("\n".join(lines) + "\n")
        self.log = open(work / "registry.log", "wb")
        cmd = [shutil.which("docker-registry") or "docker-registry", "serve", str(self.config)]
        echo(cmd)
        # Its own session: Ctrl-C on the demo's terminal reaches the demo, which stops the registry itself.
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
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
        raise CloudBootError(f"docker-registry did not start: {(work / 'registry.log').read_text()[-2000:]}")

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
        """Terminate the registry (killed after 10 s) and close its log; the storage stays (the caller's)."""
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
