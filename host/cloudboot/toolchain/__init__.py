"""Toolchain bootstrap: every external part (MicroPython source, zig, QEMU, EDK2) fetched, pinned, cached."""
