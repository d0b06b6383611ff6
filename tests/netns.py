"""A network namespace a test makes, holding one TAP device for QEMU: Linux's own IPv4/TCP stack on the far side
of the guest's NIC instead of QEMU's user-mode network. Processes (QEMU, dnsmasq) and sockets are created inside
it from a thread that joined it (setns(2) moves only the calling thread); `Forwarder` relays a port inside the
namespace to a server on this namespace's 127.0.0.1, so the test's registry stays where it is. Root only."""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip() or f'status {proc.returncode}'}")


class Netns:
    """`ip netns` NAME with `lo` and `tap0` (ADDR/24) up; `close()` deletes it and what lives in it."""

    def __init__(self, addr: str = "10.77.0.1", tap: str = "tap0"):
        self.name, self.addr, self.tap = f"cbtap-{uuid.uuid4().hex[:8]}", addr, tap
        _ip("netns", "add", self.name)
        try:  # from a thread inside it, not `ip -n` (that remounts / rslave, which a chroot's / refuses)
            for args in (("link", "set", "lo", "up"), ("tuntap", "add", "dev", tap, "mode", "tap"),
                         ("addr", "add", f"{addr}/24", "dev", tap), ("link", "set", tap, "up")):
                self.run_inside(lambda args=args: _ip(*args))
        except BaseException:
            self.close()
            raise

    def run_inside(self, fn: Callable[[], T]) -> T:
        """fn() on a thread that joined the namespace (what it starts or opens lives there); its result."""
        out: dict[str, object] = {}

        def body() -> None:
            fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {self.name}: {os.strerror(err)}")
                out["value"] = fn()
            except BaseException as exc:  # handed to the caller's thread
                out["error"] = exc
            finally:
                os.close(fd)

        t = threading.Thread(target=body)
        t.start()
        t.join()
        if "error" in out:
            raise out["error"]  # type: ignore[misc]
        return out["value"]  # type: ignore[return-value]

    def popen(self, argv: list[str], **kw) -> subprocess.Popen:
        return self.run_inside(lambda: subprocess.Popen(argv, **kw))

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


class Forwarder:
    """Listens on the namespace's ADDR:PORT (a free port) and relays each connection to 127.0.0.1:`upstream` here;
    `relayed` counts the bytes sent towards the namespace."""

    def __init__(self, ns: Netns, upstream: int):
        self.upstream, self.relayed, self._lock, self._open = upstream, 0, threading.Lock(), []
        self.sock = ns.run_inside(lambda: socket.create_server((ns.addr, 0)))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:  # closed
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=30)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            self._open += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, inward: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
                if inward:
                    with self._lock:
                        self.relayed += len(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:  # the other side went away, or close()
            pass

    def close(self) -> None:
        self.sock.close()
        for s in self._open:
            s.close()
