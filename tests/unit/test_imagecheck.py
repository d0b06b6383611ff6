"""The test images' self-check (tests/portable/imagecheck.py): each reader (xfs_db, debugfs, btrfs restore)
accepts an intact image, and names the file when one byte of its data is changed or an entry is missing."""

from __future__ import annotations

import hashlib
import mmap
import os
import subprocess
from pathlib import Path

import pytest

from tests.portable import imagecheck, images

KERNEL = "/boot/vmlinuz-6.1.0-9-amd64"


def _copy(name: str, tmp_path: Path) -> Path:
    image = tmp_path / name
    subprocess.run(["cp", "--sparse=always", os.path.join(os.environ["CLOUDBOOT_TESTDATA"], name), image],
                   check=True)
    return image


def _check(image: Path, fstype: str, manifest: Path) -> None:
    reader, name = images._reader(fstype)
    imagecheck.check(image, "the test", reader, name, [(manifest, "/")], images.KNOWN_DEFECTS.get(image.name))


@pytest.mark.parametrize("name,fstype", [("xfs-v5.img", "xfs"), ("ext2.img", "ext"), ("ext4-inline.img", "ext"),
                                         ("btrfs.img", "btrfs")])
def test_a_changed_byte_is_found_and_named(tmp_path: Path, name: str, fstype: str) -> None:
    data = Path(os.environ["CLOUDBOOT_TESTDATA"])
    manifest = data / "tree.manifest"
    image = _copy(name, tmp_path)
    _check(image, fstype, manifest)
    origin = (tmp_path / f"{name}.origin").read_text().splitlines()
    known = images.KNOWN_DEFECTS.get(name, {})
    assert origin[0] == "made by: the test" and origin[1].startswith("checked by: ")
    assert f"{445 - len(known)} entries, {412 - len(known)} files' bytes" in origin[1]
    assert origin[2:] == [f"not checked: {p}: {why}" for p, why in sorted(known.items())]

    needle = (data / "tree" / KERNEL.lstrip("/")).read_bytes()[:64]  # "MZ", then a pattern of period 256
    with open(image, "r+b") as f, mmap.mmap(f.fileno(), 0) as m:
        at = m.find(needle)
        assert at > 0 and m.find(needle, at + 1) < 0, "the kernel's bytes are not in the image exactly once"
        m[at + 10] ^= 0xFF
    with pytest.raises(imagecheck.ImageCheckError) as exc:
        _check(image, fstype, manifest)
    assert f"{KERNEL}: other bytes than the source file" in str(exc.value) and "1 entries differ" in str(exc.value)
    assert "made by the test" in str(exc.value)


@pytest.mark.parametrize("name,fstype", [("xfs-v5.img", "xfs"), ("ext4-4k.img", "ext"), ("btrfs.img", "btrfs")])
def test_a_missing_entry_and_a_wrong_size_are_named(tmp_path: Path, name: str, fstype: str) -> None:
    data = Path(os.environ["CLOUDBOOT_TESTDATA"])
    lines = (data / "tree.manifest").read_text(encoding="utf-8").splitlines()
    ghost = hashlib.sha256(b"x").hexdigest()
    lines.append(f"f\t/etc/ghost\t1\t{ghost}\t")
    lines = [line.replace("\t/etc/tiny\t1\t", "\t/etc/tiny\t2\t") for line in lines]
    manifest = tmp_path / "tree.manifest"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(imagecheck.ImageCheckError) as exc:
        _check(data / name, fstype, manifest)
    assert "/etc/ghost: missing" in str(exc.value) and "/etc/tiny: 1 bytes, want 2" in str(exc.value)
    assert not (data / f"{name}.check").exists()  # the readers' scratch space is gone


def test_sparse_digest_equals_the_plain_one(tmp_path: Path) -> None:
    f = tmp_path / "sparse"
    with open(f, "wb") as out:
        out.seek(3 << 20)
        out.write(b"tail")
    assert imagecheck.file_digest(f) == hashlib.sha256(f.read_bytes()).hexdigest()
