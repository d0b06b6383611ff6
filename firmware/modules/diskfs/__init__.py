"""diskfs: portable, read-only disk and filesystem core (MicroPython and CPython).

`open_filesystem(device)` probes a partition; `partitions(disk)` reads GPT/MBR."""

from diskfs.errors import Corrupt, DiskfsError, NotFound, Unsupported  # noqa: F401
from diskfs.gpt import partitions  # noqa: F401


def open(dev):  # noqa: A001 - the package's one entry point, as the issue names it
    """The filesystem on a device or partition; NotFound when nothing known is there."""
    fs = open_filesystem(dev)
    if fs is None:
        raise NotFound("%s: no ext2/3/4, XFS or btrfs filesystem found" % dev.name)
    return fs


def open_filesystem(dev):
    """The filesystem on `dev` (ext2/3/4, XFS or btrfs), or None when no known magic is found."""
    if dev.size >= 2048 and dev.read(1080, 2) == b"\x53\xef":
        from diskfs import ext4

        return ext4.Ext4(dev)
    if dev.size >= 512 and dev.read(0, 4) == b"XFSB":
        from diskfs import xfs

        return xfs.Xfs(dev)
    if dev.size >= 0x10000 + 4096 and dev.read(0x10040, 8) == b"_BHRfS_M":
        from diskfs import btrfs

        return btrfs.Btrfs(dev)
    return None
