"""compat.zstd, and the init's libzstd wrapper (init.libzstd), on corrupted input (CPython, hypothesis): only
ZstdError, bounded output, no hang."""

from __future__ import annotations

import os
import random
import subprocess

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudboot.init import libzstd
from compat.zstd import ZstdError, decompress

LIMIT = 1 << 20


def _corpus() -> list[bytes]:
    rng = random.Random(7)
    text = " ".join(rng.choice(["boot", "kernel", "initrd", "zstd", "frame", "block"]) for _ in range(6000)).encode()
    blobs = [text, rng.randbytes(3000), bytes(5000) + b"abc" * 700, text[:200]]
    out = []
    for i, raw in enumerate(blobs):
        opts = [["-1"], ["-19"], ["-3", "--no-check"], ["--ultra", "-22"]][i % 4]
        out.append(subprocess.run(["zstd", "-q", "-c", *opts], input=raw, capture_output=True, check=True).stdout)
    return out


CORPUS = _corpus()
# ZSTD_FUZZ_EXAMPLES=5000 explores harder locally; the default keeps the suite fast.
FUZZ = settings(max_examples=int(os.environ.get("ZSTD_FUZZ_EXAMPLES", "300")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def _check(data: bytes) -> None:
    try:
        out = decompress(data, max_output=LIMIT)
    except ZstdError as exc:
        assert " at byte " in str(exc)
    else:
        assert len(out) <= LIMIT
    try:
        out = libzstd.decompress(data, LIMIT)
    except libzstd.ZstdError as exc:
        assert str(exc)
    else:
        assert len(out) <= LIMIT


@FUZZ
@given(st.integers(0, len(CORPUS) - 1), st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(1, 255)),
                                                min_size=1, max_size=4))
def test_flipped_bytes(which: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(CORPUS[which])
    for pos, mask in flips:
        data[pos % len(data)] ^= mask
    _check(bytes(data))


@FUZZ
@given(st.integers(0, len(CORPUS) - 1), st.integers(0, 1 << 30))
def test_truncated(which: int, cut: int) -> None:
    data = CORPUS[which]
    cut %= len(data)
    for decode, error in ((decompress, ZstdError), (lambda d: libzstd.decompress(d, 1 << 30), libzstd.ZstdError)):
        try:
            decode(data[:cut])
        except error:
            continue
        raise AssertionError("truncated input decoded")


@FUZZ
@given(st.binary(max_size=300))
def test_garbage_after_magic(tail: bytes) -> None:
    _check(b"\x28\xb5\x2f\xfd" + tail)
    _check(b"\x28\xb5\x2f\xfd" + bytes((0x20, len(tail) & 0xFF)) + tail)


def test_cpython_314s_own_zstd_module_is_not_taken_for_the_firmwares(monkeypatch) -> None:
    """CPython 3.14 has a `_zstd` of its own (another API); the init runs on sid's 3.14, so compat.zstd must
    decode in Python there, not call a `frame_size` that module lacks."""
    import importlib.util
    import sys
    import types

    import compat.zstd

    # a second copy of the module, not a reload: the reload would swap ZstdError under every other test's import
    spec = importlib.util.spec_from_file_location("compat_zstd_fresh", compat.zstd.__file__)
    fresh = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "_zstd", types.ModuleType("_zstd"))
    spec.loader.exec_module(fresh)
    assert fresh._zstd is None
    raw = b"cloud-boot " * 1000
    frame = subprocess.run(["zstd", "-q", "-c"], input=raw, capture_output=True, check=True).stdout
    assert fresh.decompress(frame) == raw
