"""Console helpers beyond what the C HAL does: waiting a bounded time for a key."""

import struct
import time

import _uefi

from uefi import core, mem


def read_key():
    """One pending key as (scan_code, unicode_char), or None if no key is waiting."""
    conin = core.conin()
    key = bytearray(4)
    status = _uefi.call(mem.u64(conin + 8), conin, key)
    if status & core.ERROR_BIT:
        return None
    return struct.unpack("<HH", key)


def key_within(ms):
    """True if a key arrives within `ms` milliseconds (the key is consumed)."""
    deadline = time.ticks_add(time.ticks_ms(), ms)
    while time.ticks_diff(deadline, time.ticks_ms()) > 0:
        if read_key() is not None:
            return True
        core.stall(10000)
    return False
