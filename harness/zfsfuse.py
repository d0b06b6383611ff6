"""ZFS pools made by zfs-fuse (real ZFS code in userspace, pool version 23: mirror, raidz1-3, lzjb/gzip/zle,
fletcher2/4 and sha256; no kernel module, no root mounts on the host): the test pools of the ZFS reader and the
e2e boot disks. Datasets are filled through zfs-fuse's FUSE mounts under a work directory; at the end every
dataset is unmounted, set canmount=noauto, given its final mountpoint and the pool exported."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from cloudboot.errors import MissingTool
from cloudboot.run import echo, run

_LOCK = threading.Lock()  # one zfs-fuse daemon serves the whole machine: one pool at a time


def _try(*args) -> bool:
    """A command whose failure is an answer (echoed like every other): did it succeed?"""
    echo([str(a) for a in args])
    return subprocess.run([str(a) for a in args], capture_output=True).returncode == 0


def _answers() -> bool:
    return _try("zpool", "list")


@contextlib.contextmanager
def daemon(work: Path):
    """A zfs-fuse daemon: started here unless one already answers, and then stopped again."""
    if not shutil.which("zfs-fuse"):
        raise MissingTool("zfs-fuse", "zfs-fuse", "ZFS test pools")
    with _LOCK:
        pid = None
        if not _answers():
            pidfile = work / "zfs-fuse.pid"
            run(["zfs-fuse", "--no-kstat-mount", "-p", pidfile], quiet=True)
            for _ in range(100):
                if _answers():
                    break
                time.sleep(0.1)
            pid = int(pidfile.read_text())
        try:
            yield
        finally:
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    try:
                        os.kill(pid, 0)
                    except OSError:
                        break
                    time.sleep(0.1)


def _zfs(*args) -> str:
    return run(list(args), capture=True).stdout.decode()


def make_pool(pool: str, vdevs: list, datasets: list[tuple[str, Path | None, dict, str | None]], work: Path) -> str:
    """Create `pool` over `vdevs` (zpool create's vdev arguments: files, 'mirror', 'raidz2'...). `datasets`:
    (name below the pool, '' for its root; a directory to copy in or None; properties; a snapshot name or None),
    all created first, then each directory copied in (a child dataset mounted inside receives its part; sparse
    files stay sparse); a snapshot is taken after its copy and the live dataset then changed (/etc/hostname
    rewritten, /etc/file-0000 removed). Returns `zdb -C -u`'s account of the exported pool."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with daemon(work):
        _try("zpool", "destroy", "-f", pool)  # a leftover of an interrupted run
        _zfs("zpool", "create", "-f", "-o", "cachefile=none", "-O", f"mountpoint={work}/mnt", pool, *vdevs)
        try:
            finals, mounts = [], {}
            for name, _, props, _ in datasets:
                full = f"{pool}/{name}" if name else pool
                opts = [f"{k}={v}" for k, v in props.items() if k != "mountpoint"]
                if name:
                    _zfs("zfs", "create", *[a for o in opts for a in ("-o", o)], full)
                for o in opts if not name else []:
                    _zfs("zfs", "set", o, full)
                mounts[full] = _zfs("zfs", "get", "-H", "-o", "value", "mountpoint", full).strip()
                finals.append((full, props.get("mountpoint")))
            for name, source, _, snap in datasets:
                full = f"{pool}/{name}" if name else pool
                if source:
                    _zfs("cp", "-a", "--sparse=always", f"{source}/.", mounts[full])
                    os.sync()
                if snap:
                    _zfs("zfs", "snapshot", f"{full}@{snap}")
                    Path(mounts[full], "etc/hostname").write_text("after the snapshot\n")
                    Path(mounts[full], "etc/file-0000").unlink()
            _zfs("zfs", "umount", "-a")
            for full, mountpoint in finals:
                _zfs("zfs", "set", "canmount=noauto", full)
                if mountpoint:
                    _zfs("zfs", "set", f"mountpoint={mountpoint}", full)
        finally:
            _try("zpool", "export", "-f", pool)
        devdir = Path(next(v for v in vdevs if "/" in str(v))).parent
        account = _zfs("zdb", "-e", "-p", devdir, "-C", "-u", pool)  # zfs-fuse's zdb wants its daemon up
    shutil.rmtree(work, ignore_errors=True)
    return account
