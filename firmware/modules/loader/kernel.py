"""Kernel images as distros ship them: EFI-stub PE (and EFI zboot, a PE that unpacks itself) start as they
are; gzip- and zstd-compressed images are unpacked into fresh pages first (zstd by compat.zstd, which hands
each frame to libzstd's decoder in the firmware's _zstd module)."""

import io
import struct

import deflate

from uefi import core, mem

GZIP, ZSTD = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"


class KernelFormatError(OSError):
    """The file is not a kernel this firmware can start; the message says what it is."""


def unpack(addr, size, owned=True):
    """(address, size) of a startable image, given the file's bytes at addr: as it is for a PE, else unpacked
    into fresh pages, the input's pages freed when `owned` (pages of ours, not part of a loaded image)."""
    head = mem.read(addr, 4)
    if head[:2] == b"MZ":
        return addr, size
    if head[:2] == GZIP:
        return _gunzip(addr, size, owned)
    if head == ZSTD:
        return _unzstd(addr, size, owned)
    raise KernelFormatError("not an EFI-stub kernel (starts with %r, no MZ header)" % head)


MAX_KERNEL = 512 << 20  # an unpacked kernel larger than this is not a kernel


def _unzstd(addr, size, owned):
    from compat import zstd

    try:
        # One frame: the kernel build appends the unpacked size after it.
        out = zstd.decompress_bytearray(mem.view(addr, size), max_output=MAX_KERNEL, single=True)
    except zstd.ZstdError as exc:
        raise KernelFormatError("zstd kernel: %s" % exc) from None
    if out[:2] != b"MZ":
        raise KernelFormatError("zstd kernel unpacked to %d bytes that are not an EFI-stub image" % len(out))
    pages = max(1, (len(out) + 4095) // 4096)
    dest = core.allocate_pages(pages)
    mem.view(dest, len(out))[:] = out
    print("cloud-boot: unpacked zstd kernel: %d -> %d bytes" % (size, len(out)))
    if owned:
        core.free_pages(addr, max(1, (size + 4095) // 4096))
    return dest, len(out)


def _gunzip(addr, size, owned):
    out_size = struct.unpack("<I", mem.read(addr + size - 4, 4))[0]  # ISIZE: the unpacked size (< 4 GiB)
    pages = max(1, (out_size + 4095) // 4096)
    dest = core.allocate_pages(pages)
    view = memoryview(mem.view(dest, out_size))
    stream = deflate.DeflateIO(io.BytesIO(mem.view(addr, size)), deflate.GZIP)
    done = 0
    while done < out_size:
        n = stream.readinto(view[done:min(out_size, done + (1 << 20))])
        if not n:
            break
        done += n
    if done != out_size or mem.read(dest, 2) != b"MZ":
        core.free_pages(dest, pages)
        raise KernelFormatError("gzip kernel unpacked to %d of %d bytes, or not an EFI-stub image" % (done, out_size))
    print("cloud-boot: gunzipped kernel: %d -> %d bytes" % (size, out_size))
    if owned:
        core.free_pages(addr, max(1, (size + 4095) // 4096))
    return dest, out_size
