"""Reading a large file from ext4: our portable reader (on CPython) against debugfs's `cat` (e2fsprogs, C),
both from the same image in the same run, as throughput."""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.report import report
from diskfs import open_filesystem
from diskfs.blockdev import FileDevice

RUNS = 3
SIZE = 64 << 20


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cloudboot-bench-fs-"))
    (work / "tree").mkdir()
    (work / "tree/big").write_bytes(bytes(range(256)) * (SIZE // 256))
    image = work / "fs.img"
    with open(image, "wb") as f:
        f.truncate(SIZE + (32 << 20))
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(work / "tree"), str(image)], check=True)

    def ours() -> float:
        t0 = time.monotonic()
        data = open_filesystem(FileDevice(str(image))).read("/big")
        assert len(data) == SIZE
        return time.monotonic() - t0

    def debugfs() -> float:
        t0 = time.monotonic()
        out = subprocess.run(["debugfs", "-R", "cat /big", str(image)], capture_output=True, check=True).stdout
        assert len(out) == SIZE
        return time.monotonic() - t0

    t_ours = statistics.median(ours() for _ in range(RUNS))
    t_ref = statistics.median(debugfs() for _ in range(RUNS))
    mib = SIZE / (1 << 20)
    report("ext4 64 MiB file read (MiB/s)", mib / t_ours, "debugfs cat", mib / t_ref, unit="MiB/s")
