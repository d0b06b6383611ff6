"""Reading a 512 MiB file from an ext4 filesystem inside a qcow2 image (made by `qemu-img convert`) through our qcow2
reader and the portable ext4 reader, next to `qemu-img convert` of the image to raw and to a raw sequential read
of the same bytes, as ratios, in the same run (page cache warm for every contender). Also the zstd-compressed
image (`qemu-img convert -c -o compression_type=zstd`), where decompression dominates.

`python -m bench bench_qcow2_read`; FS_BENCH_MIB sets the file size (default 512).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.bench_fs_read import _CHECK, CHUNK, _image, _raw, write_big
from bench.report import report

RUNS = 3


def _ours(image: Path, size: int) -> float:
    import diskfs
    from cloudboot.diskimage import open_image

    buf = bytearray(CHUNK)
    t0 = time.perf_counter()
    dev = open_image(str(image))
    total = 0
    with diskfs.open(dev).open("/big") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            total += n
    dev.close()
    assert total == size, (image, total)
    assert bytes(buf[:16]) == _CHECK[0], (image, "wrong bytes")
    return time.perf_counter() - t0


def _qemu_img(image: Path, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(image), str(out)], check=True, capture_output=True)
    took = time.perf_counter() - t0
    out.unlink()
    return took


def main() -> None:
    size = int(os.environ.get("FS_BENCH_MIB", "512")) << 20
    work = Path(tempfile.mkdtemp(prefix="cloudboot-bench-qcow2-"))
    try:
        write_big(work / "tree", size)
        raw = _image(work, "ext4", size)
        mib = size / (1 << 20)
        _raw(raw, size)
        t_raw = statistics.median(_raw(raw, size) for _ in range(RUNS))
        for kind, opts in (("qcow2", []), ("qcow2 zstd", ["-c", "-o", "compression_type=zstd"])):
            image = work / "img.qcow2"
            subprocess.run(["qemu-img", "convert", "-O", "qcow2", *opts, str(raw), str(image)], check=True)
            _ours(image, size)  # warm
            t_ours = statistics.median(_ours(image, size) for _ in range(RUNS))
            t_qemu = statistics.median(_qemu_img(image, work / "out.raw") for _ in range(RUNS))
            report(f"ext4 in {kind}: {mib:.0f} MiB file (MiB/s)", mib / t_ours, "qemu-img convert to raw",
                   mib / t_qemu, unit="MiB/s")
            report(f"ext4 in {kind}: {mib:.0f} MiB file (MiB/s)", mib / t_ours, "raw image read", mib / t_raw,
                   unit="MiB/s")
            image.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
