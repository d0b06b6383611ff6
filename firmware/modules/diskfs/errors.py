"""The one error family of the portable disk core: every failure names the device, offset or inode."""


class DiskfsError(Exception):
    """Base of all diskfs errors."""


class Corrupt(DiskfsError):
    """On-disk structures are inconsistent (bad magic, out-of-range pointer, checksum mismatch)."""


class Unsupported(DiskfsError):
    """A valid filesystem using a feature this reader does not implement (named in the message)."""


class NotFound(DiskfsError):
    """A path does not exist."""
