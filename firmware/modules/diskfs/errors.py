"""The one error family of the portable disk core.

Every failure names the device and, where there is one, the on-disk structure and its byte offset (Corrupt),
the feature (Unsupported) or the path (NotFound). Corrupt input never raises anything else: parsers check
bounds before they index and bound every loop over on-disk links.
"""


class FsError(Exception):
    """Base of all diskfs errors."""


DiskfsError = FsError  # the name the loader and older callers use


class Corrupt(FsError):
    """On-disk structures are inconsistent: bad magic, pointer out of range, checksum mismatch, a loop.

    `structure` names what was being read (e.g. "ext4 extent node"), `offset` is its byte offset on the device
    (None when unknown)."""

    def __init__(self, message, structure=None, offset=None):
        super().__init__(message)
        self.structure = structure
        self.offset = offset


class Unsupported(FsError):
    """A valid filesystem using something this reader does not implement; `feature` names it."""

    def __init__(self, message, feature=None):
        super().__init__(message)
        self.feature = feature


class NotFound(FsError):
    """A path (or a whole filesystem) that is not there; also 'not a directory' on the way."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


class Locked(FsError):
    """An encrypted volume that needs a key, or whose key did not open it (a wrong passphrase)."""


class LimitExceeded(FsError):
    """An on-disk value over a limit this reader keeps (a KDF cost, a metadata size) to refuse hostile input
    before any work; `limit` names the limit a caller can raise."""

    def __init__(self, message, limit=None):
        super().__init__(message)
        self.limit = limit


def corrupt(device, structure, offset, detail):
    """A Corrupt error with the standard message: `device: structure at byte N: detail`."""
    if offset is None:
        return Corrupt("%s: %s: %s" % (device, structure, detail), structure, None)
    return Corrupt("%s: %s at byte %d (0x%x): %s" % (device, structure, offset, offset, detail), structure, offset)


def check_incompat(device, fs, bits, table):
    """GRUB's allow-list for incompat feature bits. `table` maps bit -> (name, readable, why): the first set
    bit marked unreadable raises Unsupported("<device>: <fs> incompat 0x<bit> (<name>) unsupported: <why>"),
    then set bits the table does not know raise "<device>: <fs> incompat 0x<bits> unknown to this reader"."""
    known = 0
    for bit in sorted(table):
        known |= bit
        name, readable, why = table[bit]
        if bits & bit and not readable:
            raise Unsupported("%s: %s incompat 0x%x (%s) unsupported: %s" % (device, fs, bit, name, why), name)
    if bits & ~known:
        raise Unsupported("%s: %s incompat 0x%x unknown to this reader" % (device, fs, bits & ~known),
                          "incompat 0x%x" % (bits & ~known))
