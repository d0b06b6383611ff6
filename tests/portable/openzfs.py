"""ZFS pools made by OpenZFS itself, for what zfs-fuse's pool version 23 cannot hold: feature flags, lz4 and
zstd, embedded blocks, large dnodes, system attributes (ZPL version 5) and native encryption.

Debian ships OpenZFS as a kernel module to build (zfs-dkms, contrib) and its userland (zfsutils-linux,
contrib). A trixie chroot made by debootstrap (root, no device-mapper, no host mounts but its /proc) installs
the fixture VM's kernel headers, builds the module for that kernel with dkms and installs the userland; it is
cached under ~/.cache/cloud-boot/openzfs by its inputs (the kernel release and this file), so a machine builds
it once (about 15 minutes on 2 cores). One QEMU boot (TCG) of the same Debian kernel then mounts the chroot's
ext4 image read-only as its root (a busybox initramfs loads virtio_blk and ext4), loads zfs, creates each
pool on its virtio disks, fills it from the trees (copied into the image), exports it and powers off.
CPython only (host side).
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
from pathlib import Path

from cloudboot.errors import CloudBootError
from cloudboot.initramfs import cpio, debian, kmods
from cloudboot.paths import cache_dir
from cloudboot.run import run
from cloudboot.toolchain import apt
from cloudboot.toolchain.buildroot import unmount_below
from tests.portable import vmimages

ARCH = "amd64"
SUITE = "trixie"
MODULES = ["virtio_blk", "crc32c_generic", "ext4"]
OK, FAIL = "CLOUDBOOT-OPENZFS-OK", "CLOUDBOOT-OPENZFS-FAIL"
TIMEOUT = 1800.0  # seconds of TCG for the whole run
KEYS = {"pass": b"openzfs passphrase", "raw": bytes(range(32))}  # /cbkeys/<name> in the VM

INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
for m in {modules}; do /bin/busybox insmod $m || echo "insmod $m failed"; done
/bin/busybox mount -o ro -t ext4 /dev/vda /newroot || echo "{fail} mount"
for d in proc sys dev; do /bin/busybox mount --bind /$d /newroot/$d; done
for d in tmp run var/tmp mnt; do /bin/busybox mount -t tmpfs tmpfs /newroot/$d; done
/bin/busybox chroot /newroot /bin/sh /cbfixture.sh && echo "{ok}" || echo "{fail}"
/bin/busybox sync
/bin/busybox poweroff -f
"""


#: Parts of the chroot the VM does not need (compilers, sources, downloaded packages, documentation)
SLIM = ["usr/src", "usr/lib/gcc", "usr/libexec/gcc", "usr/share/doc", "usr/share/locale", "usr/share/man", "boot",
        "var/cache/apt", "var/lib/apt/lists", "var/lib/dkms"]


def _key(release: str) -> str:
    return hashlib.sha256((release + inspect.getsource(_chroot)).encode()).hexdigest()[:16]


def _chroot(release: str) -> Path:
    """A trixie chroot with the kernel's headers, zfs-dkms built for `release` and zfsutils-linux (cached)."""
    base = cache_dir() / "openzfs" / _key(release)
    root = base / "root"
    done = base / "done"
    if done.exists():
        return root
    unmount_below(base)  # an interrupted build may have left its /proc mounted in there
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    mirror = apt.archive_uri()
    run(["debootstrap", "--variant=buildd", "--components=main,contrib", "--include=python3,kmod", SUITE, root,
         mirror], quiet=True)
    (root / "etc/apt/sources.list").write_text(f"deb {mirror} {SUITE} main contrib\n")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["mount", "-t", "proc", "proc", root / "proc"])
    try:
        run(["chroot", root, "apt-get", "update", "-q"], env=env, quiet=True)
        run(["chroot", root, "apt-get", "install", "-y", "-q", "--no-install-recommends",
             f"linux-headers-{release}", "dkms"], env=env, quiet=True)
        run(["chroot", root, "apt-get", "install", "-y", "-q", "--no-install-recommends", "zfs-dkms",
             "zfsutils-linux"], env=env, quiet=True)
        version = next(p.name[4:] for p in (root / "usr/src").iterdir() if p.name.startswith("zfs-"))
        if not list((root / "usr/lib/modules" / release).rglob("zfs.ko*")):
            run(["chroot", root, "dkms", "install", f"zfs/{version}", "-k", release], env=env, quiet=True)
        if not list((root / "usr/lib/modules" / release).rglob("zfs.ko*")):
            raise CloudBootError(f"dkms built no zfs.ko for {release} in {root}")
        run(["chroot", root, "depmod", release])
    finally:
        unmount_below(root)
    done.write_text(version)
    return root


def _initrd(root: Path, release: str, out: Path) -> None:
    archive = debian.Archive(ARCH)
    busybox = archive.unpack(archive.fetch(["busybox-static"])[0]) / "usr/bin/busybox"
    mods = kmods.select(root, release, MODULES)
    a = cpio.Archive()
    a.file("bin/busybox", busybox, 0o755)
    paths = []
    for rel in mods.order:
        a.file(f"m/{rel.rsplit('/', 1)[-1]}", mods.files[rel], 0o644)
        paths.append(f"/m/{rel.rsplit('/', 1)[-1]}")
    a.file("init", INIT.format(modules=" ".join(paths), ok=OK, fail=FAIL).encode(), 0o755)
    out.write_bytes(a.to_bytes())


def _script(jobs: list[tuple[str, str, list[str], list[tuple[str, str | None, dict]]]]) -> str:
    """The shell script the VM runs in the chroot: per job (pool, vdev layout with d0.. for its disks,
    datasets (name, tree, properties)) create, fill, export."""
    lines = ["set -e", "modprobe zfs", "ls /dev/vd*"]
    disk = 1  # vda is the root filesystem
    for pool, layout, devs, datasets in jobs:
        names = {f"d{i}": f"/dev/vd{chr(ord('a') + disk + i)}1" for i in range(len(devs))}  # partition 1
        disk += len(devs)
        vdevs = " ".join(names.get(w, w) for w in layout.split())
        lines.append(f"zpool create -f -o cachefile=none -o ashift=12 -O mountpoint=/mnt/{pool} {pool} {vdevs}")
        for name, tree, props in datasets:
            opts = " ".join(f"-o {k}={v}" for k, v in props.items())
            full = f"{pool}/{name}" if name else pool
            if name:
                lines.append(f"zfs create {opts} {full}")
            if tree:
                lines.append(f"cp -a --sparse=always /cbtrees/{tree}/. $(zfs get -H -o value mountpoint {full})/")
        lines += ["sync", f"zpool export {pool}", f"echo exported {pool}"]
    return "\n".join(lines) + "\n"


def _rootfs(root: Path, trees: dict[str, Path], script: str, out: Path) -> None:
    """The chroot, the trees, the keys and the script as an ext4 image (mkfs.ext4 -d; the chroot untouched)."""
    stage = out.parent / (out.stem + ".stage")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    (stage / "cbtrees").mkdir()
    for name, path in trees.items():  # cp -a: hard links stay hard links
        run(["cp", "-a", path, stage / "cbtrees" / name], quiet=True)
    (stage / "cbkeys").mkdir()
    for name, data in KEYS.items():
        (stage / "cbkeys" / name).write_bytes(data)
    (stage / "cbfixture.sh").write_text(script)
    # two passes of -d are not possible: lay the stage over a copy-free view with cp -al (hard links, no data)
    merged = out.parent / (out.stem + ".merged")
    shutil.rmtree(merged, ignore_errors=True)
    run(["cp", "-al", root, merged], quiet=True)
    for unused in SLIM:  # what only the module build needed: half the image, and mkfs's time
        shutil.rmtree(merged / unused, ignore_errors=True)
    run(["cp", "-a", f"{stage}/.", merged], quiet=True)
    size = sum(f.stat().st_size for f in merged.rglob("*") if f.is_file() and not f.is_symlink())
    with open(out, "wb") as f:
        f.truncate(int(size * 1.4) + (256 << 20))
    run(["mkfs.ext4", "-q", "-F", "-d", merged, out], quiet=True)
    shutil.rmtree(merged)
    shutil.rmtree(stage)


def fill(jobs, trees: dict[str, Path], work: Path) -> str:
    """Create every job's pool (pool, layout, device images, datasets) in one VM; the transcript."""
    release = debian.resolve_kernel(debian.Archive(ARCH), None)[0]
    root = _chroot(release)
    image = work / "openzfs-root.img"
    initrd = work / "openzfs-initrd.cpio"
    _rootfs(root, trees, _script([(p, layout, devs, ds) for p, layout, devs, ds in jobs]), image)
    _initrd(root, release, initrd)
    disks = [image] + [d for _, _, devs, _ in jobs for d in devs]
    try:
        text, took = vmimages.run_vm(initrd, disks, 2048, OK, FAIL, TIMEOUT, f"OpenZFS pools under Linux {release}")
    finally:
        image.unlink(missing_ok=True)
        initrd.unlink(missing_ok=True)
    print(f"openzfs: {len(jobs)} pools made by OpenZFS under Linux {release} in {took:.0f} s")
    return text
