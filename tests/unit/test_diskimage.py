"""diskimage: qcow2 and UDIF images (tests/diskimages.py: made by qemu-img, qemu-io, pydmg and the test UDIF
writer) read as the raw disks the real tools read; `cloud-boot fs` lists and reads the filesystems inside
them; the qcow2 writer passes `qemu-img check` and `qemu-img compare` after every kind of write; the UDRW
writer keeps dmg2img, 7-Zip and pydmg reading and checksumming the image; errors are one line."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from cloudboot.diskimage import convert, open_image
from diskfs.errors import Corrupt, FsError, NotFound, Unsupported
from tests.diskimages import IMAGES, copy_chain, raw
from tests.unit.test_fs_cli import manifest

KERNEL = "/boot/vmlinuz-6.1.0-9-amd64"
MiB = 1 << 20


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from cloudboot.cli import main; raise SystemExit(main())", *args],
                          capture_output=True, timeout=300)


def digest(dev) -> str:
    h = hashlib.sha256()
    buf = bytearray(4 * MiB)
    for start in range(0, dev.size, len(buf)):
        mv = memoryview(buf)[:min(len(buf), dev.size - start)]
        dev.readinto(start, mv)
        h.update(mv)
    return h.hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


# ---- reading --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(IMAGES))
def test_image_reads_as_its_raw_disk(diskimages: Path, testdata: str, name: str) -> None:
    dev = open_image(str(diskimages / name))
    want = raw(testdata, name)
    assert dev.size == want.stat().st_size
    assert digest(dev) == file_digest(want), name
    dev.close()


@pytest.mark.parametrize("kind", ["UDRW", "UDRO", "UDZO", "UDBZ", "ULFO", "ULMO"])
def test_udif_writer_output_is_read_by_7zip_and_dmg2img(diskimages: Path, testdata: str, kind: str,
                                                         tmp_path: Path) -> None:
    """The test UDIF writer's images, as other readers see them (so they are fair inputs for ours)."""
    image = diskimages / f"ext4-{kind}.dmg"
    want = file_digest(raw(testdata, image.name))
    seven = subprocess.run(["7zz", "e", "-tdmg", "-y", "-so", str(image)], capture_output=True, check=True)
    assert hashlib.sha256(seven.stdout).hexdigest() == want
    assert subprocess.run(["7zz", "t", "-tdmg", str(image)], capture_output=True).returncode == 0  # CRCs
    if kind in ("UDRW", "UDRO", "UDZO", "UDBZ"):  # Debian's dmg2img knows zlib and bzip2 chunks only
        subprocess.run(["dmg2img", "-s", str(image), str(tmp_path / "out.img")], check=True, capture_output=True)
        assert file_digest(tmp_path / "out.img") == want


@pytest.mark.parametrize("name", ["multi.qcow2", "multi-zstd.qcow2", "multi-xl2.qcow2", "multi-v2.qcow2",
                                  "multi-UDZO.dmg"])
@pytest.mark.parametrize("part", ["1", "2", "PARTLABEL=home"])
def test_fs_reads_inside_images(diskimages: Path, testdata: str, name: str, part: str) -> None:
    want = manifest(testdata)
    spec = f"{diskimages / name}@{part}"
    proc = cli("fs", "ls", spec, "/boot")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().split() == sorted(p.rsplit("/", 1)[1] for p in want if p.startswith("/boot/"))
    proc = cli("fs", "cat", spec, KERNEL)
    assert proc.returncode == 0, proc.stderr
    assert hashlib.sha256(proc.stdout).hexdigest() == want[KERNEL][2]


def test_fs_info_names_the_image_format(diskimages: Path) -> None:
    proc = cli("fs", "info", str(diskimages / "multi-zstd.qcow2"))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert "qcow2 image (v3" in text and "gpt disk 22222222-3333-4444-5555-666666666666" in text
    proc = cli("fs", "info", "--json", str(diskimages / "chain.qcow2"))
    assert proc.returncode == 0, proc.stderr
    import json

    info = json.loads(proc.stdout)
    assert info["image"]["backing_file"] == "chain-mid.qcow2" and info["image"]["extended_l2"] is True
    assert info["image"]["backing"]["backing_file"] == "chain-base.qcow2"
    proc = cli("fs", "info", str(diskimages / "pydmg.dmg"))
    assert proc.returncode == 0, proc.stderr
    assert "udif image (UDZO" in proc.stdout.decode() and "vfat" in proc.stdout.decode()
    assert "'PYDMG'" in proc.stdout.decode()


def _qemu_img(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["qemu-img", *map(str, args)], capture_output=True, text=True)


def test_refusals_are_one_line(tmp_path: Path, diskimages: Path) -> None:
    enc = tmp_path / "enc.qcow2"
    assert _qemu_img("create", "-q", "-f", "qcow2", "--object", "secret,id=s0,data=123456", "-o",
                     "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10", enc, "16M").returncode == 0
    ext = tmp_path / "ext.qcow2"
    assert _qemu_img("create", "-q", "-f", "qcow2", "-o", f"data_file={tmp_path / 'ext.raw'}", ext,
                     "16M").returncode == 0
    a, b = tmp_path / "a.qcow2", tmp_path / "b.qcow2"
    assert _qemu_img("create", "-q", "-f", "qcow2", b, "16M").returncode == 0
    assert _qemu_img("create", "-q", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", a).returncode == 0
    assert _qemu_img("rebase", "-u", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", b).returncode == 0
    orphan = tmp_path / "orphan.qcow2"
    assert _qemu_img("create", "-q", "-u", "-f", "qcow2", "-b", "gone.raw", "-F", "raw", orphan, "16M").returncode == 0
    cases = [(enc, "encrypted qcow2 (LUKS)"), (ext, "external data file"), (a, "backing chain loops"),
             (orphan, "backing file"), (tmp_path / "none.qcow2", "no such file")]
    for image, words in cases:
        proc = cli("fs", "info", str(image))
        err = proc.stderr.decode()
        assert proc.returncode == 1 and err.startswith("cloud-boot: error: ") and words in err, (image, err)
        assert err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(Corrupt):
        open_image(str(a))
    truncated = tmp_path / "truncated.dmg"
    truncated.write_bytes((diskimages / "ext4-UDZO.dmg").read_bytes()[:-600] + b"koly" + bytes(508))
    with pytest.raises(FsError):
        open_image(str(truncated))


# ---- the qcow2 writer -----------------------------------------------------------------------------------------
def _random_writes(image: Path, model: bytearray, seed: int, count: int = 60, biggest: int = 300_000) -> None:
    rng = random.Random(seed)
    dev = open_image(str(image), write=True)
    for _ in range(count):
        length = rng.randrange(1, biggest)
        at = rng.randrange(0, len(model) - length)
        data = rng.randbytes(length) if rng.random() < 0.8 else bytes(length)
        dev.write(at, data)
        model[at:at + length] = data
    dev.flush()
    dev.close()


def _check_and_compare(image: Path, model: bytes, tmp_path: Path) -> None:
    check = _qemu_img("check", image)
    assert check.returncode == 0, check.stdout + check.stderr
    ref = tmp_path / "model.raw"
    ref.write_bytes(model)
    cmp = _qemu_img("compare", "-F", "raw", image, ref)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr


@pytest.mark.parametrize("name", ["ext4.qcow2", "ext4-zstd.qcow2", "ext4-xl2.qcow2", "chain.qcow2", "multi-v2.qcow2",
                                  "multi-zlib.qcow2"])
def test_qcow2_writes_pass_qemu_img_check_and_compare(diskimages: Path, testdata: str, tmp_path: Path,
                                                      name: str) -> None:
    if name == "chain.qcow2":
        image = copy_chain(diskimages, tmp_path)
    else:
        image = tmp_path / name
        shutil.copyfile(diskimages / name, image)
    if name == "ext4.qcow2":  # zero clusters, allocated and not, for the writer to fill
        subprocess.run(["qemu-io", "-c", "write -z 2M 256k", "-c", "write -z -u 6M 128k", str(image)], check=True,
                       capture_output=True)
    dev = open_image(str(image))
    model = bytearray(dev.read(0, dev.size))
    dev.close()
    limit = 48 * MiB if len(model) > 48 * MiB else len(model)  # the multi images: stay in the first partitions
    head = model[:limit]
    _random_writes(image, head, seed=len(name))
    model[:limit] = head
    _check_and_compare(image, bytes(model), tmp_path)
    assert digest(open_image(str(image))) == hashlib.sha256(model).hexdigest()


def test_qcow2_small_clusters_grow_refcounts_or_refuse_clearly(diskimages: Path, tmp_path: Path) -> None:
    """512-byte clusters: each refcount block covers 128 KiB of file, the table 8 MiB, so new clusters need new
    refcount blocks and, past the table, a clear refusal with the image still clean."""
    image = tmp_path / "small.qcow2"
    shutil.copyfile(diskimages / "ext4-512.qcow2", image)
    start = image.stat().st_size
    dev = open_image(str(image))
    model = bytearray(dev.read(0, dev.size))
    dev.close()
    rng = random.Random(7)
    dev = open_image(str(image), write=True)
    refused = None
    try:
        for i in range(400):
            at = (i * 77_777) % (len(model) - 70_000)
            data = rng.randbytes(65_536)
            dev.write(at, data)
            model[at:at + len(data)] = data
    except Unsupported as exc:
        refused = str(exc)
    dev.flush()
    dev.close()
    assert refused and "refcount table" in refused  # after new refcount blocks had covered 1 MiB and more
    assert image.stat().st_size > start + MiB
    _check_and_compare(image, bytes(model), tmp_path)


def test_qcow2_convert_makes_a_clean_image(testdata: str, diskimages: Path, tmp_path: Path) -> None:
    src = Path(testdata) / "gpt-multi.img"
    out = tmp_path / "multi.qcow2"
    convert(open_image(str(src)), str(out))
    assert _qemu_img("check", out).returncode == 0
    assert _qemu_img("compare", "-F", "raw", out, src).returncode == 0
    assert out.stat().st_size < src.stat().st_size // 4  # zeros stay unallocated
    inplace = tmp_path / "inplace.img"  # a raw image turned into qcow2 under its own name (cache-disk --format)
    shutil.copyfile(diskimages / "chain.raw", inplace)
    src = open_image(str(inplace))
    convert(src, str(inplace))
    src.close()
    assert _qemu_img("compare", "-f", "qcow2", "-F", "raw", inplace, diskimages / "chain.raw").returncode == 0
    flat = tmp_path / "flat.qcow2"  # a backing chain flattened
    convert(open_image(str(diskimages / "chain.qcow2")), str(flat))
    assert _qemu_img("compare", "-F", "raw", flat, diskimages / "chain.raw").returncode == 0


def test_qcow2_writer_refusals(diskimages: Path, tmp_path: Path) -> None:
    image = tmp_path / "x.qcow2"
    shutil.copyfile(diskimages / "ext4.qcow2", image)
    before = file_digest(image)
    dev = open_image(str(image), write=True)
    with pytest.raises(Unsupported, match="past the virtual size"):
        dev.write(dev.size - 10, bytes(20))
    dev.close()
    snap = tmp_path / "snap.qcow2"
    shutil.copyfile(image, snap)
    assert _qemu_img("snapshot", "-c", "s1", snap).returncode == 0
    with pytest.raises(Unsupported, match="internal snapshot"):
        open_image(str(snap), write=True).write(0, b"x")
    dirty = tmp_path / "dirty.qcow2"
    shutil.copyfile(image, dirty)
    with open(dirty, "r+b") as f:  # incompatible feature bit 1: corrupt
        f.seek(72)
        f.write(struct.pack(">Q", 2))
    with pytest.raises(Unsupported, match="marked corrupt"):
        open_image(str(dirty), write=True).write(0, b"x")
    assert file_digest(image) == before


def test_qcow2_with_dirty_bitmaps_is_not_written(diskimages: Path, tmp_path: Path) -> None:
    image = tmp_path / "bm.qcow2"
    shutil.copyfile(diskimages / "ext4.qcow2", image)
    assert _qemu_img("bitmap", "--add", image, "b0").returncode == 0
    before = file_digest(image)
    dev = open_image(str(image), write=True)
    with pytest.raises(Unsupported, match="dirty bitmaps"):
        dev.write(3 * MiB, b"\x77" * 5000)
    dev.close()
    assert file_digest(image) == before and _qemu_img("check", image).returncode == 0


# ---- the UDRW writer ------------------------------------------------------------------------------------------
def test_udrw_writes_keep_readers_and_checksums(diskimages: Path, testdata: str, tmp_path: Path) -> None:
    image = tmp_path / "w.dmg"
    shutil.copyfile(diskimages / "multi-UDRW.dmg", image)
    dev = open_image(str(image), write=True)
    model = bytearray(dev.read(0, 48 * MiB))
    rng = random.Random(3)
    done = 0
    while done < 30:
        at, length = rng.randrange(0, len(model) - 9000), rng.randrange(1, 9000)
        data = rng.randbytes(length)
        try:
            dev.write(at, data)
        except Unsupported as exc:
            assert "zero-fill chunk" in str(exc)
            continue
        model[at:at + length] = data
        done += 1
    dev.close()
    dev = open_image(str(image))
    assert dev.read(0, len(model)) == bytes(model)
    for i, t in enumerate(dev.tables):  # our incremental CRCs equal full recomputations (sparse chunks left out)
        crc = 0
        for r in dev.runs:
            if r.table == i and r.kind != 2:
                crc = zlib.crc32(dev.read(r.start * 512, r.count * 512), crc)
        assert t.csum == crc
    with open(image, "rb") as f:
        f.seek(dev.data_offset)
        assert struct.unpack_from(">I", dev.koly, 88)[0] == zlib.crc32(f.read(dev.data_length))
    out = tmp_path / "out.img"
    subprocess.run(["dmg2img", "-s", str(image), str(out)], check=True, capture_output=True)
    assert out.read_bytes()[:len(model)] == bytes(model)
    assert subprocess.run(["7zz", "t", "-tdmg", str(image)], capture_output=True).returncode == 0
    import pydmg  # its blkx decoder stops at the big image's table: its checksum check on the small one

    small = tmp_path / "small.dmg"
    shutil.copyfile(diskimages / "ext4-UDRW.dmg", small)
    dev = open_image(str(small), write=True)
    dev.write(1024 + 0x78, b"pydmg-checks-me!")
    dev.close()
    assert pydmg.verify_data_checksum(str(small))


def test_udif_writer_refusals(diskimages: Path, tmp_path: Path) -> None:
    image = tmp_path / "z.dmg"
    shutil.copyfile(diskimages / "ext4-UDZO.dmg", image)
    before = file_digest(image)
    with pytest.raises(Unsupported, match="zlib chunk"):
        open_image(str(image), write=True).write(1024, b"x")
    raw_image = tmp_path / "r.dmg"
    shutil.copyfile(diskimages / "ext4-UDRW.dmg", raw_image)
    dev = open_image(str(raw_image), write=True)
    with pytest.raises(Unsupported, match="past the virtual size"):
        dev.write(dev.size - 1, b"xx")
    zero = next(r for r in dev.runs if r.kind == 2)
    with pytest.raises(Unsupported, match="zero-fill chunk"):
        dev.write(zero.start * 512, b"x")
    dev.close()
    assert file_digest(image) == before
    with pytest.raises(NotFound):
        open_image(str(tmp_path / "missing.dmg"))


# ---- locking --------------------------------------------------------------------------------------------------
def test_lock_keeps_qemu_img_out(diskimages: Path, tmp_path: Path) -> None:
    image = tmp_path / "l.qcow2"
    shutil.copyfile(diskimages / "ext4.qcow2", image)
    dev = open_image(str(image), write=True)
    try:
        proc = _qemu_img("info", image)
        assert proc.returncode != 0 and "lock" in proc.stderr, proc.stderr
    finally:
        dev.close()
    assert _qemu_img("info", image).returncode == 0
    assert os.path.exists(image)
