"""Decompressing a ~30 MB binary compressed with `zstd -19` (kernel-like): our portable compat.zstd on CPython
(and on the MicroPython unix port when it is built) against the `zstd -d` CLI (C), same file, as throughput.
In the firmware (x86_64, QEMU TCG) on a 2 MB slice: compat.zstd through _zstd (libzstd in C) against
compat.zstd's own Python decoder, the measurement behind linking libzstd."""

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


FW_SAMPLE = 2_000_000
FW_SCRIPT = """
import time, uefi
from compat import zstd
dev = [d for d in uefi.block_devices(partitions=False) if d.size == %d][0]
data = dev.read_blocks(0, %d)[:%d]
def timed(native):
    saved = zstd._zstd
    zstd._zstd = zstd._zstd if native else None
    t = time.ticks_ms()
    n = len(zstd.decompress_bytearray(data))
    zstd._zstd = saved
    return n, time.ticks_diff(time.ticks_ms(), t)
print(*timed(True), *timed(False))
"""


def _firmware(work: Path, raw: bytes) -> tuple[float, float] | None:
    """MB/s of (libzstd, Python decoder) inside the x86_64 firmware, if it is built."""
    import arches
    from cloudboot.fwbuild.firmware import firmware_dir
    from cloudboot.harness.machine import Machine
    from cloudboot.harness.repl import Repl

    efi = firmware_dir() / arches.get("x86_64").efi_name
    if not efi.is_file():
        return None
    comp = subprocess.run(["zstd", "-q", "-19", "-c"], input=raw[:FW_SAMPLE], capture_output=True,
                          check=True).stdout
    disk = work / "fw-disk.img"
    size = (len(comp) + (1 << 20)) & ~((1 << 20) - 1)
    disk.write_bytes(comp + bytes(size - len(comp)))
    with Machine("x86_64", efi=efi, append="cloudboot.repl", disks=[disk]) as m:
        repl = Repl(m)
        repl.wait_banner(120)
        repl.enter(60)
        code = FW_SCRIPT % (size, size // 512, len(comp))
        n_native, ms_native, n_python, ms_python = map(int, repl.exec(code, timeout=1800).split())
    assert n_native == n_python == FW_SAMPLE
    return FW_SAMPLE / 1e3 / ms_native, FW_SAMPLE / 1e3 / ms_python


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
    fw = _firmware(work, raw)
    if fw is not None:
        report("zstd in firmware, x86_64 TCG: libzstd (MB/s)", fw[0], "compat.zstd in Python", fw[1],
               unit="MB/s")
    for p in work.iterdir():
        p.unlink()
    work.rmdir()
