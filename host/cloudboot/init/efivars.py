"""UEFI boot entries through Linux's efivarfs: EFI_LOAD_OPTION and device-path bytes, BootOrder edits, and
the variable files themselves (REFERENCE.md §5.2 steps 3-5, §9.3).

A variable is the file `<efivarfs>/<Name>-<vendor guid>`: 4 bytes of attributes (little-endian) then the
data. Writing it sets the whole variable in one SetVariable call, so every write here is a single write()
of attributes + data. efivarfs marks variables the kernel does not know as immutable (FS_IMMUTABLE_FL), so
that flag is cleared before a write or a delete. Used by the init's reboot sink and by `cloud-boot reset`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

EFIVARS = "/sys/firmware/efi/efivars"
GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"  # EFI_GLOBAL_VARIABLE: Boot####, BootOrder, BootNext
CLOUDBOOT = "c10ddb07-83c5-4d3e-9b76-1f4c0e7a3b8e"  # the original's vendor GUID (CloudBootCmdline, ...)
NV_BS_RT = 0x7  # NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS
LOAD_OPTION_ACTIVE = 0x1
#: Every entry we write is described "cloud-boot <target>"; reset finds ours by this prefix.
DESCRIPTION_PREFIX = "cloud-boot "
#: Variables of the Path B loader that reset removes too (REFERENCE §1.3).
LOADER_VARIABLES = ("CloudBootCmdline", "CloudBootTarget")

FS_IOC_GETFLAGS, FS_IOC_SETFLAGS = 0x80086601, 0x40086602  # _IOR/_IOW('f', 1|2, long) on 64-bit
FS_IMMUTABLE_FL = 0x10

END = b"\x7f\xff\x04\x00"  # END_ENTIRE_DEVICE_PATH
MEDIA, MEDIA_HARDDRIVE, MEDIA_FILEPATH = 0x04, 0x01, 0x04


class EfiVarError(OSError):
    """A variable could not be read, written or removed; the message names it and why."""


# ---- device paths and load options (pure bytes) ----------------------------------------------------------

def ucs2z(text: str) -> bytes:
    """UTF-16LE with a terminating NUL, as UEFI strings are stored."""
    return text.encode("utf-16-le") + b"\0\0"


def file_path_node(path: str) -> bytes:
    r"""MEDIA/FILEPATH node for a path on the volume (`\EFI\Linux\x.efi`)."""
    name = ucs2z(path)
    return struct.pack("<BBH", MEDIA, MEDIA_FILEPATH, 4 + len(name)) + name


def hard_drive_node(number: int, start_lba: int, size_lba: int, part_guid: str) -> bytes:
    """MEDIA/HARDDRIVE node `HD(number,GPT,guid,start,size)`: partition slot (1-based), first LBA and length
    in the disk's logical blocks, the GPT partition GUID as signature (MBR type 2 = GPT, signature type 2 =
    GUID)."""
    import uuid  # here, not at the top: Path C only, and 0.2 s of every boot under riscv64 TCG

    return struct.pack("<BBHIQQ16sBB", MEDIA, MEDIA_HARDDRIVE, 42, number, start_lba, size_lba,
                       uuid.UUID(part_guid).bytes_le, 0x02, 0x02)


def load_option(description: str, device_path: bytes, optional: bytes = b"",
                attributes: int = LOAD_OPTION_ACTIVE) -> bytes:
    """EFI_LOAD_OPTION: attributes, FilePathListLength, description (UCS-2, NUL), device path + END node,
    optional data."""
    path = device_path + END
    return struct.pack("<IH", attributes, len(path)) + ucs2z(description) + path + optional


def boot_entry(target: str, kernel_path: str, initrd_path: str, cmdline: str,
               partition: tuple[int, int, int, str] | None = None) -> bytes:
    r"""The Boot#### payload for a staged target: description `cloud-boot <target>`, device path
    `HD(...)/File(kernel_path)` (or the original's short form `File(kernel_path)` when `partition` is None),
    optional data = UCS-2 `initrd=<initrd_path> <cmdline>` + NUL (left out when empty).

    `partition` is (GPT slot, first LBA, LBAs, partition GUID)."""
    dp = (hard_drive_node(*partition) if partition else b"") + file_path_node(kernel_path)
    args = " ".join(s for s in (f"initrd={initrd_path}" if initrd_path else "", cmdline) if s)
    return load_option(DESCRIPTION_PREFIX + target, dp, ucs2z(args) if args else b"")


def _ucs2_until_nul(data: bytes, at: int) -> tuple[str, int]:
    end = at
    while end + 1 < len(data) and data[end:end + 2] != b"\0\0":
        end += 2
    if end + 1 >= len(data):
        raise ValueError("description has no NUL terminator")
    return data[at:end].decode("utf-16-le", "replace"), end + 2


def parse_load_option(data: bytes) -> dict:
    """attributes, description, device path nodes [(type, subtype, bytes)], optional data (bytes) of an
    EFI_LOAD_OPTION; ValueError naming what is malformed."""
    if len(data) < 6:
        raise ValueError(f"load option of {len(data)} bytes is shorter than its 6-byte header")
    attributes, dp_len = struct.unpack_from("<IH", data, 0)
    description, at = _ucs2_until_nul(data, 6)
    dp = data[at:at + dp_len]
    if len(dp) != dp_len:
        raise ValueError(f"device path of {dp_len} bytes runs past the end ({len(data)} bytes)")
    nodes, pos = [], 0
    while pos < len(dp):
        if pos + 4 > len(dp):
            raise ValueError(f"device path node header at {pos} is cut off")
        kind, sub, length = struct.unpack_from("<BBH", dp, pos)
        if length < 4 or pos + length > len(dp):
            raise ValueError(f"device path node at {pos} has bad length {length}")
        nodes.append((kind, sub, dp[pos:pos + length]))
        pos += length
        if (kind, sub) == (0x7F, 0xFF):
            break
    if not nodes or nodes[-1][:2] != (0x7F, 0xFF):
        raise ValueError("device path does not end with an END node")
    return {"attributes": attributes, "description": description, "nodes": nodes, "optional": data[at + dp_len:]}


def describe_load_option(data: bytes) -> str:
    """A one-line rendering like efibootmgr's: `description  HD(...)/File(...) args`."""
    import uuid

    opt = parse_load_option(data)
    parts = []
    for kind, sub, raw in opt["nodes"][:-1]:
        if (kind, sub) == (MEDIA, MEDIA_HARDDRIVE) and len(raw) >= 42:
            num, start, size, sig = struct.unpack_from("<IQQ16s", raw, 4)
            parts.append(f"HD({num},GPT,{uuid.UUID(bytes_le=sig)},{start:#x},{size:#x})")
        elif (kind, sub) == (MEDIA, MEDIA_FILEPATH):
            parts.append(f"File({raw[4:].decode('utf-16-le', 'replace').rstrip(chr(0))})")
        else:
            parts.append(f"Node({kind:#x},{sub:#x})")
    args = opt["optional"].decode("utf-16-le", "replace").rstrip("\0") if len(opt["optional"]) % 2 == 0 else ""
    return f"{opt['description']}\t{'/'.join(parts)}" + (f" {args}" if args else "")


# ---- BootOrder ---------------------------------------------------------------------------------------------

def boot_order(data: bytes | None) -> list[int]:
    """BootOrder's data (without the attribute header) as a list of option numbers (missing = empty)."""
    if not data:
        return []
    if len(data) % 2:
        raise ValueError(f"BootOrder has an odd length ({len(data)} bytes)")
    return list(struct.unpack(f"<{len(data) // 2}H", data))


def pack_boot_order(order: list[int]) -> bytes:
    return struct.pack(f"<{len(order)}H", *order)


def prepend(order: list[int], num: int) -> list[int]:
    """`num` first, every other entry after it in its old order (duplicates of `num` dropped)."""
    return [num] + [n for n in order if n != num]


def without(order: list[int], nums: set[int]) -> list[int]:
    """The order with `nums` removed (only their slots: every other entry stays, in order)."""
    return [n for n in order if n not in nums]


def order_text(order: list[int]) -> str:
    """`0001,0000,0002`: a boot order as efibootmgr prints it."""
    return ",".join(f"{n:04X}" for n in order)


def boot_name(num: int) -> str:
    return f"Boot{num:04X}"


# ---- efivarfs ----------------------------------------------------------------------------------------------

class Efivarfs:
    """The variables of a mounted efivarfs (or of a directory laid out like one, in tests)."""

    def __init__(self, root: str = EFIVARS) -> None:
        self.root = root

    def path(self, name: str, guid: str) -> str:
        return os.path.join(self.root, f"{name}-{guid}")

    def names(self, guid: str = GLOBAL) -> list[str]:
        """Variable names of a vendor, sorted."""
        suffix = "-" + guid
        try:
            entries = os.listdir(self.root)
        except OSError as exc:
            raise EfiVarError(exc.errno, f"cannot list EFI variables in {self.root}: {exc.strerror}") from None
        return sorted(e[: -len(suffix)] for e in entries if e.lower().endswith(suffix))

    def read(self, name: str, guid: str = GLOBAL) -> tuple[int, bytes] | None:
        """(attributes, data) of a variable, or None when it does not exist."""
        try:
            with open(self.path(name, guid), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise EfiVarError(exc.errno, f"cannot read EFI variable {name}: {exc.strerror}") from None
        if len(raw) < 4:
            return None  # efivarfs shows a variable deleted behind its back as an empty file
        return struct.unpack_from("<I", raw)[0], raw[4:]

    def _mutable(self, path: str) -> None:
        """Clear FS_IMMUTABLE_FL (efivarfs sets it on variables it does not know); filesystems without
        flags (tests on tmpfs) are fine."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return
        try:
            buf = bytearray(4)  # the request numbers say long; the kernel copies an int
            fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf)
            flags = struct.unpack("i", buf)[0]
            if flags & FS_IMMUTABLE_FL:
                fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", flags & ~FS_IMMUTABLE_FL))
        except OSError as exc:
            if exc.errno not in (errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
        finally:
            os.close(fd)

    def write(self, name: str, data: bytes, guid: str = GLOBAL, attributes: int = NV_BS_RT) -> None:
        """Set a variable: one write() of attributes + data; EfiVarError on any failure (short writes too)."""
        path = self.path(name, guid)
        blob = struct.pack("<I", attributes) + data
        try:
            self._mutable(path)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                n = os.write(fd, blob)
            finally:
                os.close(fd)
        except OSError as exc:
            raise EfiVarError(exc.errno, f"cannot write EFI variable {name} ({len(data)} bytes) in "
                                         f"{self.root}: {exc.strerror}") from None
        if n != len(blob):
            raise EfiVarError(errno.EIO, f"short write of EFI variable {name}: {n} of {len(blob)} bytes")

    def delete(self, name: str, guid: str = GLOBAL) -> bool:
        """Remove a variable; False if it did not exist."""
        path = self.path(name, guid)
        try:
            self._mutable(path)
            os.unlink(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise EfiVarError(exc.errno, f"cannot delete EFI variable {name}: {exc.strerror}") from None
        return True

    # -- boot entries --

    def boot_order(self) -> list[int]:
        got = self.read("BootOrder")
        try:
            return boot_order(got[1] if got else None)
        except ValueError as exc:
            raise EfiVarError(errno.EINVAL, f"BootOrder: {exc}") from None

    def set_boot_order(self, order: list[int]) -> None:
        self.write("BootOrder", pack_boot_order(order))

    def boot_entries(self) -> dict[int, bytes]:
        """{number: load option bytes} of every Boot#### variable."""
        out = {}
        for name in self.names(GLOBAL):
            if len(name) == 8 and name.startswith("Boot") and all(c in "0123456789ABCDEFabcdef" for c in name[4:]):
                got = self.read(name)
                if got is not None:
                    out[int(name[4:], 16)] = got[1]
        return out

    def ours(self) -> list[int]:
        """Numbers of the Boot#### entries cloud-boot wrote (description `cloud-boot ...`)."""
        nums = []
        for num, data in sorted(self.boot_entries().items()):
            try:
                if parse_load_option(data)["description"].startswith(DESCRIPTION_PREFIX):
                    nums.append(num)
            except ValueError:
                continue
        return nums


def mount(root: str = EFIVARS) -> None:
    """Mount efivarfs on `root` unless it is there already (a directory with variables in it)."""
    from cloudboot.init import linux

    try:
        if os.listdir(root):
            return
    except FileNotFoundError:
        raise EfiVarError(errno.ENOENT, f"{root} does not exist: this system was not booted through UEFI") from None
    try:
        linux.mount("efivarfs", root, "efivarfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise EfiVarError(exc.errno, f"cannot mount efivarfs on {root}: {exc.strerror}") from None


def reset_script() -> str:
    """The POSIX sh version of `reset` (shipped as reset-cloud-boot.sh next to this module)."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "reset-cloud-boot.sh")) as f:
        return f.read()


def reset(store: Efivarfs, numbers: list[int] | None = None) -> list[str]:
    """Undo Path C: delete our Boot#### entries (those described `cloud-boot ...`, or exactly `numbers`),
    their BootOrder slots only (every other entry stays, in order), BootNext if it points at one of them,
    and the loader's CloudBootCmdline/CloudBootTarget. Returns what was done, one line each."""
    done = []
    nums = set(store.ours() if numbers is None else numbers)
    for num in sorted(nums):
        if store.delete(boot_name(num)):
            done.append(f"deleted {boot_name(num)}")
    order = store.boot_order()
    kept = without(order, nums)
    if kept != order:
        if kept:
            store.set_boot_order(kept)
        else:
            store.delete("BootOrder")  # our entry was the only one: an empty BootOrder is no BootOrder
        done.append(f"BootOrder {order_text(order)} -> {order_text(kept) or '(empty)'}")
    nxt = store.read("BootNext")
    if nxt is not None and len(nxt[1]) == 2 and struct.unpack("<H", nxt[1])[0] in nums:
        store.delete("BootNext")
        done.append("deleted BootNext")
    for name in LOADER_VARIABLES:
        if store.delete(name, CLOUDBOOT):
            done.append(f"deleted {name}")
    return done


MAX_CMDLINE = 4095  # the firmware's limit for CloudBootCmdline


def cmdline_variable(root: str = EFIVARS) -> tuple[str | None, str]:
    """(CloudBootCmdline's text, "") or (None, why it is not used): unset, unreadable, not printable ASCII, or
    longer than 4095 characters (the firmware's rules: trailing CR/LF/blanks/NUL trimmed). It counts even when
    the kernel's command line came from elsewhere (a UKI's .cmdline)."""
    try:
        got = Efivarfs(root).read("CloudBootCmdline", CLOUDBOOT)
    except EfiVarError as exc:
        return None, str(exc)
    if got is None:
        return None, "unset"
    text = got[1].rstrip(b"\r\n \t\0")
    if len(text) > MAX_CMDLINE:
        return None, f"longer than {MAX_CMDLINE} characters"
    for i, b in enumerate(text):
        if not (0x20 <= b <= 0x7E or b == 0x09):
            return None, f"byte {b:#04x} at offset {i} is not printable ASCII"
    return text.decode("ascii"), ""
