"""diskfs: portable, read-only disk and filesystem core (MicroPython and CPython).

`open(device_or_path)` gives the filesystem on a device or partition (ext2/3/4, XFS, btrfs or a ZFS dataset;
inside LUKS given a passphrase) with listdir, stat, open (read/readinto/seek), readlink, walk, label and uuid;
`partitions(disk)` reads GPT/MBR;
`diskfs.probe` names what is on a device; `diskfs.formats` is the one registry of what each can be. Every
failure is an FsError: Corrupt, Unsupported, NotFound, Locked (a key is missing or wrong) or LimitExceeded.
"""

from diskfs import formats
from diskfs.errors import Corrupt, DiskfsError, FsError, LimitExceeded, Locked, NotFound, Unsupported  # noqa: F401
from diskfs.partition import partitions, read_table  # noqa: F401


def detect(dev):
    """The name of the filesystem on `dev` by magic ('ext4', 'xfs', 'btrfs' or 'zfs_member'), or None."""
    fmt = formats.find(dev, formats.FILESYSTEM)
    return fmt.name if fmt else None


MAX_NESTING = 4  # containers inside containers


def open_filesystem(dev, devices=None, **options):
    """The filesystem on `dev` (ext2/3/4, XFS, btrfs or ZFS), or None when no known magic is found.

    `devices`: other devices to search for the rest of a multi-device btrfs (found by its fsid). A container
    (LUKS) is opened with `passphrase=` (or `key=`, a key file's bytes; `luks_limits=` raises its limits) and
    the device inside is searched again."""
    from diskfs.blockdev import open_device

    dev = open_device(dev)
    for _ in range(MAX_NESTING):
        fmt = formats.find(dev, (formats.FILESYSTEM, formats.CONTAINER))
        if fmt is None:
            return None
        opened = fmt.open(dev, devices, formats.options_for(fmt, options))
        if fmt.role == formats.FILESYSTEM:
            return opened
        dev = opened
    raise Corrupt("%s: containers nested more than %d deep" % (dev.name, MAX_NESTING), "container")


def open(dev, devices=None, **options):  # noqa: A001 - the package's one entry point, as the issue names it
    """The filesystem on a device, partition or image path; NotFound when nothing known is there."""
    fs = open_filesystem(dev, devices, **options)
    if fs is None:
        name = dev if isinstance(dev, str) else dev.name
        raise NotFound("%s: no %s filesystem found" % (name, formats.titles(formats.FILESYSTEM)))
    return fs
