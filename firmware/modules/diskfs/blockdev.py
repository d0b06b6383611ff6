"""Block devices for the disk core: anything with `size` and `readinto(offset, buf)`.

File-backed (CPython and MicroPython unix), in-memory, and slices (partitions) of another device.
"""

from diskfs.errors import Corrupt


class BlockDevice:
    """Byte-addressed read access; subclasses implement readinto(offset, buf)."""

    size = 0
    name = "device"

    def read(self, offset, length):
        """`length` bytes at `offset` (Corrupt if that runs past the end)."""
        buf = bytearray(length)
        self.readinto(offset, buf)
        return bytes(buf)

    def check(self, offset, length):
        if offset < 0 or offset + length > self.size:
            raise Corrupt("%s: read of %d bytes at offset %d is outside the %d-byte device"
                          % (self.name, length, offset, self.size))


class FileDevice(BlockDevice):
    """A disk image file."""

    def __init__(self, path):
        self.name = path
        self.f = open(path, "rb")
        self.size = self.f.seek(0, 2)

    def readinto(self, offset, buf):
        self.check(offset, len(buf))
        self.f.seek(offset)
        got = self.f.readinto(buf)
        if got != len(buf):
            raise Corrupt("%s: short read at offset %d" % (self.name, offset))

    def close(self):
        self.f.close()


class MemoryDevice(BlockDevice):
    """Bytes in memory (tests, fuzzing)."""

    def __init__(self, data, name="memory"):
        self.data, self.size, self.name = data, len(data), name

    def readinto(self, offset, buf):
        self.check(offset, len(buf))
        buf[:] = self.data[offset:offset + len(buf)]


class SliceDevice(BlockDevice):
    """A window of another device (a partition)."""

    def __init__(self, parent, offset, size, name=None):
        self.parent, self.offset, self.size = parent, offset, size
        self.name = name or "%s@%d" % (parent.name, offset)

    def readinto(self, offset, buf):
        self.check(offset, len(buf))
        self.parent.readinto(self.offset + offset, buf)
