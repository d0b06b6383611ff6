"""zstd frames unpacked by libzstd through ctypes: the init's decoder for EFI zboot kernels (our arm64, riscv64 and
loongarch64 kernels) where its CPython has no compression.zstd (trixie's 3.13). Under TCG the portable decoder
(compat.zstd) took about 50 s for a 27 MB arm64 Image; libzstd unpacks a real Image at about 60 MB/s there.
The initramfs carries SONAME by name (initramfs.build.CTYPES_LIBRARIES)."""

from __future__ import annotations

import ctypes

SONAME = "libzstd.so.1"
#: ZSTD_getFrameContentSize's "unknown" and "error" (the frame header says nothing, or is not one).
UNKNOWN_SIZE = (1 << 64) - 2


class ZstdError(ValueError):
    """The data is not one complete, valid zstd frame (or unpacks to more than allowed)."""


class _Buffer(ctypes.Structure):
    """ZSTD_inBuffer and ZSTD_outBuffer alike: {pointer, size, position}."""

    _fields_ = [("ptr", ctypes.c_void_p), ("size", ctypes.c_size_t), ("pos", ctypes.c_size_t)]


_lib = None


def library():
    """libzstd with the prototypes used here, or None when it cannot be loaded."""
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL(SONAME)
        except OSError:
            return None
        lib.ZSTD_createDCtx.restype = ctypes.c_void_p
        lib.ZSTD_freeDCtx.argtypes = [ctypes.c_void_p]
        lib.ZSTD_getFrameContentSize.restype = ctypes.c_ulonglong
        lib.ZSTD_getFrameContentSize.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        lib.ZSTD_decompressStream.restype = ctypes.c_size_t
        lib.ZSTD_decompressStream.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Buffer), ctypes.POINTER(_Buffer)]
        lib.ZSTD_isError.argtypes = [ctypes.c_size_t]
        lib.ZSTD_getErrorName.restype = ctypes.c_char_p
        lib.ZSTD_getErrorName.argtypes = [ctypes.c_size_t]
        _lib = lib
    return _lib


def decompress(data: bytes, max_output: int) -> bytearray:
    """The one zstd frame `data` holds, unpacked (ZstdError: not a frame, corrupt, truncated, followed by other
    bytes, or more than `max_output` bytes). The output buffer starts at the frame's content size when the header
    gives it (the kernel's zboot payloads come from a pipe, so it may not) and doubles as needed."""
    lib = library()
    if lib is None:
        raise ZstdError(f"{SONAME} cannot be loaded")
    src = ctypes.c_char_p(data)
    size = lib.ZSTD_getFrameContentSize(src, len(data))
    if size < UNKNOWN_SIZE and size > max_output:
        raise ZstdError(f"the frame says it holds {size} bytes, more than {max_output}")
    out = bytearray(size if size < UNKNOWN_SIZE else min(max(4 * len(data), 1 << 20), max_output))
    inbuf = _Buffer(ctypes.cast(src, ctypes.c_void_p).value, len(data), 0)
    produced = 0
    dctx = lib.ZSTD_createDCtx()
    if not dctx:
        raise MemoryError("ZSTD_createDCtx")
    try:
        while True:
            if produced == len(out):
                if len(out) >= max_output:
                    raise ZstdError(f"unpacks to more than {max_output} bytes")
                grown = bytearray(min(2 * len(out) or 1 << 20, max_output))
                grown[:produced] = out
                out = grown
            window = (ctypes.c_char * (len(out) - produced)).from_buffer(out, produced)
            outbuf = _Buffer(ctypes.addressof(window), len(window), 0)
            ret = lib.ZSTD_decompressStream(dctx, ctypes.byref(outbuf), ctypes.byref(inbuf))
            del window  # `out` may have to grow: no export of it may be left
            produced += outbuf.pos
            if lib.ZSTD_isError(ret):
                raise ZstdError(lib.ZSTD_getErrorName(ret).decode(errors="replace"))
            if ret == 0:  # the frame is complete and flushed
                break
            if inbuf.pos == inbuf.size and outbuf.pos < outbuf.size:
                raise ZstdError(f"truncated: the frame ends after {len(data)} bytes")
    finally:
        lib.ZSTD_freeDCtx(dctx)
    if inbuf.pos != len(data):
        raise ZstdError(f"{len(data) - inbuf.pos} bytes follow the frame")
    del out[produced:]
    return out
