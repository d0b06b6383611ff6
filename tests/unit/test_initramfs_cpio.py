"""Our newc cpio writer and the compressors, with GNU cpio (-t, -i) and the zstd/gzip tools as oracles."""

from __future__ import annotations

import gzip
import os
import stat
import subprocess
from pathlib import Path

import pytest

from cloudboot.errors import CloudBootError
from cloudboot.initramfs import compress, cpio


def _sample(mtime: int | None = None) -> cpio.Archive:
    a = cpio.Archive(mtime)
    a.file("usr/bin/tool", b"#!/bin/sh\necho hi\n", 0o755)
    a.file("etc/hostname", b"cloud-boot\n")
    a.file("etc/empty", b"")
    a.file("odd/three", b"abc")  # lengths that need padding
    a.file("odd/five5", b"12345")
    a.symlink("bin", "usr/bin")
    a.symlink("etc/link", "/etc/hostname")
    a.dir("run", 0o700)
    a.device("dev/console", "c", 5, 1, 0o600)
    a.file("big/blob", bytes(i * 31 % 251 for i in range(300_001)))
    return a


def _cpio(args: list[str], data: bytes, cwd: Path | None = None) -> str:
    proc = subprocess.run(["cpio", *args], input=data, capture_output=True, cwd=cwd)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


def test_listing_matches_gnu_cpio() -> None:
    data = _sample().to_bytes()
    listed = _cpio(["-t", "--quiet"], data).split()
    assert listed == [e.path for e in _sample().members()]
    # parents before children, implicit parents present
    assert listed.index("usr") < listed.index("usr/bin") < listed.index("usr/bin/tool")
    assert {"dev", "odd", "big"} <= set(listed)


def test_extract_with_gnu_cpio(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("extracting device nodes needs root")
    data = _sample(1_700_000_000).to_bytes()
    _cpio(["-i", "--quiet", "--make-directories", "--preserve-modification-time", "--no-absolute-filenames"],
          data, cwd=tmp_path)
    assert (tmp_path / "usr/bin/tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert stat.S_IMODE((tmp_path / "usr/bin/tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "etc/hostname").stat().st_mode) == 0o644
    assert (tmp_path / "etc/empty").read_bytes() == b""
    assert (tmp_path / "odd/three").read_bytes() == b"abc"
    assert (tmp_path / "odd/five5").read_bytes() == b"12345"
    assert (tmp_path / "big/blob").read_bytes() == bytes(i * 31 % 251 for i in range(300_001))
    assert os.readlink(tmp_path / "bin") == "usr/bin"
    assert os.readlink(tmp_path / "etc/link") == "/etc/hostname"
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o700
    st = (tmp_path / "dev/console").lstat()
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 5 and os.minor(st.st_rdev) == 1
    assert int((tmp_path / "etc/hostname").stat().st_mtime) == 1_700_000_000


def test_verbose_listing_shows_owner_and_mode() -> None:
    out = _cpio(["-t", "-v", "--quiet", "--numeric-uid-gid"], _sample().to_bytes())
    lines = {ln.split()[-1] if "->" not in ln else ln.split()[-3]: ln for ln in out.splitlines()}
    assert lines["usr/bin/tool"].startswith("-rwxr-xr-x")
    assert lines["run"].startswith("drwx------")
    assert lines["bin"].startswith("lrwxrwxrwx")
    assert lines["dev/console"].startswith("crw-------")
    for ln in out.splitlines():
        assert ln.split()[2:4] == ["0", "0"], ln  # owner 0:0 whatever built it


def test_deterministic_with_source_date_epoch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234567890")
    first = _sample().to_bytes()
    assert _sample().to_bytes() == first
    assert cpio.read(first)[0][0] == "big"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234567891")
    assert _sample().to_bytes() != first  # the epoch really is the timestamp
    # insertion order does not matter
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234567890")
    b = cpio.Archive()
    for e in reversed(list(_sample().members())):
        if e.path in ("dev", "odd", "big", "usr", "etc", "usr/bin"):
            continue  # implicit parents
        if stat.S_ISLNK(e.mode):
            b.symlink(e.path, e.data.decode())
        elif stat.S_ISCHR(e.mode):
            b.device(e.path, "c", *e.rdev, mode=stat.S_IMODE(e.mode))
        elif stat.S_ISDIR(e.mode):
            b.dir(e.path, stat.S_IMODE(e.mode))
        else:
            b.file(e.path, e.data, stat.S_IMODE(e.mode))
    assert b.to_bytes() == first


def test_tree_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a/b").mkdir(parents=True)
    (src / "a/b/f").write_bytes(b"x" * 1001)
    (src / "a/x").symlink_to("b/f")
    (src / "top").write_text("t")
    (src / "top").chmod(0o600)
    a = cpio.Archive()
    a.tree(src, "root")
    data = a.to_bytes()
    members = {name: (mode, body) for name, mode, body in cpio.read(data)}
    assert members["root/a/b/f"][1] == b"x" * 1001
    assert members["root/a/x"] == (stat.S_IFLNK | 0o777, b"b/f")
    assert members["root/top"][0] == stat.S_IFREG | 0o600
    assert _cpio(["-t", "--quiet"], data).split() == ["root", "root/a", "root/a/b", "root/a/b/f", "root/a/x",
                                                       "root/top"]


def test_bad_input_is_refused() -> None:
    a = cpio.Archive()
    a.file("etc/x", b"1")
    with pytest.raises(CloudBootError, match="added twice"):
        a.file("etc/x", b"2")
    with pytest.raises(CloudBootError, match="climbs out"):
        a.file("../etc/passwd", b"")
    with pytest.raises(CloudBootError, match="is a file"):
        a.file("etc/x/y", b"")
    with pytest.raises(CloudBootError, match="empty target"):
        a.symlink("l", "")
    with pytest.raises(CloudBootError, match="32-bit"):
        cpio.Archive(1 << 33)
    with pytest.raises(CloudBootError, match="no newc header"):
        cpio.read(b"garbage" * 20)


@pytest.mark.parametrize("method", ["zstd", "lz4", "xz", "gzip", "none"])
def test_compression_round_trip(tmp_path: Path, method: str) -> None:
    raw = tmp_path / "in.cpio"
    raw.write_bytes(_sample(0).to_bytes())
    out = tmp_path / f"out.{method}"
    compress.compress_file(raw, out, method)
    packed = out.read_bytes()
    if method == "zstd":
        assert packed[:4] == b"\x28\xb5\x2f\xfd"
        tool = subprocess.run(["zstd", "-d", "-c", str(out)], capture_output=True, check=True).stdout
        assert tool == raw.read_bytes()
    elif method == "lz4":  # the legacy format the kernel's unlz4 reads: magic, then (u32 length, block) to the end
        assert packed[:4] == b"\x02\x21\x4c\x18"
        at = 4
        while at < len(packed):
            at += 4 + int.from_bytes(packed[at:at + 4], "little")
        assert at == len(packed)
        tool = subprocess.run(["lz4", "-d", "-c", str(out)], capture_output=True, check=True).stdout
        assert tool == raw.read_bytes()
        with pytest.raises(CloudBootError, match="initramfs: bad lz4 data"):
            compress.decompress(packed[:4] + b"\xff" * 64)
    elif method == "xz":  # the kernel's decoder: CRC32 check (stream flags 00 01), read back by xz itself
        assert packed[:8] == b"\xfd7zXZ\x00\x00\x01"
        tool = subprocess.run(["xz", "-d", "-c", str(out)], capture_output=True, check=True).stdout
        assert tool == raw.read_bytes()
    elif method == "gzip":
        assert packed[:2] == b"\x1f\x8b" and packed[4:8] == b"\0\0\0\0"  # no timestamp in the header
        assert gzip.decompress(packed) == raw.read_bytes()
    assert compress.decompress(packed) == raw.read_bytes()
    out2 = tmp_path / f"again.{method}"
    compress.compress_file(raw, out2, method)
    assert out2.read_bytes() == packed  # deterministic


def test_method_for_names() -> None:
    assert compress.method_for(Path("x.cpio.zst")) == "zstd"
    assert compress.method_for(Path("x.cpio.lz4")) == "lz4"
    assert compress.method_for(Path("x.cpio.gz")) == "gzip"
    assert compress.method_for(Path("x.cpio.xz")) == "xz"
    assert compress.method_for(Path("x.cpio")) == "none"
    with pytest.raises(CloudBootError, match="cannot tell"):
        compress.method_for(Path("x.img"))
