"""Reading a 512 MiB file with our portable reader on CPython from ext4, XFS and btrfs images (made by the real
mkfs tools), next to a raw sequential read of the same image in the same run, and next to debugfs's
`dump` for ext4, as ratios (goal: >= 0.8x raw, >= 1.0x debugfs). Page cache warm for every contender.

`python -m bench bench_fs_read`; FS_BENCH_MIB sets the file size (default 512).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.report import report

RUNS = 3
CHUNK = 1 << 20
_CHECK = [b""]  # the first bytes of the last MiB of the file, to catch a reader returning the wrong data


def _image(work: Path, kind: str, size: int) -> Path:
    from tests.portable.images import btrfs_env, btrfs_tool, protofile

    tree = work / "tree"
    image = work / f"{kind}.img"
    with open(image, "wb") as f:  # XFS: two AGs each bigger than the file (mkfs.xfs 6.1's protofile limit)
        f.truncate(size + (320 << 20) if kind != "xfs" else 2 * size + (256 << 20))
    if kind == "ext4":
        cmd = ["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image)]
    elif kind == "xfs":
        cmd = ["mkfs.xfs", "-q", "-f", "-d", "agcount=2", "-p", str(protofile(tree, work / "proto")), str(image)]
    else:
        cmd = [*btrfs_tool("mkfs.btrfs"), "-q", "-f", "--rootdir", str(tree), str(image)]
    subprocess.run(cmd, check=True, capture_output=True, env=btrfs_env() if kind == "btrfs" else None)
    return image


def write_big(tree: Path, size: int) -> None:
    """tree/big: `size` bytes, each MiB a rotation of one pattern (not compressible to nothing, not all alike);
    the readers check the first bytes of its last MiB."""
    tree.mkdir(parents=True, exist_ok=True)
    block = bytes((i * 7 + 3) & 0xFF for i in range(CHUNK))
    with open(tree / "big", "wb") as f:
        for i in range(size // CHUNK):
            f.write(block[i & 0xFF:] + block[:i & 0xFF])
    last = size // CHUNK - 1
    _CHECK[0] = (block[last & 0xFF:] + block[:last & 0xFF])[:16]


def _raw(image: Path, size: int) -> float:
    buf = bytearray(CHUNK)
    t0 = time.perf_counter()
    with open(image, "rb", buffering=0) as f:
        left = size
        while left > 0:
            n = f.readinto(buf)
            if not n:
                break
            left -= n
    return time.perf_counter() - t0


def ours(image: Path, size: int, **options) -> float:
    """Seconds to open `image` with diskfs (`options` passed on) and read /big through in 1 MiB pieces."""
    from diskfs import open_filesystem
    from diskfs.blockdev import FileDevice

    buf = bytearray(CHUNK)
    t0 = time.perf_counter()
    fs = open_filesystem(FileDevice(str(image)), **options)
    total = 0
    with fs.open("/big") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            total += n
    assert total == size, (image, total)
    assert bytes(buf[:16]) == _CHECK[0], (image, "wrong bytes")
    return time.perf_counter() - t0


def _debugfs(image: Path, size: int, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["debugfs", "-R", f"dump /big {out}", str(image)], check=True, capture_output=True)
    took = time.perf_counter() - t0
    assert out.stat().st_size == size
    out.unlink()
    return took


def main() -> None:
    size = int(os.environ.get("FS_BENCH_MIB", "512")) << 20
    work = Path(tempfile.mkdtemp(prefix="cloudboot-bench-fsread-"))
    try:
        write_big(work / "tree", size)
        mib = size / (1 << 20)
        for kind in ("ext4", "xfs", "btrfs"):
            image = _image(work, kind, size)
            _raw(image, size)  # warm the page cache
            t_raw = statistics.median(_raw(image, size) for _ in range(RUNS))
            t_ours = statistics.median(ours(image, size) for _ in range(RUNS))
            report(f"{kind} {mib:.0f} MiB file read (MiB/s)", mib / t_ours, "raw image read", mib / t_raw,
                   unit="MiB/s")
            if kind == "ext4":
                t_dbg = statistics.median(_debugfs(image, size, work / "dump.out") for _ in range(RUNS))
                report(f"{kind} {mib:.0f} MiB file read (MiB/s)", mib / t_ours, "debugfs dump", mib / t_dbg,
                       unit="MiB/s")
            if kind == "btrfs":
                t_nov = statistics.median(ours(image, size, verify_data=False) for _ in range(RUNS))
                report(f"{kind} {mib:.0f} MiB, no data csums (MiB/s)", mib / t_nov, "raw image read", mib / t_raw,
                       unit="MiB/s")
            image.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
