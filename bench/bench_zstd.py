"""Decompressing a ~30 MB binary compressed with `zstd -19` (kernel-like): our portable compat.zstd on CPython
(and on the MicroPython unix port when it is built) against the `zstd -d` CLI (C), same file, as throughput."""

from __future__ import annotations

import glob
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.report import report
from compat.zstd import decompress_bytearray

RUNS = 3
SIZE = 30_000_000
MP_SCRIPT = """
import time
from compat.zstd import decompress_bytearray
d = open(%r, "rb").read()
t = time.ticks_ms()
out = decompress_bytearray(d)
print(len(out), time.ticks_diff(time.ticks_ms(), t))
"""


def _sample() -> bytes:
    """Machine code, like a kernel: a slice of libLLVM if present, else /usr/bin executables concatenated."""
    libs = sorted(glob.glob("/usr/lib/*/libLLVM*.so*"), key=os.path.getsize)
    if libs and os.path.getsize(libs[-1]) >= SIZE:
        with open(libs[-1], "rb") as f:
            return f.read(SIZE)
    parts, size = [], 0
    for path in sorted(glob.glob("/usr/bin/*")):
        if size >= SIZE:
            break
        if os.path.isfile(path) and not os.path.islink(path):
            data = Path(path).read_bytes()
            parts.append(data)
            size += len(data)
    return b"".join(parts)[:SIZE]


def _micropython(comp: Path) -> float | None:
    """Seconds for one decompression under the MicroPython unix port, if it is already built."""
    from cloudboot.paths import MODULES_DIR, build_dir

    exe = build_dir() / "micropython-unix" / "obj" / "micropython"
    if not exe.is_file():
        return None
    script = comp.with_suffix(".mp.py")
    script.write_text(MP_SCRIPT % str(comp))
    env = {**os.environ, "MICROPYPATH": str(MODULES_DIR)}
    out = subprocess.run([str(exe), "-X", "heapsize=512M", str(script)], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    return int(out[1]) / 1000


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cloudboot-bench-zstd-"))
    raw = _sample()
    src = work / "sample"
    src.write_bytes(raw)
    subprocess.run(["zstd", "-q", "-19", "-T0", str(src), "-o", str(work / "sample.zst")], check=True)
    comp = (work / "sample.zst").read_bytes()
    mb = len(raw) / 1e6
    print(f"sample {mb:.1f} MB, zstd -19 -> {len(comp) / 1e6:.1f} MB", flush=True)

    def ours() -> float:
        t0 = time.monotonic()
        assert decompress_bytearray(comp) == raw
        return time.monotonic() - t0

    def cli() -> float:
        t0 = time.monotonic()
        out = subprocess.run(["zstd", "-d", "-c", str(work / "sample.zst")], capture_output=True, check=True).stdout
        assert len(out) == len(raw)
        return time.monotonic() - t0

    t_ours = statistics.median(ours() for _ in range(RUNS))
    t_ref = statistics.median(cli() for _ in range(RUNS))
    report("zstd -19 decompress, CPython (MB/s)", mb / t_ours, "zstd -d", mb / t_ref, unit="MB/s")
    t_mp = _micropython(work / "sample.zst")
    if t_mp is not None:
        report("zstd -19 decompress, MicroPython (MB/s)", mb / t_mp, "zstd -d", mb / t_ref, unit="MB/s")
    for p in work.iterdir():
        p.unlink()
    work.rmdir()
