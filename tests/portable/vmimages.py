"""Filesystems the real Linux kernel fills, for what mkfs cannot populate: multi-device btrfs sets holding files
(mkfs.btrfs --rootdir takes one device only) and an XFS file with a B+tree data fork (mkfs.xfs -p writes
files contiguously). tests/portable/images.py makes the empty filesystems with the real mkfs; one QEMU boot
(TCG) of Debian's amd64 kernel then mounts each in turn, writes the trees with the same generator functions
the host uses for the manifests (their source is shipped), unmounts and powers off. No root, no host mounts.

The initramfs: Debian's CPython (the initramfs builder's add_python), the kernel's own btrfs/xfs modules and
a short /init written here, not the production init. CPython only (host side).
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable
from pathlib import Path

from cloudboot.errors import CloudBootError
from cloudboot.harness import trial
from cloudboot.initramfs import build as irbuild
from cloudboot.initramfs import debian, kmods
from cloudboot.initramfs import python as pysel
from cloudboot.paths import MODULES_DIR, ROOT

ARCH = "amd64"
#: crc32c's crypto driver first: btrfs and xfs ask the crypto API for it, and there is no modprobe to load it.
MODULES = ["crc32c_generic", "virtio_blk", "btrfs", "xfs"]
OK, FAIL = "CLOUDBOOT-VMFS-OK", "CLOUDBOOT-VMFS-FAIL"
TIMEOUT = 900.0  # seconds of TCG for the whole run (about one minute on a 2-core CI machine)

INIT = '''#!/usr/bin/python{ver} -IBSu
"""Fills the filesystems of JOBS (made by mkfs on the host) with the trees, then powers off."""
import os
import struct
import sys
import traceback
from pathlib import Path

sys.path[:0] = ["/usr/lib/cloudboot"]
from cloudboot.init import linux  # noqa: E402

MODULES = {modules!r}
JOBS = {jobs}

{generators}


def main():
    for fstype, where in (("proc", "/proc"), ("sysfs", "/sys"), ("devtmpfs", "/dev")):
        linux.mount(fstype, where, fstype)
    for path in MODULES:
        fd = os.open(path, os.O_RDONLY)
        try:
            linux.finit_module(fd)
        finally:
            os.close(fd)
    disks = {{}}
    for name in os.listdir("/sys/block"):
        if name.startswith("vd"):
            with open("/sys/block/%s/serial" % name) as f:
                disks[f.read().strip()] = "/dev/" + name
    os.makedirs("/mnt", exist_ok=True)
    for name, fstype, serials, trees in JOBS:
        devs = [disks[s] for s in serials]
        opts = ",".join("device=" + d for d in devs) if fstype == "btrfs" else None
        linux.mount(devs[0], "/mnt", fstype, 0, opts)
        for tree in trees:
            GENERATORS[tree](Path("/mnt") / tree)
        os.sync()
        if linux.libc().umount2(b"/mnt", 0):
            raise OSError("umount %s failed" % name)
        print("filled", name, "on", " ".join(devs), flush=True)
    print("{ok}", flush=True)


try:
    main()
except BaseException:
    traceback.print_exc()
    print("{fail}", flush=True)
os.sync()
linux.reboot(linux.LINUX_REBOOT_CMD_POWER_OFF)
'''


def kernel_release() -> str:
    """The Debian kernel the images are written with (part of their cache key)."""
    archive = debian.Archive(ARCH)
    return debian.resolve_kernel(archive, None)[0]


def _initramfs(out: Path, jobs: list[tuple[str, str, list[str], list[str]]],
               generators: dict[str, Callable], helpers: list[Callable]) -> debian.Kernel:
    archive = debian.Archive(ARCH)
    kernel = debian.fetch_kernel(archive, None)
    ver = irbuild.python_version(archive, None)
    b = irbuild.Builder()
    roots = pysel.STARTUP + ["pathlib", "struct", "traceback", "cloudboot.init.linux"]
    own = [(irbuild.IMAGE_LIBDIR, ROOT / "host"), (irbuild.IMAGE_LIBDIR, MODULES_DIR)]  # cloudboot, arches
    irbuild.add_python(b, archive, ver, roots, own, [])
    mods = kmods.select(archive.unpack(kernel.modules_deb), kernel.release, MODULES,
                        archive.unpack(kernel.base_deb) if kernel.base_deb else None)
    moddir = f"/usr/lib/modules/{kernel.release}"
    for rel, data in mods.files.items():
        b.file(f"{moddir}/{rel}", data, 0o644, "kernel modules")
    # load_order sorts independent modules by path: kernel/crypto/crc32c_generic.ko precedes kernel/fs/*
    order = [f"{moddir}/{rel}" for rel in mods.order]
    source = "\n\n".join(inspect.getsource(f) for f in helpers + list(generators.values()))
    source += "\n\nGENERATORS = {%s}\n" % ", ".join(f"{k!r}: {f.__name__}" for k, f in generators.items())
    script = INIT.format(ver=ver, modules=order, jobs=json.dumps(jobs), generators=source, ok=OK, fail=FAIL)
    b.file("init", script.encode(), 0o755, "init")
    for d in ("dev", "proc", "sys", "mnt"):
        b.archive.dir(d)
    b.archive.device("dev/console", "c", 5, 1, 0o600)
    # CPython seeds its str hash before devtmpfs is mounted: a file stands in for the device (as in build.py)
    b.file("dev/urandom", bytes(range(256)) * 8, 0o444, "init")
    for link in ("bin", "sbin", "lib", "lib64"):
        if link != "lib64" or any(p.startswith("usr/lib64/") for p in b.archive.entries):
            b.archive.symlink(link, f"usr/{link}")
    with open(out, "wb") as f:
        b.archive.write(f)
    return kernel


def fill(jobs: list[tuple[str, str, list[Path], list[str]]], generators: dict[str, Callable],
         helpers: list[Callable], work: Path) -> str:
    """Mount each job's (name, fstype, device images, tree names) in one VM and run the generators of its
    trees at /<tree>; returns the VM's transcript. CloudBootError (with its tail) when a step failed."""
    disks: list[Path] = []
    vm_jobs = []
    for name, fstype, devices, trees in jobs:
        vm_jobs.append((name, fstype, [f"d{len(disks) + i}" for i in range(len(devices))], trees))
        disks += devices
    initrd = work / "vmfs-initrd.cpio"
    kernel = _initramfs(initrd, vm_jobs, generators, helpers)
    try:
        text, took = run_vm(initrd, disks, 1024, OK, FAIL, TIMEOUT,
                            f"filling {', '.join(j[0] for j in jobs)} under {kernel.release}")
    finally:
        initrd.unlink(missing_ok=True)
    print(f"vmimages: {len(jobs)} filesystems filled by Linux {kernel.release} in {took:.0f} s")
    return text


def run_vm(initrd: Path, disks: list[Path], memory_mb: int, ok: str, fail: str, timeout: float,
           what: str) -> tuple[str, float]:
    """Boot Debian's kernel with `initrd` and writable `disks` until a line starts with `ok` or `fail`;
    (transcript, seconds). CloudBootError with the console's tail for `fail` or a timeout."""
    image, _ = debian.kernel_image(ARCH)
    qemu = trial.machine(ARCH, image, initrd, "panic=-1 loglevel=4", disks, memory_mb=memory_mb, writable=True)
    t0 = time.monotonic()
    qemu.start()
    try:
        qemu.expect_line(f"^({ok}|{fail})", timeout)
        if any(line.startswith(fail) for line in qemu.lines()):
            raise CloudBootError(f"{what} failed:\n" + qemu.tail(60))
        qemu.wait(120)
    finally:
        qemu.kill()
    return qemu.text, time.monotonic() - t0
