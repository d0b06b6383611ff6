"""Reading a 256 MiB file from a ZFS pool (written by zfs-fuse: one device, 128 KiB records, compression off and
gzip, fletcher4 checksums) with our reader on CPython, next to a raw read of the pool's device in the same run, as
ratios; with the data checksums checked (the default) and without. Page cache warm for every contender.

`python -m bench bench_zfs`; ZFS_BENCH_MIB sets the file size (default 256).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from pathlib import Path

from bench.bench_fs_read import _raw, ours, write_big
from bench.report import report

RUNS = 3


def main() -> None:
    from cloudboot.harness.zfsfuse import make_pool

    size = int(os.environ.get("ZFS_BENCH_MIB", "256")) << 20
    work = Path(tempfile.mkdtemp(prefix="cloudboot-bench-zfs-"))
    try:
        tree = work / "tree"
        write_big(tree, size)
        image = work / "pool.img"
        with open(image, "wb") as f:
            f.truncate(2 * size + (256 << 20))
        make_pool("cbbench", [image], [("off", tree, {"compression": "off", "checksum": "fletcher4"}, None),
                                       ("gzip", tree, {"compression": "gzip", "checksum": "fletcher4"}, None)],
                  work / "zfswork")
        mib = size / (1 << 20)
        _raw(image, size)
        t_raw = statistics.median(_raw(image, size) for _ in range(RUNS))
        for dataset in ("off", "gzip"):
            for verify in (True, False):
                t = statistics.median(ours(image, size, dataset=dataset, verify_data=verify) for _ in range(RUNS))
                report(f"ZFS {dataset} {mib:.0f} MiB read{'' if verify else ', no data csums'} (MiB/s)", mib / t,
                       "raw image read", mib / t_raw, unit="MiB/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
