"""Per arch: QEMU start -> our firmware's banner, and -> its REPL prompt (VM up, frozen boot module run),
next to QEMU start -> a minimal C hello EFI app's banner (same toolchain, same QEMU and EDK2 flags).
The ratios are the MicroPython runtime's start-up cost. Both marks of our firmware come from the same boots."""

from __future__ import annotations

import re
import statistics
import tempfile
from pathlib import Path

import arches
from bench.report import report
from cloudboot.fwbuild.firmware import firmware_dir
from cloudboot.fwbuild.hello import build_hello
from cloudboot.harness.machine import Machine
from cloudboot.harness.repl import BANNER

RUNS = 3


def _marks(arch: str, efi: Path, patterns: dict[str, re.Pattern | bytes]) -> dict[str, float]:
    """Seconds from QEMU start to each pattern (in order) in one boot."""
    with Machine(arch, efi=efi, append="cloudboot.repl") as m:
        for name, pattern in patterns.items():
            m.expect(pattern, 120, mark=name)
        return dict(m.marks)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cloudboot-bench-") as work:
        for arch in arches.NAMES:
            ours = firmware_dir() / arches.get(arch).efi_name
            hello = build_hello(arch, Path(work))
            runs = [_marks(arch, ours, {"banner": BANNER, "prompt": b">>> "}) for _ in range(RUNS)]
            t_banner = statistics.median(r["banner"] for r in runs)
            t_prompt = statistics.median(r["prompt"] for r in runs)
            t_hello = statistics.median(_marks(arch, hello, {"banner": b"HELLO-UEFI banner"})["banner"]
                                        for _ in range(RUNS))
            report(f"{arch}: QEMU start -> banner", t_banner, "C hello.efi", t_hello)
            report(f"{arch}: QEMU start -> REPL prompt", t_prompt, "C hello.efi", t_hello)
            print(f"{'':<40} image {ours.stat().st_size} bytes vs {hello.stat().st_size} bytes", flush=True)
