"""What the init e2e tests (test_init_boot, test_init_plan, test_pathc) share: console checks for the kexec'd
target and the FATAL + rescue prompt path, on a VM from `cloudboot.harness.trial.machine`, the registry content
they boot, and a metadata server."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable
from pathlib import Path

from cloudboot.cli import main as cli
from cloudboot.harness import trial
from cloudboot.harness.machine import Machine


def target_cmdline(q: Machine, timeout: float = 240) -> str:
    """The kexec'd target's `target cmdline: ...` line, after its marker (waited for up to `timeout` s)."""
    q.expect_line(trial.MARKER, timeout)
    return q.expect_line(r"target cmdline:", 30).text


def fatal_then_rescue(q: Machine, timeout: float, *want: str) -> str:
    """The init's FATAL line (containing each of `want`) within `timeout` s, then a working Python rescue prompt
    run by PID 1 that, when left, prompts again; the kernel never panics. Returns the FATAL line."""
    line = q.expect_line(r"FATAL: ", timeout).text
    for text in want:
        assert text in line, line
    q.expect_line(r"cloud-boot rescue: a Python prompt", 30)
    q.send("print(6 * 7, os.getpid())\n")
    q.expect_line(r"^(>>> )?42 1$", 30)
    q.send("exit()\n")  # leaving the prompt: PID 1 stays and prompts again
    q.expect_line(r"PID 1 stays; new rescue prompt", 60)
    assert "Kernel panic" not in q.text
    return line


def push_debian(registry, ref: str, initrd: Callable[[str], Path], plan: Path, plan_ref: str,
                arches: tuple[str, ...] = ("amd64", "arm64")) -> None:
    """Debian's kernel + `initrd(arch)` for each of `arches` as `<ref>-<arch>` artifacts under a multi-arch index
    at `ref` (each machine picks its own), and `plan` at `plan_ref` (refs without the registry host)."""
    refs = []
    for arch in arches:
        one = f"{registry.host}/{ref}-{arch}"
        assert cli(["push", "artifact", one, "--platform", f"linux/{arch}", "--kernel",
                    str(trial.boot_kernel(arch)), "--initrd", str(initrd(arch))]) == 0
        refs += ["-p", f"linux/{arch}={one}"]
    assert cli(["push", "index", f"{registry.host}/{ref}", *refs]) == 0
    assert cli(["push", "plan", f"{registry.host}/{plan_ref}", str(plan)]) == 0


class Metadata:
    """A 127.0.0.1 HTTP server answering GET /meta.json with `document` (404 elsewhere)."""

    def __init__(self) -> None:
        self.document: dict = {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):  # noqa: N802
                body = json.dumps(outer.document).encode()
                self.send_response(200 if self.path == "/meta.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
