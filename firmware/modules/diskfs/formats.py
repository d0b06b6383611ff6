"""The one registry of what can sit on a block device, walked in order by `diskfs.detect`, `diskfs.open` and
`diskfs.probe.probe`.

Each entry (a `Format`) knows its magic (`match`, on the device's first HEAD bytes, which every entry shares:
one read per device), its label and UUID as blkid prints them (`identify`) and, by its role, what opening it
gives:

  FILESYSTEM  `open(dev, devices, options)` -> a filesystem (fsbase.FsBase): ext2/3/4, XFS, btrfs, ZFS. The
              reader module is imported only then (a probe costs no reader's memory).
  CONTAINER   holds another block device. `open` unlocks it (a passphrase or key in `options`) and
              returns the device inside, and `diskfs.open_filesystem` looks again on that device: LUKS.
  NAMED       recognized and named only (a FAT ESP, swap).

A new format (qcow2) is a Format subclass passed to `register`, before any entry whose magic could also match
its bytes. Secrets (`passphrase`, `key`) and container limits (`luks_limits`) reach only the entries that name
them in `takes`.
"""

import binascii
import struct

from diskfs.errors import Unsupported

FILESYSTEM, CONTAINER, NAMED = "filesystem", "container", "named"
SECRETS = ("passphrase", "key", "luks_limits")  # options only the formats that `take` them see
HEAD = 0x11000  # the bytes every match() sees: btrfs's superblock (at 64 KiB) is the furthest in


def uuid_text(raw) -> str:
    """16 bytes -> the usual 8-4-4-4-12 text."""
    h = binascii.hexlify(bytes(raw)).decode()
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:32])


def clean(raw) -> str:
    """On-disk text up to its first NUL, stripped; '' when it is not UTF-8."""
    text = bytes(raw).split(b"\0")[0]
    try:
        return text.decode().strip()
    except UnicodeError:
        return ""


class Format:
    """One entry of the registry; subclasses set the attributes and override what their role needs."""

    name = ""  #: the type probe() reports (blkid's name)
    title = ""  #: how messages name it ("ext2/3/4")
    role = NAMED
    takes = ()  #: which of SECRETS its open() uses

    def match(self, head, dev) -> bool:
        """Does `head` (the first min(HEAD, dev.size) bytes of `dev`) carry this format's magic?"""
        raise NotImplementedError

    def identify(self, head, dev):
        """(type, label, uuid) of a matching device, or None when a closer look finds it is not one after all
        (the next entry is tried)."""
        return self.name, "", ""

    def open(self, dev, devices, options):
        """A FILESYSTEM's reader on `dev`, or a CONTAINER's inner block device."""
        raise Unsupported("%s: %s cannot be opened by diskfs" % (dev.name, self.title or self.name), self.name)


class Ext(Format):
    name, title, role = "ext4", "ext2/3/4", FILESYSTEM  # one reader for the family (probe.ext_flavor tells)

    def match(self, head, dev):
        return len(head) >= 2048 and head[1080:1082] == b"\x53\xef"

    def identify(self, head, dev):
        journal_dev = struct.unpack_from("<I", head, 1024 + 96)[0] & 0x8  # incompat journal_dev
        return "jbd" if journal_dev else "ext4", clean(head[1144:1160]), uuid_text(head[1128:1144])

    def open(self, dev, devices, options):
        from diskfs.ext4 import Ext4

        return Ext4(dev, **options)


class Xfs(Format):
    name, title, role = "xfs", "XFS", FILESYSTEM

    def match(self, head, dev):
        return len(head) >= 512 and head[:4] == b"XFSB"

    def identify(self, head, dev):
        return self.name, clean(head[108:120]), uuid_text(head[32:48])

    def open(self, dev, devices, options):
        from diskfs.xfs import Xfs

        return Xfs(dev, **options)


class Btrfs(Format):
    name, title, role = "btrfs", "btrfs", FILESYSTEM
    SUPER = 0x10000

    def match(self, head, dev):
        return len(head) >= self.SUPER + 4096 and head[self.SUPER + 0x40:self.SUPER + 0x48] == b"_BHRfS_M"

    def identify(self, head, dev):
        sb = self.SUPER
        return self.name, clean(head[sb + 0x12B:sb + 0x12B + 256]), uuid_text(head[sb + 0x20:sb + 0x30])

    def open(self, dev, devices, options):
        from diskfs.btrfs import Btrfs

        return Btrfs(dev, devices=devices, **options)


class Luks(Format):
    name, title, role = "luks", "LUKS", CONTAINER
    takes = SECRETS

    def match(self, head, dev):
        return len(head) >= 512 and head[:6] == b"LUKS\xba\xbe"

    def identify(self, head, dev):
        if struct.unpack_from(">H", head, 6)[0] == 1:
            return "luks1", "", clean(head[168:208])
        return "luks2", clean(head[24:72]), clean(head[168:208])

    def open(self, dev, devices, options):
        from diskfs.luks import open_device

        return open_device(dev, options)


class Vfat(Format):
    name, title = "vfat", "FAT"

    def _fields(self, head):
        """(volume id, label) bytes of a FAT boot sector, or None."""
        if len(head) < 512 or head[510:512] != b"\x55\xaa" or head[0] not in (0xEB, 0xE9):
            return None
        if head[82:87] == b"FAT32":
            return head[67:71], head[71:82]
        if head[54:57] == b"FAT":
            return head[39:43], head[43:54]
        return None

    def match(self, head, dev):
        return self._fields(head) is not None

    def identify(self, head, dev):
        vid, label = self._fields(head)
        serial = struct.unpack("<I", vid)[0]
        return self.name, clean(label).replace("NO NAME", ""), "%04X-%04X" % (serial >> 16, serial & 0xFFFF)


class Swap(Format):
    name, title = "swap", "swap"
    PAGES = (4096, 8192, 16384, 65536)

    def match(self, head, dev):
        for page in self.PAGES:
            if len(head) >= page and head[page - 10:page] in (b"SWAPSPACE2", b"SWAP-SPACE"):
                return True
        return False

    def identify(self, head, dev):
        return self.name, clean(head[1052:1068]), uuid_text(head[1036:1052])


class ZfsMember(Format):
    name, title, role = "zfs_member", "ZFS", FILESYSTEM
    takes = ("passphrase", "key")  # native encryption

    def match(self, head, dev):
        from diskfs import zfslabel

        return bool(zfslabel.labels(dev))

    def identify(self, head, dev):
        from diskfs import zfslabel

        pool = zfslabel.pool(dev)
        return None if pool is None else (self.name, pool[0], pool[1])

    def open(self, dev, devices, options):
        from diskfs.zfs import Zfs

        return Zfs(dev, devices=devices, **options)


#: In order: the first entry whose magic matches names the device.
FORMATS = [Ext(), Xfs(), Btrfs(), Luks(), Vfat(), Swap(), ZfsMember()]


def register(fmt, before=None):
    """Add a Format; `before` (a name) puts it ahead of that entry, else it goes last."""
    for i, other in enumerate(FORMATS):
        if other.name == before:
            FORMATS.insert(i, fmt)
            return
    FORMATS.append(fmt)


def _head(dev):
    from diskfs.blockdev import read

    return read(dev, 0, min(dev.size, HEAD)) if dev.size else b""


def options_for(fmt, options):
    """`options` without the SECRETS that `fmt` does not take."""
    return dict((k, v) for k, v in options.items() if k not in SECRETS or k in fmt.takes)


def find(dev, role=None):
    """The first entry (of `role`, or of one of the roles in a tuple, when given) whose magic `dev` carries,
    or None."""
    head = _head(dev)
    roles = role if isinstance(role, tuple) else (role,)
    for fmt in FORMATS:
        if head and (role is None or fmt.role in roles) and fmt.match(head, dev):
            return fmt
    return None


def identify(dev):
    """(type, label, uuid) by the first entry that matches and identifies `dev`, or (None, '', '')."""
    head = _head(dev)
    for fmt in FORMATS:
        if head and fmt.match(head, dev):
            found = fmt.identify(head, dev)
            if found is not None:
                return found
    return None, "", ""


def titles(role):
    """'ext2/3/4, XFS or btrfs': the entries of a role, for messages."""
    names = [f.title for f in FORMATS if f.role == role]
    return names[0] if len(names) < 2 else ", ".join(names[:-1]) + " or " + names[-1]
