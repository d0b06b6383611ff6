"""zstd test fixtures made by the real `zstd` CLI, built once and cached under ~/.cache/cloud-boot/zstd-fixtures.

Each case is NAME.zst (the compressed input) and NAME.raw (the bytes it must decompress to); `cases` lists
the names. Portable tests find the directory through $CLOUDBOOT_ZSTDDATA (set by tests/conftest.py), on
CPython and MicroPython."""

from __future__ import annotations

import hashlib
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

from cloudboot.paths import cache_dir

VERSION = "1"  # bump when a recipe changes

WORDS = ("the kernel boot loader reads a compressed image from disk and unpacks it into memory before "
         "jumping to its entry point while the firmware keeps the console alive").split()


def _text(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    out = []
    size = 0
    while size < n:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(4, 14))) + ".\n"
        out.append(line)
        size += len(line)
    return "".join(out).encode()[:n]


def _binary() -> bytes:
    """Real machine code: the first MiB of the running Python interpreter (padded if it is smaller)."""
    data = Path(sys.executable).resolve().read_bytes()[:1 << 20]
    return data + _text((1 << 20) - len(data), 5)


def _zstd(raw: bytes, *opts: str) -> bytes:
    return subprocess.run(["zstd", "-q", "-c", *opts], input=raw, capture_output=True, check=True).stdout


def _file_zstd(tmp: Path, raw: bytes, *opts: str) -> bytes:
    """Compress from a file, so the frame header records the content size (stdin streaming does not)."""
    src = tmp / "in"
    src.write_bytes(raw)
    return subprocess.run(["zstd", "-q", "-c", *opts, str(src)], capture_output=True, check=True).stdout


def _skippable(payload: bytes, nibble: int = 0) -> bytes:
    return struct.pack("<II", 0x184D2A50 | nibble, len(payload)) + payload


def _recipes(tmp: Path) -> dict[str, tuple[bytes, bytes]]:
    text = _text(300_000, 1)
    binary = _binary()
    rnd = random.Random(2).randbytes(200_000)
    far = random.Random(3).randbytes(1 << 20)
    far = far + bytes(1000) + far  # a match 1 MiB back
    rep = bytes(300_000) + b"ab" * 40_000 + bytes([7]) * 200_000 + b"xyz" * 1000
    small = _text(100, 4)
    extent = binary[:128 << 10]  # a btrfs extent: <= 128 KiB, independent frame
    cases = {
        "text-1": (text, _file_zstd(tmp, text, "-1")),
        "text-3": (text, _file_zstd(tmp, text, "-3")),
        "text-19": (text, _file_zstd(tmp, text, "-19")),
        "text-ultra22": (text, _file_zstd(tmp, text, "--ultra", "-22")),
        "bin-3": (binary, _file_zstd(tmp, binary, "-3")),
        "bin-19": (binary, _file_zstd(tmp, binary, "-19")),
        "bin-ultra22": (binary, _file_zstd(tmp, binary, "--ultra", "-22")),
        "bin-nocheck": (binary, _file_zstd(tmp, binary, "-9", "--no-check")),
        "bin-stdin": (binary, _zstd(binary, "-6")),
        "far-long": (far, _file_zstd(tmp, far, "-3", "--long=24")),
        "far-19": (far, _file_zstd(tmp, far, "-19")),
        "random": (rnd, _file_zstd(tmp, rnd, "-3")),
        "repetitive": (rep, _file_zstd(tmp, rep, "-3")),
        "repetitive-stdin": (rep, _zstd(rep, "-19")),
        "small": (small, _file_zstd(tmp, small, "-3")),
        "empty": (b"", _file_zstd(tmp, b"", "-3")),
        "empty-stdin": (b"", _zstd(b"", "-3")),
        "extent": (extent, _file_zstd(tmp, extent, "-3", "--no-check")),
        "multi-frame": (text + rnd + small, _file_zstd(tmp, text, "-3") + _zstd(rnd, "-1")
                        + _file_zstd(tmp, small, "-19")),
        "skippable": (text, _skippable(b"hello") + _file_zstd(tmp, text, "-3") + _skippable(b"", 15)),
    }
    try:
        cases["text-smallblocks"] = (text, _file_zstd(tmp, text, "-3", "--target-compressed-block-size=1340"))
    except subprocess.CalledProcessError:  # zstd < 1.5.4 has no such option
        cases["text-smallblocks"] = (text, _file_zstd(tmp, text, "-3", "-B1024"))
    return cases


def build() -> Path:
    """The directory holding every zstd fixture (built now if the cache is stale)."""
    out = cache_dir() / "zstd-fixtures"
    stamp = out / "stamp"
    version = subprocess.run(["zstd", "--version"], capture_output=True, text=True, check=True).stdout
    key = hashlib.sha256((VERSION + version + sys.version + Path(__file__).read_text()).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == key:
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cases = _recipes(out)
    (out / "in").unlink()
    for name, (raw, comp) in cases.items():
        (out / f"{name}.raw").write_bytes(raw)
        (out / f"{name}.zst").write_bytes(comp)
    (out / "cases").write_text("\n".join(sorted(cases)) + "\n")
    stamp.write_text(key)
    return out
