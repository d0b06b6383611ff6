"""diskfs: portable, read-only disk and filesystem core (MicroPython and CPython).

`open(device_or_path)` gives the filesystem on a device or partition (ext2/3/4, XFS or btrfs) with listdir,
stat, open (read/readinto/seek), readlink, walk, label and uuid; `partitions(disk)` reads GPT/MBR;
`diskfs.probe` names what is on a device. Every failure is an FsError: Corrupt, Unsupported or NotFound.
"""

from diskfs.errors import Corrupt, DiskfsError, FsError, NotFound, Unsupported  # noqa: F401
from diskfs.partition import partitions, read_table  # noqa: F401

BTRFS_SUPER = 0x10000


def detect(dev):
    """'ext4', 'xfs' or 'btrfs' by magic, or None."""
    from diskfs.blockdev import read

    if dev.size >= 2048 and read(dev, 1080, 2) == b"\x53\xef":
        return "ext4"
    if dev.size >= 512 and read(dev, 0, 4) == b"XFSB":
        return "xfs"
    if dev.size >= BTRFS_SUPER + 4096 and read(dev, BTRFS_SUPER + 0x40, 8) == b"_BHRfS_M":
        return "btrfs"
    return None


def open_filesystem(dev, devices=None, **options):
    """The filesystem on `dev` (ext2/3/4, XFS or btrfs), or None when no known magic is found.

    `devices`: other devices to search for the rest of a multi-device btrfs (found by its fsid)."""
    from diskfs.blockdev import open_device

    dev = open_device(dev)
    kind = detect(dev)
    if kind == "ext4":
        from diskfs import ext4

        return ext4.Ext4(dev, **options)
    if kind == "xfs":
        from diskfs import xfs

        return xfs.Xfs(dev, **options)
    if kind == "btrfs":
        from diskfs import btrfs

        return btrfs.Btrfs(dev, devices=devices, **options)
    return None


def open(dev, devices=None, **options):  # noqa: A001 - the package's one entry point, as the issue names it
    """The filesystem on a device, partition or image path; NotFound when nothing known is there."""
    fs = open_filesystem(dev, devices, **options)
    if fs is None:
        name = dev if isinstance(dev, str) else dev.name
        raise NotFound("%s: no ext2/3/4, XFS or btrfs filesystem found" % name)
    return fs
