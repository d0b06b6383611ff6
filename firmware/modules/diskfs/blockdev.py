"""Block devices for the disk core: anything with `name`, `size`, `sector_size` and `readinto(offset, buf)`.

File-backed (CPython and the MicroPython unix port), in-memory, and windows of another device (partitions).
The firmware's BlockIo wrapper (uefi/blockio.py) has the same shape. Reads are byte-addressed; a read that
runs past the end is a Corrupt error naming the device and offset, checked before anything is allocated.
"""

from diskfs.errors import Corrupt, NotFound


class BlockDevice:
    """Byte-addressed read access; subclasses implement readinto(offset, buf)."""

    size = 0
    name = "device"
    sector_size = 512

    def readinto(self, offset, buf):  # pragma: no cover - every device overrides it
        raise NotImplementedError

    def read(self, offset: int, length: int) -> bytes:
        """`length` bytes at `offset` (Corrupt if that runs past the end, checked before allocating)."""
        self.check(offset, length)
        buf = bytearray(length)
        self.readinto(offset, buf)
        return bytes(buf)

    def check(self, offset: int, length: int) -> None:
        """Corrupt unless [offset, offset + length) lies inside the device."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise Corrupt("%s: read of %d bytes at byte %d is outside the %d-byte device"
                          % (self.name, length, offset, self.size), "device", offset)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<%s %s, %d bytes>" % (type(self).__name__, self.name, self.size)


class FileDevice(BlockDevice):
    """A disk image file (or a block device node) opened read-only."""

    def __init__(self, path: str, sector_size: int = 512):
        self.name = path
        self.sector_size = sector_size
        try:
            self.f = open(path, "rb")
        except OSError as exc:
            raise NotFound("%s: cannot open: %s" % (path, exc), path) from None
        self.size = self.f.seek(0, 2)

    def readinto(self, offset, buf):
        n = len(buf)
        self.check(offset, n)
        self.f.seek(offset)
        got = self.f.readinto(buf)
        if got is not None and got < n:  # a short read (a pipe-like file, or a device error): retry the rest
            mv = memoryview(buf)
            while got < n:
                more = self.f.readinto(mv[got:])
                if not more:
                    raise Corrupt("%s: short read at byte %d" % (self.name, offset + got), "device", offset + got)
                got += more

    def close(self):
        self.f.close()


class MemoryDevice(BlockDevice):
    """Bytes in memory (tests, fuzzing, a partition already read)."""

    def __init__(self, data, name: str = "memory", sector_size: int = 512):
        self.data, self.size, self.name, self.sector_size = data, len(data), name, sector_size

    def readinto(self, offset, buf):
        self.check(offset, len(buf))
        buf[:] = memoryview(self.data)[offset:offset + len(buf)]


class SliceDevice(BlockDevice):
    """A window of another device (a partition)."""

    def __init__(self, parent, offset: int, size: int, name: str = ""):
        if offset < 0 or size < 0 or offset + size > parent.size:
            raise Corrupt("%s: partition at byte %d, %d bytes long, runs past the end (%d bytes)"
                          % (parent.name, offset, size, parent.size), "partition", offset)
        self.parent, self.offset, self.size = parent, offset, size
        self.sector_size = getattr(parent, "sector_size", 512)
        self.name = name or "%s@%d" % (parent.name, offset)

    def readinto(self, offset, buf):
        self.check(offset, len(buf))
        self.parent.readinto(self.offset + offset, buf)


def open_device(path_or_device):
    """A device from a path (a FileDevice) or a device passed through unchanged."""
    if isinstance(path_or_device, str):
        return FileDevice(path_or_device)
    return path_or_device


def read(dev, offset: int, length: int) -> bytes:
    """`length` bytes of any device-shaped object (the firmware's BlockIo wrapper has no `check`)."""
    if offset < 0 or length < 0 or offset + length > dev.size:
        raise Corrupt("%s: read of %d bytes at byte %d is outside the %d-byte device"
                      % (dev.name, length, offset, dev.size), "device", offset)
    buf = bytearray(length)
    dev.readinto(offset, buf)
    return bytes(buf)
