"""`cloud-boot label`: labels on ext2/3/4, XFS and btrfs (images made by the real mkfs tools), raw, in partitions, in
qcow2 (compressed clusters and backing chains: the superblocks need new clusters) and in UDRW images. Oracles:
e2label, blkid, xfs_admin -l, btrfs filesystem label read the label; dumpe2fs, xfs_db and btrfs inspect-internal
read it in every superblock copy; e2fsck -fn, xfs_repair -n, btrfs check are clean; qemu-img check, dmg2img and
7-Zip accept the images. A crash between two superblock writes (or between two writes of a qcow2 allocation)
leaves a filesystem its fsck accepts with the old or the new label."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cloudboot import fslabel
from cloudboot.diskimage import open_image
from cloudboot.diskimage.imagefile import ImageFile
from tests.diskimages import copy_chain
from tests.portable.images import btrfs_env, btrfs_tool

MiB = 1 << 20


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from cloudboot.cli import main; raise SystemExit(main())",
                           "label", *args], capture_output=True, timeout=300)


def sh(*cmd, ok=(0,)) -> str:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          env=btrfs_env() if "btrfs" in str(cmd[0]) else None)
    assert proc.returncode in ok, f"{cmd}: {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def copy(src: Path, dst: Path) -> Path:
    subprocess.run(["cp", "--sparse=always", str(src), str(dst)], check=True)
    return dst


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fsck(fs: str, image: Path) -> None:
    if fs == "ext4":
        sh("e2fsck", "-fn", image)
    elif fs == "xfs":
        sh("xfs_repair", "-n", "-f", image)
    else:
        sh(*btrfs_tool("btrfs"), "check", image)


def tool_label(fs: str, image: Path) -> str:
    if fs == "ext4":
        return sh("e2label", image).rstrip("\n")
    if fs == "xfs":
        out = sh("xfs_admin", "-l", image)
        return out.split('"')[1]
    return sh(*btrfs_tool("btrfs"), "filesystem", "label", image).rstrip("\n")


def blkid_label(image: Path, offset: int = 0) -> str:
    return sh("blkid", "-p", "-O", str(offset), "-o", "value", "-s", "LABEL", image, ok=(0, 2)).strip()


def copies_labels(fs: str, image: Path) -> list[str]:
    """The label in every superblock copy, by the filesystem's own tools."""
    dev = open_image(str(image))
    plan = fslabel.plan(dev, "x")
    dev.close()
    labels = []
    if fs == "ext4":
        bs = int(sh("dumpe2fs", "-h", image).split("Block size:")[1].split()[0])
        for c in plan.copies:
            block = c.offset // bs if c.offset != 1024 else (1 if bs == 1024 else 0)
            out = sh("dumpe2fs", "-h", "-o", f"superblock={block}", "-o", f"blocksize={bs}", image, ok=(0, 1))
            labels.append(out.split("Filesystem volume name:")[1].splitlines()[0].strip().replace("<none>", ""))
    elif fs == "xfs":
        for ag in range(len(plan.copies)):
            out = sh("xfs_db", "-r", "-c", f"sb {ag}", "-c", "print fname", image)
            labels.append(out.split("=", 1)[1].strip().strip('"').split("\\000")[0])
    else:
        for mirror in range(len(plan.copies)):
            out = sh(*btrfs_tool("btrfs"), "inspect-internal", "dump-super", "-s", str(mirror), image)
            labels.append(next(line[5:].strip() for line in out.splitlines() if line.startswith("label")))
    return labels


CASES = [("ext4-4k.img", "ext4", "ÉTÉ-2026 ✓"), ("ext4-1k.img", "ext4", "0123456789abcdef"),
         ("ext4-2k-128.img", "ext4", "sparse-super2"), ("ext4-metabg.img", "ext4", "meta bg"),
         ("ext4-bigalloc.img", "ext4", "bigalloc"), ("ext2.img", "ext4", "plain ext2"), ("ext3.img", "ext4", "ext3"),
         ("xfs-v5.img", "xfs", "xfs-v5-lbl"), ("xfs-v4.img", "xfs", "123456789012"),
         ("btrfs.img", "btrfs", "b" * 255), ("btrfs-xxhash-64k.img", "btrfs", "xxhash label"),
         ("btrfs-sha256.img", "btrfs", "sha256 ünïcödé"), ("btrfs-blake2.img", "btrfs", "blake2")]


@pytest.mark.parametrize("name,fs,label", CASES)
def test_label_every_copy_with_oracles(testdata: str, tmp_path: Path, name: str, fs: str, label: str) -> None:
    image = copy(Path(testdata) / name, tmp_path / name)
    proc = cli(str(image), label)
    assert proc.returncode == 0, proc.stderr
    assert tool_label(fs, image) == label
    assert blkid_label(image) == label
    shown = label if fs != "btrfs" else "".join(chr(b) if 32 <= b < 127 else "." for b in label.encode())
    assert copies_labels(fs, image) == [shown] * len(copies_labels(fs, image))  # dump-super prints ASCII
    fsck(fs, image)


def test_ext4_without_sparse_super_has_a_backup_in_every_group(tmp_path: Path) -> None:
    image = tmp_path / "nosparse.img"
    with open(image, "wb") as f:
        f.truncate(24 * MiB)
    sh("mkfs.ext4", "-q", "-F", "-b", "1024", "-g", "2048", "-O", "^sparse_super,^resize_inode", image)
    proc = cli("--json", str(image), "all-groups")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert len(result["copies"]) == 12  # 12 groups of 2 MiB: 11 backups and the primary
    assert copies_labels("ext4", image) == ["all-groups"] * 12
    fsck("ext4", image)


def test_label_in_partitions(testdata: str, tmp_path: Path) -> None:
    image = copy(Path(testdata) / "gpt-multi.img", tmp_path / "multi.img")
    parts = json.loads(sh("sfdisk", "-J", image))["partitiontable"]["partitions"]
    for spec, label in (("1", "boot-ext4"), ("PARTLABEL=root", "root-xfs"), ("LABEL=GPT-MULTI-BTRFS", "home")):
        proc = cli(f"{image}@{spec}", label)
        assert proc.returncode == 0, proc.stderr
    for p, label in zip(parts, ("boot-ext4", "root-xfs", "home"), strict=True):
        assert blkid_label(image, p["start"] * 512) == label


def _extract(image: Path, dev, out: Path, offset: int, size: int) -> Path:
    with open(out, "wb") as f:
        for start in range(offset, offset + size, 4 * MiB):
            f.write(dev.read(start, min(4 * MiB, offset + size - start)))
    return out


def test_label_in_qcow2_with_new_clusters(diskimages: Path, tmp_path: Path) -> None:
    """Compressed clusters (zstd) and a backing chain: the superblocks' clusters are new in the top image."""
    for name in ("multi-zstd.qcow2", "chain.qcow2"):
        if name == "chain.qcow2":
            image = copy_chain(diskimages, tmp_path)
        else:
            image = tmp_path / name
            shutil.copyfile(diskimages / name, image)
        spec = f"{image}@2" if name.startswith("multi") else str(image)
        proc = cli(spec, "in-qcow2")
        assert proc.returncode == 0, proc.stderr
        assert subprocess.run(["qemu-img", "check", str(image)], capture_output=True).returncode == 0
        flat = tmp_path / "flat.raw"
        sh("qemu-img", "convert", "-O", "raw", image, flat)
        if name.startswith("multi"):
            dev = open_image(str(flat))
            from diskfs.partition import find

            p = find(dev, "2")
            part = _extract(flat, dev, tmp_path / "p2.img", p.offset, p.size)
            assert tool_label("xfs", part) == "in-qcow2"
            fsck("xfs", part)
        else:
            assert tool_label("ext4", flat) == "in-qcow2"
            fsck("ext4", flat)
        proc = subprocess.run([sys.executable, "-m", "cloudboot", "fs", "info", spec], capture_output=True, text=True)
        assert "label: in-qcow2" in proc.stdout, proc.stdout + proc.stderr


def test_label_in_udrw(diskimages: Path, tmp_path: Path) -> None:
    image = tmp_path / "multi.dmg"
    shutil.copyfile(diskimages / "multi-UDRW.dmg", image)
    for part, label in (("1", "dmg-ext4"), ("2", "dmg-xfs"), ("3", "dmg-btrfs")):
        proc = cli(f"{image}@{part}", label)
        assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out.img"
    sh("dmg2img", "-s", image, out)
    assert subprocess.run(["7zz", "t", "-tdmg", str(image)], capture_output=True).returncode == 0
    dev = open_image(str(out))
    from diskfs.partition import partitions

    for p, (fs, label) in zip(partitions(dev), (("ext4", "dmg-ext4"), ("xfs", "dmg-xfs"), ("btrfs", "dmg-btrfs")),
                              strict=True):
        part = _extract(out, dev, tmp_path / f"p{p.number}.img", p.offset, p.size)
        assert tool_label(fs, part) == label
        fsck(fs, part)
        part.unlink()


def test_refusals_write_nothing(testdata: str, diskimages: Path, tmp_path: Path) -> None:
    ext4 = copy(Path(testdata) / "ext4-4k.img", tmp_path / "e.img")
    xfs = copy(Path(testdata) / "xfs-v5.img", tmp_path / "x.img")
    btrfs = copy(Path(testdata) / "btrfs.img", tmp_path / "b.img")
    udzo = tmp_path / "z.dmg"
    shutil.copyfile(diskimages / "ext4-UDZO.dmg", udzo)
    raid = Path(testdata) / "btrfs-raid1.img"
    before = {p: digest(p) for p in (ext4, xfs, btrfs, udzo)}
    cases = [((str(ext4), "x" * 17), "17 bytes: ext4 labels hold at most 16"),
             ((str(ext4), "é" * 9), "18 bytes"),
             ((str(xfs), "x" * 13), "xfs labels hold at most 12"),
             ((str(btrfs), "x" * 256), "btrfs labels hold at most 255"),
             ((str(ext4), "a\nb"), "control character"),
             ((str(udzo), "new"), "zlib chunk"),
             ((str(raid), "new"), "btrfs over 2 devices"),
             ((str(Path(testdata) / "vfat.img"), "new"), "no ext2/3/4, XFS or btrfs filesystem"),
             ((f"{tmp_path / 'nothing.img'}", "new"), "no such file")]
    for args, words in cases:
        proc = cli(*args)
        err = proc.stderr.decode()
        assert proc.returncode == 1 and words in err and err.count("\n") == 1, (args, err)
    proc = cli("--dry-run", str(ext4), "dry")
    out = proc.stdout.decode()
    assert proc.returncode == 0 and "would write" in out and "primary superblock" in out, proc.stderr
    assert {p: digest(p) for p in before} == before


def test_needs_recovery_is_refused(testdata: str, tmp_path: Path) -> None:
    image = copy(Path(testdata) / "ext4-dirty.img", tmp_path / "d.img")
    before = digest(image)
    proc = cli(str(image), "x")
    assert proc.returncode == 1 and "needs recovery" in proc.stderr.decode()
    assert digest(image) == before


# ---- crashes --------------------------------------------------------------------------------------------------
class Crash(Exception):
    pass


class CrashingFile(ImageFile):
    """An image file whose writes stop after `budget` of them (the machine lost power)."""

    budget = 0

    def write(self, offset, data):
        if CrashingFile.budget <= 0:
            raise Crash
        CrashingFile.budget -= 1
        super().write(offset, data)


@pytest.mark.parametrize("name,fs", [("ext4-4k.img", "ext4"), ("ext4-1k.img", "ext4"), ("xfs-v5.img", "xfs"),
                                     ("btrfs-sha256.img", "btrfs")])
def test_crash_between_copies_leaves_a_clean_filesystem(testdata: str, tmp_path: Path, name: str, fs: str) -> None:
    src = Path(testdata) / name
    old = tool_label(fs, src)
    dev = open_image(str(src))
    n = len(fslabel.plan(dev, "after-crash").copies)
    dev.close()
    for k in range(1, n):
        image = copy(src, tmp_path / f"{k}-{name}")
        dev = open_image(str(image), write=True)
        p = fslabel.plan(dev, "after-crash")
        done = 0
        for c in p.copies[:k]:  # the power goes after k copies
            dev.write(c.offset, c.data)
            dev.flush()
            done += 1
        dev.close()
        fsck(fs, image)
        assert tool_label(fs, image) in (old, "after-crash")
        assert cli(str(image), "after-crash").returncode == 0  # and labelling again completes
        assert tool_label(fs, image) == "after-crash"
        image.unlink()


def test_crash_inside_a_qcow2_allocation(diskimages: Path, tmp_path: Path, monkeypatch) -> None:
    """The chain's top holds no superblock: every copy needs a new cluster (refcount, data, L2 entry). The power
    goes after each of the writes in turn: qemu-img check finds at most leaked clusters, and the filesystem is
    clean with the old or the new label."""
    import cloudboot.diskimage as diskimage

    monkeypatch.setattr(diskimage, "ImageFile", CrashingFile)
    CrashingFile.budget = 1 << 30
    fslabel.relabel(str(copy_chain(diskimages, tmp_path)), "crashed")
    total = (1 << 30) - CrashingFile.budget
    assert total > 8
    for k in range(0, total, max(1, total // 12)):
        image = copy_chain(diskimages, tmp_path)
        CrashingFile.budget = k
        with pytest.raises(Crash):
            fslabel.relabel(str(image), "crashed")
        check = subprocess.run(["qemu-img", "check", str(image)], capture_output=True, text=True)
        assert check.returncode in (0, 3), check.stdout  # 3: leaked clusters only
        flat = tmp_path / "flat.raw"
        sh("qemu-img", "convert", "-O", "raw", image, flat)
        fsck("ext4", flat)
        assert tool_label("ext4", flat) in ("EXT4-1K", "crashed")


# ---- images in use --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,fmt", [("ext4.qcow2", "qcow2"), ("ext4-UDRW.dmg", "raw")])
def test_label_refused_while_a_qemu_holds_the_image(diskimages: Path, tmp_path: Path, name: str, fmt: str) -> None:
    """A real QEMU (paused, the disk on a virtio-blk device) holds the image: label and --dry-run are refused,
    nothing is written; once QEMU is gone the label goes in."""
    import time

    from cloudboot.diskimage.imagefile import ImageInUse, check_unlocked

    image = tmp_path / name
    shutil.copyfile(diskimages / name, image)
    before = digest(image)
    qemu = subprocess.Popen(["qemu-system-x86_64", "-M", "q35", "-nodefaults", "-display", "none", "-S",
                             "-drive", f"file={image},if=none,format={fmt},id=d0", "-device",
                             "virtio-blk-pci,drive=d0"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert qemu.poll() is None, qemu.stderr.read().decode()
            try:
                check_unlocked(str(image))
            except ImageInUse:
                break
            assert time.monotonic() < deadline, "QEMU took no lock"
            time.sleep(0.2)
        for args in ((str(image), "busy"), ("--dry-run", str(image), "busy")):
            proc = cli(*args)
            err = proc.stderr.decode()
            assert proc.returncode == 1 and "in use" in err and "QEMU" in err, err
        assert digest(image) == before
    finally:
        qemu.kill()
        qemu.wait()
    proc = cli(str(image), "free")
    assert proc.returncode == 0, proc.stderr
