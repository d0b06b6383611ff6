"""LUKS2 on CPython: unlocking an argon2id keyslot next to `cryptsetup open --test-passphrase` with the same
parameters (goal: ratio <= 1.1), and reading a 256 MiB file from ext4 inside LUKS2 (aes-xts-plain64, 512- and
4096-byte sectors) next to a raw read of the same image, as ratios. The images are made by cryptsetup itself
(`reencrypt --encrypt`, no device-mapper). Page cache warm for every contender.

`python -m bench bench_luks`; LUKS_BENCH_MIB sets the file size (default 256), LUKS_BENCH_KIB the Argon2
memory (default 262144: 256 MiB, 4 passes, 2 lanes).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.bench_fs_read import _raw, ours, write_big
from bench.report import report

RUNS = 3
PASSPHRASE = b"bench passphrase"
SHIFT_MIB = 8


def _luks2(work: Path, name: str, size: int, sector: int, memory_kib: int, tree: Path | None) -> Path:
    """ext4 (holding `tree`) in LUKS2 by cryptsetup: argon2id with `memory_kib`, or cheap PBKDF2 when it is 0."""
    image = work / name
    with open(image, "wb") as f:
        f.truncate(size + (SHIFT_MIB << 20))
    cmd = ["mkfs.ext4", "-q", "-F", "-b", "4096"] + (["-d", str(tree)] if tree else []) + [str(image), f"{size >> 10}k"]
    subprocess.run(cmd, check=True, capture_output=True)
    kdf = ["--pbkdf", "argon2id", "--pbkdf-force-iterations", "4", "--pbkdf-memory", str(memory_kib),
           "--pbkdf-parallel", "2"] if memory_kib else ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]
    subprocess.run(["cryptsetup", "reencrypt", "--encrypt", "--batch-mode", "--type", "luks2", "--cipher",
                    "aes-xts-plain64", "--key-size", "512", "--sector-size", str(sector), *kdf,
                    "--key-file", "-", "--reduce-device-size", f"{SHIFT_MIB}M", str(image)],
                   input=PASSPHRASE, check=True, capture_output=True, cwd=work)
    return image


def _unlock_ours(image: Path) -> float:
    from diskfs.blockdev import FileDevice
    from diskfs.luks import open_device

    t0 = time.perf_counter()
    with FileDevice(str(image)) as dev:
        open_device(dev, {"passphrase": PASSPHRASE})
    return time.perf_counter() - t0


def _unlock_cryptsetup(image: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["cryptsetup", "open", "--test-passphrase", "--key-file", "-", str(image)], input=PASSPHRASE,
                   check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    size = int(os.environ.get("LUKS_BENCH_MIB", "256")) << 20
    memory = int(os.environ.get("LUKS_BENCH_KIB", "262144"))
    work = Path(tempfile.mkdtemp(prefix="cloudboot-bench-luks-"))
    try:
        image = _luks2(work, "kdf.img", 32 << 20, 4096, memory, None)
        _unlock_cryptsetup(image)
        t_cs = statistics.median(_unlock_cryptsetup(image) for _ in range(RUNS))
        t_ours = statistics.median(_unlock_ours(image) for _ in range(RUNS))
        report(f"LUKS2 argon2id unlock ({memory >> 10} MiB, 4 passes, 2 lanes)", t_ours,
               "cryptsetup --test-passphrase", t_cs)
        image.unlink()
        tree = work / "tree"
        write_big(tree, size)
        mib = size / (1 << 20)
        for sector in (512, 4096):
            image = _luks2(work, f"read-{sector}.img", size + (64 << 20), sector, 0, tree)  # the read, not the KDF
            _raw(image, size)
            t_raw = statistics.median(_raw(image, size) for _ in range(RUNS))
            t_ours = statistics.median(ours(image, size, passphrase=PASSPHRASE) for _ in range(RUNS))
            report(f"LUKS2 ext4 {mib:.0f} MiB read, {sector} B sectors (MiB/s)", mib / t_ours, "raw image read",
                   mib / t_raw, unit="MiB/s")
            image.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
