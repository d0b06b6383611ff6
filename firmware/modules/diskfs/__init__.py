"""diskfs: portable, read-only disk and filesystem core (MicroPython and CPython).

`open(device_or_path)` gives the filesystem on a device or partition (ext2/3/4, XFS or btrfs) with listdir,
stat, open (read/readinto/seek), readlink, walk, label and uuid; `partitions(disk)` reads GPT/MBR;
`diskfs.probe` names what is on a device; `diskfs.formats` is the one registry of what each can be. Every
failure is an FsError: Corrupt, Unsupported or NotFound.
"""

from diskfs import formats
from diskfs.errors import Corrupt, DiskfsError, FsError, NotFound, Unsupported  # noqa: F401
from diskfs.partition import partitions, read_table  # noqa: F401


def detect(dev):
    """The name of the filesystem on `dev` by magic ('ext4', 'xfs' or 'btrfs'), or None."""
    fmt = formats.find(dev, formats.FILESYSTEM)
    return fmt.name if fmt else None


def open_filesystem(dev, devices=None, **options):
    """The filesystem on `dev` (ext2/3/4, XFS or btrfs), or None when no known magic is found.

    `devices`: other devices to search for the rest of a multi-device btrfs (found by its fsid). A LUKS
    container will be unlocked here (formats.CONTAINER: its open() yields the inner device, searched again);
    until then it is no filesystem."""
    from diskfs.blockdev import open_device

    dev = open_device(dev)
    fmt = formats.find(dev, formats.FILESYSTEM)
    return fmt.open(dev, devices, options) if fmt else None


def open(dev, devices=None, **options):  # noqa: A001 - the package's one entry point, as the issue names it
    """The filesystem on a device, partition or image path; NotFound when nothing known is there."""
    fs = open_filesystem(dev, devices, **options)
    if fs is None:
        name = dev if isinstance(dev, str) else dev.name
        raise NotFound("%s: no %s filesystem found" % (name, formats.titles(formats.FILESYSTEM)))
    return fs
