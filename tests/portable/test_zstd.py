"""compat.zstd against frames made by the real zstd CLI (tests/zstdfixtures.py), on CPython and MicroPython."""

import os

from compat.xxhash import xxh64
from compat.zstd import ZstdError, decompress, decompress_bytearray


def _dir():
    return os.getenv("CLOUDBOOT_ZSTDDATA")


def _read(name):
    with open(_dir() + "/" + name, "rb") as f:
        return f.read()


def _cases():
    return [n for n in _read("cases").decode().split("\n") if n]


def _raises(data, fragment="", **kw):
    try:
        decompress(data, **kw)
    except ZstdError as exc:
        msg = str(exc)
        assert msg.startswith("zstd: ") and " at byte " in msg, msg
        assert fragment in msg, msg
        return msg
    raise AssertionError("no ZstdError")


def test_every_fixture_round_trips():
    names = _cases()
    assert len(names) >= 20
    for name in names:
        got = decompress(_read(name + ".zst"))
        assert got == _read(name + ".raw"), name


def test_bytearray_variant_and_memoryview_input():
    comp = _read("text-3.zst")
    out = decompress_bytearray(memoryview(comp))
    assert isinstance(out, bytearray)
    assert out == _read("text-3.raw")
    assert isinstance(decompress(bytearray(comp)), bytes)


def test_single_frame_ignores_trailing_bytes():
    comp = _read("extent.zst")
    raw = _read("extent.raw")
    # btrfs pads an extent to its sector size; the kernel build appends the size (4 bytes, little endian)
    assert decompress(comp + bytes(4096 - len(comp) % 4096), single=True) == raw
    assert decompress(comp + bytes((0, 0, 2, 0)), single=True) == raw
    assert decompress(_read("skippable.zst"), single=True) == _read("skippable.raw")
    assert decompress(_read("multi-frame.zst"), single=True) == _read("text-3.raw")
    _raises(comp + bytes(16), "bad frame magic")


def test_xxh64_vectors():
    assert xxh64(b"") == 0xEF46DB3751D8E999
    assert xxh64(b"a") == 0xD24EC4F1A98C6E5B
    assert xxh64(b"abc") == 0x44BC2CF5AD770999
    data = bytes(range(256)) * 3
    assert xxh64(data) == xxh64(memoryview(data)) == xxh64(bytearray(data))
    assert xxh64(b"x", 1) != xxh64(b"x")


def test_max_output():
    comp = _read("text-3.zst")
    n = len(_read("text-3.raw"))
    assert len(decompress(comp, max_output=n)) == n
    _raises(comp, "max_output", max_output=n - 1)
    stream = _read("bin-stdin.zst")  # no content size in the header: the limit hits while decoding
    _raises(stream, "max_output", max_output=100_000)
    _raises(_read("multi-frame.zst"), "max_output", max_output=len(_read("text-3.raw")) + 10)


def test_format_errors():
    good = _read("small.zst")
    _raises(b"", "empty")
    _raises(b"\x00\x01\x02\x03\x04\x05", "bad frame magic")
    _raises(good[:3], "truncated")
    _raises(good[:-1], "checksum")
    _raises(good + b"\x28\xb5", "truncated frame magic")
    bad = bytearray(good)
    bad[-1] ^= 0x55
    _raises(bytes(bad), "checksum mismatch")
    assert decompress(bytes(bad), check=False) == _read("small.raw")
    # a frame naming dictionary 0x1234: Frame_Header_Descriptor with Dictionary_ID_flag 2, single segment
    frame = b"\x28\xb5\x2f\xfd" + bytes((0x22,)) + b"\x34\x12" + bytes((5,)) + b"\x01\x00\x00"
    assert "dictionary" in _raises(frame, "dictionar")
    frame = b"\x28\xb5\x2f\xfd" + bytes((0x20, 5)) + bytes((0x07, 0, 0))  # reserved block type 3
    _raises(frame, "reserved block type")
    frame = b"\x28\xb5\x2f\xfd" + bytes((0x20, 5)) + bytes((0x01, 0, 0))  # empty raw block, 5 promised
    _raises(frame, "content size")
    _raises(b"\x50\x2a\x4d\x18\x10\x00\x00\x00abc", "skippable")


def test_corrupt_extent_only_raises_zstd_error():
    comp = _read("extent.zst")  # no checksum: corruption may go unnoticed, but must not crash or hang
    raw_len = len(_read("extent.raw"))
    step = len(comp) // 40 + 1
    for pos in range(0, len(comp), step):
        for mask in (0x01, 0x80, 0xFF):
            bad = bytearray(comp)
            bad[pos] ^= mask
            try:
                out = decompress(bytes(bad), max_output=1 << 20)
                assert len(out) <= 1 << 20
            except ZstdError:
                pass
    for cut in range(1, len(comp), step):
        try:
            decompress(comp[:cut])
        except ZstdError:
            pass
        else:
            raise AssertionError("truncated at %d decoded" % cut)  # noqa: UP031
    assert raw_len == 128 << 10
