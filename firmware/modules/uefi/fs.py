"""EFI_SIMPLE_FILE_SYSTEM_PROTOCOL (FAT volumes the firmware mounts): list, stat and read files."""

import struct

import _uefi

from uefi import core, guid, mem

SIMPLE_FILE_SYSTEM = guid.guid_bytes("964e5b22-6459-11d2-8e39-00a0c969723b")
FILE_INFO = guid.guid_bytes("09576e92-6d3f-11d2-8e39-00a0c969723b")
MODE_READ = 1
ATTR_DIRECTORY = 0x10


def _ptr(buf):
    return struct.unpack("<Q", buf)[0]


class File:
    """An open EFI_FILE_PROTOCOL handle (use as a context manager; closed on exit)."""

    def __init__(self, addr, path):
        self.addr, self.path = addr, path

    def _fn(self, offset):
        return mem.u64(self.addr + offset)

    def info(self):
        """(file size, attribute, name) from EFI_FILE_INFO."""
        size = bytearray(8)
        buf = bytearray(512)
        struct.pack_into("<Q", size, 0, len(buf))
        core.check("GetInfo(%s)" % self.path, _uefi.call(self._fn(64), self.addr, FILE_INFO, size, buf))
        file_size, attr = struct.unpack_from("<Q", buf, 8)[0], struct.unpack_from("<Q", buf, 72)[0]
        return file_size, attr, mem.ucs2_decode(bytes(buf[80:]))

    def readinto(self, buf):
        """Read up to len(buf) bytes into buf; returns the count (0 at end of file)."""
        size = bytearray(8)
        struct.pack_into("<Q", size, 0, len(buf))
        core.check("Read(%s)" % self.path, _uefi.call(self._fn(32), self.addr, size, buf))
        return _ptr(size)

    def entries(self):
        """Names in a directory (not '.' and '..'), with a trailing '/' for subdirectories."""
        out = []
        buf = bytearray(1024)
        while True:
            n = self.readinto(buf)
            if not n:
                return out
            attr = struct.unpack_from("<Q", buf, 72)[0]
            name = mem.ucs2_decode(bytes(buf[80:n]))
            if name not in (".", ".."):
                out.append(name + "/" if attr & ATTR_DIRECTORY else name)

    def close(self):
        if self.addr:
            _uefi.call(self._fn(16), self.addr)
            self.addr = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Volume:
    """A FAT volume the firmware exposes (its handle is also the DeviceHandle for images loaded from it)."""

    def __init__(self, handle):
        self.handle = handle
        sfs = core.handle_protocol(handle, SIMPLE_FILE_SYSTEM)
        root = bytearray(8)
        core.check("OpenVolume", _uefi.call(mem.u64(sfs + 8), sfs, root))
        self.root = File(_ptr(root), "\\")

    def open(self, path):
        """Open `path` ('\\EFI\\Linux\\x.efi' or with '/') read-only; raises EfiError (EFI_NOT_FOUND...)."""
        path = path.replace("/", "\\")
        if not path.startswith("\\"):
            path = "\\" + path
        out = bytearray(8)
        status = _uefi.call(mem.u64(self.root.addr + 8), self.root.addr, out, mem.ucs2(path), MODE_READ, 0)
        core.check("Open(%s)" % path, status)
        return File(_ptr(out), path)

    def exists(self, path):
        try:
            self.open(path).close()
            return True
        except core.EfiError:
            return False

    def listdir(self, path="\\"):
        with self.open(path) as d:
            return d.entries()

    def read_into_pages(self, path):
        """The whole file in freshly allocated pages: (address, size). Large files never touch the GC heap."""
        with self.open(path) as f:
            size = f.info()[0]
            pages = max(1, (size + 4095) // 4096)
            addr = core.allocate_pages(pages)
            view = mem.view(addr, size)
            done = 0
            while done < size:
                n = f.readinto(memoryview(view)[done:])
                if not n:
                    core.free_pages(addr, pages)
                    raise OSError("%s: short read (%d of %d bytes)" % (path, done, size))
                done += n
            return addr, size

    def read(self, path):
        """A small file's bytes."""
        with self.open(path) as f:
            size = f.info()[0]
            buf = bytearray(size)
            n = f.readinto(buf) if size else 0
            return bytes(buf[:n])


def volumes():
    """Every FAT volume, in firmware handle order."""
    core.connect_all()
    return [Volume(h) for h in core.locate_handles(SIMPLE_FILE_SYSTEM)]
