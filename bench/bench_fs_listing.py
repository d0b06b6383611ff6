"""`cloud-boot fs ls -l` of a 10,000-entry directory (issue 20: under 2 s on every filesystem; it was 30 s on ext4,
one lookup per entry), on the test images made by the real mkfs tools (tests/portable/images.py: ext4 htree, XFS
node directory, btrfs, a zfs-fuse fat ZAP with lzjb), next to each filesystem's own tool listing the same
directory in the same run: debugfs `ls -l`, xfs_db `ls`, btrfs `inspect-internal dump-tree` of the subvolume
(every item, names among them), zdb `-dddd` of the directory object. Both as whole commands (start-up
included; ours with its bytecode cache, as on a user's machine after the first run), the median of three.

`python -m bench bench_fs_listing`.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import report

RUNS = 3
ENTRIES = 10_000
CLI = [sys.executable, "-c", "from cloudboot.cli import main; raise SystemExit(main())"]
CACHED = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # not 66 modules compiled a run


def _timed(cmd: list, env: dict | None = None, want: bytes = b"entry-09999") -> float:
    """Seconds one command takes; its output must name the last entry (a tool that listed nothing is no
    reference)."""
    t0 = time.perf_counter()
    out = subprocess.run([str(c) for c in cmd], check=True, capture_output=True, env=env).stdout
    took = time.perf_counter() - t0
    assert want in out, f"{cmd[:3]}: no {want!r} in its output"
    return took


def _median(cmd: list, env: dict | None = None) -> float:
    return statistics.median(_timed(cmd, env) for _ in range(RUNS))


def main() -> None:
    from cloudboot.harness.zfsfuse import daemon
    from tests.portable.images import btrfs_env, btrfs_tool, build

    data = build(["ext4-many.img", "xfs-many.img", "btrfs-many.img", "zfs-single.img"])
    work = Path(tempfile.mkdtemp(prefix="cloudboot-bench-listing-"))
    try:
        cases = [
            ("ext4", data / "ext4-many.img", "/many", ["debugfs", "-R", "ls -l /many", data / "ext4-many.img"],
             "debugfs ls -l", None),
            ("XFS", data / "xfs-many.img", "/many",
             ["xfs_db", "-r", "-c", "path /many", "-c", "ls", data / "xfs-many.img"], "xfs_db ls", None),
            ("btrfs", data / "btrfs-many.img", "/many",
             [*btrfs_tool("btrfs"), "inspect-internal", "dump-tree", "-t", "5", data / "btrfs-many.img"],
             "btrfs dump-tree -t 5", btrfs_env()),
        ]
        _timed([*CLI, "fs", "ls", "-l", data / "ext4-many.img", "/many"], CACHED)  # writes the bytecode cache
        for name, image, path, ref, ref_name, env in cases:
            ours = _median([*CLI, "fs", "ls", "-l", image, path], CACHED)
            report(f"fs ls -l {ENTRIES:,} entries, {name} (s)", ours, ref_name, _median(ref, env))
        ours = _median([*CLI, "fs", "ls", "-l", f"{data / 'zfs-single.img'}@cbzfssingle/many", "/many"], CACHED)
        dirobj = subprocess.run([*CLI, "fs", "stat", f"{data / 'zfs-single.img'}@cbzfssingle/many", "/many"],
                                check=True, capture_output=True, text=True).stdout.split("inode: ")[1].split()[0]
        with daemon(work):  # zfs-fuse's zdb asks its daemon
            ref = _median(["zdb", "-e", "-p", data, "-dddd", "cbzfssingle/many", dirobj])
        report(f"fs ls -l {ENTRIES:,} entries, ZFS (s)", ours, "zdb -dddd (dir)", ref)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
