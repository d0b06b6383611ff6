"""EFI_BLOCK_IO_PROTOCOL: enumerate block devices and read whole blocks into buffers."""

import _uefi

from uefi import core, guid, mem


class BlockIo:
    """One BlockIo instance (a whole disk or a partition the firmware exposes)."""

    def __init__(self, handle):
        self.handle = handle
        self.iface = core.handle_protocol(handle, guid.BLOCK_IO_PROTOCOL)
        media = mem.u64(self.iface + 8)
        self.media_id = mem.u32(media)
        flags = mem.read(media + 4, 4)
        self.removable, self.present, self.logical_partition, self.read_only = (f != 0 for f in flags)
        self.block_size = mem.u32(media + 12)
        self.io_align = mem.u32(media + 16)
        self.last_block = mem.u64(media + 24)
        self._read_blocks = mem.u64(self.iface + 24)

    @property
    def size(self):
        """Device size in bytes."""
        return (self.last_block + 1) * self.block_size

    def read_blocks(self, lba, count):
        """`count` blocks from `lba` as bytes."""
        buf = bytearray(count * self.block_size)
        self.readinto(lba, buf)
        return bytes(buf)

    def readinto(self, lba, buf):
        """Fill `buf` (a multiple of block_size long) from `lba`."""
        if len(buf) % self.block_size:
            raise ValueError("buffer of %d bytes is not a multiple of the %d-byte block" % (len(buf), self.block_size))
        status = _uefi.call(self._read_blocks, self.iface, self.media_id, lba, len(buf), buf)
        core.check("ReadBlocks(lba=%d, %d bytes)" % (lba, len(buf)), status)

def block_devices(partitions=True):
    """BlockIo of every handle that has media; whole disks only when partitions is False."""
    core.connect_all()
    out = []
    for h in core.locate_handles(guid.BLOCK_IO_PROTOCOL):
        dev = BlockIo(h)
        if dev.present and (partitions or not dev.logical_partition):
            out.append(dev)
    return out



class BlockIoDevice:
    """A BlockIo as a diskfs block device: aligned requests go straight to ReadBlocks in one call; small
    unaligned ones (superblocks, inodes, directory blocks) through a bounded 64 KiB-chunk cache."""

    CHUNK = 64 * 1024
    CACHE = 64

    def __init__(self, bio, name=None):
        self.bio = bio
        self.size = bio.size
        self.name = name or "blockio@%x" % bio.handle
        self.cache = {}

    def read(self, offset, length):
        buf = bytearray(length)
        self.readinto(offset, buf)
        return bytes(buf)

    def readinto(self, offset, buf):
        from diskfs.errors import Corrupt

        n = len(buf)
        if offset < 0 or offset + n > self.size:
            raise Corrupt("%s: read of %d bytes at %d is outside the device" % (self.name, n, offset))
        bs = self.bio.block_size
        mv = memoryview(buf)
        pos = 0
        if offset % bs == 0 and n >= self.CHUNK:  # a large run: whole blocks straight into the caller's buffer
            pos = n - n % bs
            self.bio.readinto(offset // bs, mv[:pos])
        while pos < n:
            chunk_no, within = divmod(offset + pos, self.CHUNK)
            chunk = self._chunk(chunk_no)
            take = min(n - pos, len(chunk) - within)
            mv[pos:pos + take] = chunk[within:within + take]
            pos += take

    def _chunk(self, number):
        data = self.cache.get(number)
        if data is None:
            start = number * self.CHUNK
            length = min(self.CHUNK, self.size - start)
            data = bytearray(length)
            self.bio.readinto(start // self.bio.block_size, data)
            if len(self.cache) >= self.CACHE:
                self.cache.pop(next(iter(self.cache)))
            self.cache[number] = data
        return data
