"""Per arch: QEMU start -> our firmware's banner, and -> its REPL prompt (VM up, frozen boot module run),
next to QEMU start -> a minimal C hello EFI app's banner (same toolchain, same QEMU and EDK2 flags).
The ratios are the MicroPython runtime's start-up cost."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from bench.report import report
from cloudboot.fwbuild.firmware import firmware_dir
from cloudboot.fwbuild.hello import build_hello
from cloudboot.harness.machine import Machine
from cloudboot.harness.profiles import PROFILES
from cloudboot.harness.repl import BANNER

RUNS = 3


def _seconds(arch: str, efi: Path, pattern) -> float:
    with Machine(arch, efi=efi, append="cloudboot.repl") as m:
        m.expect(pattern, 120, mark="banner")
        return m.marks["banner"]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cloudboot-bench-"))
    for arch, prof in PROFILES.items():
        ours = firmware_dir() / prof.efi_name
        hello = build_hello(arch, work)
        t_ours = statistics.median(_seconds(arch, ours, BANNER) for _ in range(RUNS))
        t_ready = statistics.median(_seconds(arch, ours, b">>> ") for _ in range(RUNS))
        t_hello = statistics.median(_seconds(arch, hello, b"HELLO-UEFI banner") for _ in range(RUNS))
        report(f"{arch}: QEMU start -> banner", t_ours, "C hello.efi", t_hello)
        report(f"{arch}: QEMU start -> REPL prompt", t_ready, "C hello.efi", t_hello)
        print(f"{'':<40} image {ours.stat().st_size} bytes vs {hello.stat().st_size} bytes", flush=True)
