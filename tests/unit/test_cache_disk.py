"""`cloud-boot cache-disk`: the original's make-cache-disk.sh geometry (REFERENCE §5.2), checked by real
oracles (sgdisk -v, fsck.vfat -n, mtools; qemu-img for the qcow2 form), and its idempotence: a cache disk is
left alone, anything else is refused unless --force."""

from __future__ import annotations

import binascii
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from cloudboot.cli import main as cli
from cloudboot.errors import CloudBootError
from cloudboot.image import cachedisk


def _fat(img: Path, tmp_path: Path, first: int, sectors: int) -> Path:
    """The ESP's bytes as a file of their own (fsck.vfat has no offset option)."""
    out = tmp_path / "esp.fat"
    with open(img, "rb") as src, open(out, "wb") as dst:
        src.seek(first * 512)
        shutil.copyfileobj(src, dst)
        dst.truncate(sectors * 512)
    return out


@pytest.mark.parametrize("size", [64, 256])
def test_geometry_checked_by_sgdisk_and_fsck(tmp_path: Path, size: int, capsys) -> None:
    img = tmp_path / "cache.img"
    assert cli(["cache-disk", "-o", str(img), "--size", str(size), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    total = size * 2048
    esp = total - 2048 - 33
    assert img.stat().st_size == total * 512 == info["size"]
    assert info["status"] == "created" and info["partition"] == {
        "number": 1, "name": "cloud-boot-cache", "guid": info["partition"]["guid"], "first_lba": 2048, "sectors": esp}
    assert info["fat"]["type"] == 32 and info["fat"]["clusters"] >= 65525
    raw = img.read_bytes()
    # protective MBR: one 0xEE entry from LBA 1 over the disk, 55AA
    assert raw[446:462] == struct.pack("<B3sB3sII", 0, b"\0\x02\0", 0xEE, b"\xff\xff\xff", 1, total - 1)
    assert raw[510:512] == b"\x55\xaa"
    hdr = raw[512:1024]
    assert hdr[:8] == b"EFI PART" and struct.unpack_from("<IIIIQQQQ", hdr, 8)[:1] == (0x00010000,)
    rev, hsize, _, _, my, alt, first_usable, last_usable = struct.unpack_from("<IIIIQQQQ", hdr, 8)
    assert (rev, hsize, my, alt, first_usable, last_usable) == (0x00010000, 92, 1, total - 1, 34, total - 34)
    entries_lba, count, entry_size, entries_crc = struct.unpack_from("<QIII", hdr, 72)
    assert (entries_lba, count, entry_size) == (2, 128, 128)
    assert entries_crc == binascii.crc32(raw[1024:1024 + 128 * 128])
    backup = raw[(total - 1) * 512:]
    assert backup[:8] == b"EFI PART" and struct.unpack_from("<QQ", backup, 24) == (total - 1, 1)
    assert struct.unpack_from("<Q", backup, 72)[0] == total - 33
    first, last = struct.unpack_from("<QQ", raw, 1024 + 32)
    assert (first, last) == (2048, 2048 + esp - 1)
    v = subprocess.run(["sgdisk", "-v", str(img)], capture_output=True, text=True)
    assert v.returncode == 0 and "No problems found" in v.stdout, v.stdout + v.stderr
    fat = _fat(img, tmp_path, 2048, esp)
    f = subprocess.run(["fsck.vfat", "-n", str(fat)], capture_output=True, text=True)
    assert f.returncode == 0, f.stdout + f.stderr
    ls = subprocess.run(["mdir", "-b", "-i", f"{img}@@1M", "::/EFI"], capture_output=True, text=True,
                        env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})
    assert ls.returncode == 0 and "::/EFI/Linux/" in ls.stdout, ls.stdout + ls.stderr


def test_idempotent_refusing_and_force(tmp_path: Path, capsys) -> None:
    img = tmp_path / "cache.img"
    assert cachedisk.make(img, 64) == "created"
    before = img.read_bytes()
    assert cli(["cache-disk", "-o", str(img), "--size", "128"]) == 0  # a cache disk: left untouched, whatever the size
    assert "already a cache disk, left untouched" in capsys.readouterr().out
    assert img.read_bytes() == before
    other = cachedisk.make(tmp_path / "other.img", 64)
    assert other == "created" and (tmp_path / "other.img").read_bytes()[1024:1024 + 40] != before[1024:1024 + 40]
    junk = tmp_path / "data.img"
    junk.write_bytes(b"precious" * 1000)
    assert cli(["cache-disk", "-o", str(junk)]) == 1
    err = capsys.readouterr().err
    assert "data.img exists and is not a GPT disk: refusing to overwrite it (--force replaces it)" in err
    assert junk.read_bytes() == b"precious" * 1000
    assert cachedisk.make(junk, 64, force=True) == "replaced" and cachedisk.inspect(junk) is None
    renamed = tmp_path / "renamed.img"
    renamed.write_bytes(before)
    subprocess.run(["sgdisk", "-c", "1:something-else", str(renamed)], capture_output=True, check=True)
    assert "partition 1 is not an ESP named cloud-boot-cache (1: 'something-else')" in cachedisk.inspect(renamed)


@pytest.mark.parametrize("args, message", [
    (["--size", "32"], "cache disk size 32 MiB: must be between 64 MiB and"),
    (["--size", "64"], "the directory"),
])
def test_bad_arguments(tmp_path: Path, args: list[str], message: str, capsys) -> None:
    path = tmp_path / "cache.img" if "32" in args else tmp_path / "nodir" / "cache.img"
    assert cli(["cache-disk", "-o", str(path), *args]) == 1
    assert message in capsys.readouterr().err
    assert not path.exists()
    assert cli(["cache-disk", "-o", str(tmp_path)]) == 1
    assert "not a regular file" in capsys.readouterr().err
    assert list(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


def test_qcow2_cache_disk_checked_by_qemu_img_and_listed_by_fs(tmp_path: Path, capsys) -> None:
    img = tmp_path / "cache.qcow2"
    assert cli(["cache-disk", "-o", str(img), "--size", "64", "--format", "qcow2", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["status"] == "created" and info["format"] == "qcow2" and info["size"] == 64 << 20
    assert info["file_size"] == img.stat().st_size < 4 << 20  # the empty FAT's clusters take no room
    check = subprocess.run(["qemu-img", "check", "--output=json", str(img)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    report = json.loads(check.stdout)
    assert report["format"] == "qcow2" and not report.get("corruptions") and not report.get("leaks"), report
    qinfo = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(img)], capture_output=True,
                                      text=True, check=True).stdout)
    assert qinfo["format"] == "qcow2" and qinfo["virtual-size"] == 64 << 20
    # the disk inside is the raw cache disk's geometry: converted back by qemu-img, sgdisk and fsck.vfat agree
    raw = tmp_path / "back.img"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(img), str(raw)], check=True)
    v = subprocess.run(["sgdisk", "-v", str(raw)], capture_output=True, text=True)
    assert v.returncode == 0 and "No problems found" in v.stdout, v.stdout + v.stderr
    fat = _fat(raw, tmp_path, 2048, 64 * 2048 - 2048 - 33)
    f = subprocess.run(["fsck.vfat", "-n", str(fat)], capture_output=True, text=True)
    assert f.returncode == 0, f.stdout + f.stderr
    ls = subprocess.run(["mdir", "-b", "-i", f"{raw}@@1M", "::/EFI"], capture_output=True, text=True,
                        env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})
    assert ls.returncode == 0 and "::/EFI/Linux/" in ls.stdout, ls.stdout + ls.stderr
    # cloud-boot fs reads it through the qcow2 reader
    assert cli(["fs", "info", str(img)]) == 0
    out = capsys.readouterr().out
    assert "qcow2 image" in out and f"gpt disk {info['disk_guid']}" in out, out
    assert re.search(r"^\s+1\s+start\s+1048576\s.*vfat\s.*label 'CBCACHE'.*partlabel 'cloud-boot-cache'\s+"
                     rf"partuuid {info['partition']['guid']}$", out, re.M), out
    # idempotent in its format; the other format is refused unless --force
    before = img.read_bytes()
    assert cli(["cache-disk", "-o", str(img), "--format", "qcow2"]) == 0
    assert "already a cache disk, left untouched" in capsys.readouterr().out and img.read_bytes() == before
    assert cli(["cache-disk", "-o", str(img)]) == 1
    assert "exists and is a qcow2 cache disk, not raw: refusing" in capsys.readouterr().err
    assert img.read_bytes() == before
    assert cachedisk.make(img, 64, force=True) == "replaced" and img.read_bytes()[:4] != b"QFI\xfb"
    assert img.stat().st_size == 64 << 20 and cachedisk.inspect(img) is None
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_bad_format(tmp_path: Path, capsys) -> None:
    assert cli(["cache-disk", "-o", str(tmp_path / "c.img"), "--format", "vmdk"]) == 2
    assert "invalid choice: 'vmdk'" in capsys.readouterr().err
    with pytest.raises(CloudBootError, match="cache disk format 'vmdk': want one of raw, qcow2"):
        cachedisk.make(tmp_path / "c.img", 64, fmt="vmdk")
    assert list(tmp_path.iterdir()) == []
