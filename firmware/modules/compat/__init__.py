"""compat: the few things MicroPython and CPython spell differently, behind one name each."""


def zlib_decompress(data):
    """Inflate a zlib stream (CPython's zlib; MicroPython's deflate module)."""
    try:
        import zlib

        return zlib.decompress(data)
    except ImportError:
        import io

        import deflate

        return deflate.DeflateIO(io.BytesIO(data), deflate.ZLIB).read()
