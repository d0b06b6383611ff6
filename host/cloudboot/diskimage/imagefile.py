"""One open image file: positional reads and writes, fsync, and for writing the exclusive lock that QEMU
respects (so an image a running QEMU holds is refused, and QEMU refuses an image we are writing).

QEMU's file driver locks single bytes with open-file-description locks (F_OFD_SETLK): byte 100 + n for each
permission n it holds (consistent read, write, write-unchanged, resize, graph-mod) and byte 200 + n for each
permission it does not share, and tests the other side's bytes before it opens. We take a write lock over
bytes 100..299, which conflicts with every byte QEMU (or qemu-img, or another cloud-boot) locks or tests.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct

from cloudboot.errors import CloudBootError
from diskfs.errors import NotFound, Unsupported

LOCK_START, LOCK_LEN = 100, 200  # QEMU's permission bytes (100 + n) and its "not shared" bytes (200 + n)


class ImageInUse(CloudBootError):
    """Another program (a running QEMU, qemu-img, another cloud-boot) has the image open under a lock."""


def lock_exclusive(fd: int, path: str) -> None:
    """The write lock over QEMU's lock bytes on `fd` (an open-file-description lock: it belongs to this open
    file and goes with it); ImageInUse when any other open file holds a lock there."""
    flock = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, LOCK_START, LOCK_LEN, 0)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, flock)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            check_unlocked(path)  # raises with the message
        raise


def check_unlocked(path: str) -> None:
    """ImageInUse when another open file holds a lock on QEMU's lock bytes of `path` (what a writer would meet),
    without taking one."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        flock = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, LOCK_START, LOCK_LEN, 0)
        kind = struct.unpack_from("h", fcntl.fcntl(fd, fcntl.F_OFD_GETLK, flock))[0]
    finally:
        os.close(fd)
    if kind != fcntl.F_UNLCK:
        raise ImageInUse(f"{path}: in use: another program holds a lock on it (a running QEMU, qemu-img or "
                         "another cloud-boot); stop it first")


def check_span(dev, offset: int, length: int) -> None:
    """Unsupported unless [offset, offset + length) lies inside `dev`'s virtual disk: no write ever goes past it."""
    if offset < 0 or length < 0 or offset + length > dev.size:
        raise Unsupported(f"{dev.name}: a write of {length} bytes at byte {offset} would end past the virtual size "
                          f"({dev.size} bytes)", "write past the end")


def check_open_for_writing(dev) -> None:
    if not dev.writable:
        raise Unsupported(f"{dev.name}: opened read-only", "write")


class ImageFile:
    """A file (or block device node) opened for reading, or for writing under the exclusive lock."""

    def __init__(self, path: str, write: bool = False) -> None:
        self.path = self.name = str(path)
        self.writable = write
        try:
            self.fd = os.open(self.path, (os.O_RDWR if write else os.O_RDONLY) | os.O_CLOEXEC)
        except OSError as exc:
            raise NotFound(f"{self.path}: cannot open{' for writing' if write else ''}: {exc.strerror}",
                           self.path) from None
        try:
            st = os.fstat(self.fd)
            if stat.S_ISDIR(st.st_mode):
                raise NotFound(f"{self.path}: is a directory", self.path)
            if write:
                lock_exclusive(self.fd, self.path)
            self.size = st.st_size if stat.S_ISREG(st.st_mode) else os.lseek(self.fd, 0, os.SEEK_END)
        except BaseException:
            os.close(self.fd)
            raise

    def readinto(self, offset: int, buf) -> None:
        """Fill `buf` from `offset`; what lies past the end of the file reads as zeros (as QEMU's file driver
        reads it), so a data cluster cut short by the file's end is zero-padded, not an error."""
        mv = memoryview(buf).cast("B")
        got = 0
        while got < len(mv):
            n = os.preadv(self.fd, [mv[got:]], offset + got)
            if n <= 0:
                mv[got:] = bytes(len(mv) - got)
                return
            got += n

    def read(self, offset: int, length: int) -> bytes:
        buf = bytearray(length)
        self.readinto(offset, buf)
        return bytes(buf)

    def write(self, offset: int, data) -> None:
        mv = memoryview(data).cast("B")
        done = 0
        while done < len(mv):
            done += os.pwrite(self.fd, mv[done:], offset + done)
        self.size = max(self.size, offset + len(mv))

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
