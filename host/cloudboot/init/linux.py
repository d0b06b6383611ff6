"""The few Linux system calls init needs that Python's os module lacks, through ctypes and libc's syscall().

Syscall numbers are per arch: x86_64 has its own table; aarch64, riscv64 and loongarch64 share the
generic one (include/uapi/asm-generic/unistd.h)."""

from __future__ import annotations

import ctypes
import os

import arches

#: x86_64's own numbers, and the generic table every other arch we boot uses.
X86_64_SYSCALLS = {"finit_module": 313, "kexec_load": 246, "kexec_file_load": 320, "reboot": 169}
GENERIC_SYSCALLS = {"finit_module": 273, "kexec_load": 104, "kexec_file_load": 294, "reboot": 142}

MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
KEXEC_FILE_NO_INITRAMFS = 0x4
#: kexec_load flags: the image's arch in bits 16-31 (include/uapi/linux/kexec.h; the ELF machine number).
KEXEC_ARCH_AARCH64 = arches.get("aarch64").elf_machine << 16
KEXEC_ARCH_LOONGARCH = arches.get("loongarch64").elf_machine << 16
KEXEC_ARCH_RISCV = arches.get("riscv64").elf_machine << 16
KEXEC_ARCH_X86_64 = arches.get("x86_64").elf_machine << 16
LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2 = 0xFEE1DEAD, 672274793
LINUX_REBOOT_CMD_KEXEC = 0x45584543
LINUX_REBOOT_CMD_POWER_OFF = 0x4321FEDC
LINUX_REBOOT_CMD_RESTART = 0x01234567

_libc: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    """The C library the interpreter runs on (loaded once, errno kept)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def syscall_number(name: str, machine: str | None = None) -> int:
    """The number of syscall `name` on `machine` (default: this one); OSError for an arch we do not know."""
    machine = machine or os.uname().machine
    try:
        arch = arches.get(machine)
    except arches.ArchError as exc:
        raise OSError(f"no syscall table for machine {machine!r}: {exc}") from None
    return (X86_64_SYSCALLS if arch.name == "x86_64" else GENERIC_SYSCALLS)[name]


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def syscall(name: str, *args: int | bytes | None) -> int:
    """Call syscall `name`; ints go as C longs, bytes as pointers; OSError(errno) on failure."""
    conv = []
    for a in args:
        if isinstance(a, bytes):
            conv.append(ctypes.c_char_p(a))
        elif a is None:
            conv.append(ctypes.c_void_p(None))
        else:
            conv.append(ctypes.c_long(a))
    fn = libc().syscall
    fn.restype = ctypes.c_long
    return _check(fn(ctypes.c_long(syscall_number(name)), *conv), name)


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str | None = None) -> None:
    """mount(2); OSError with errno on failure."""
    fn = libc().mount
    fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    fn.restype = ctypes.c_int
    _check(fn(source.encode(), target.encode(), fstype.encode(), flags, data.encode() if data else None),
           f"mount {fstype} on {target}")


def umount(target: str) -> None:
    """umount(2); OSError with errno on failure."""
    fn = libc().umount
    fn.argtypes = [ctypes.c_char_p]
    fn.restype = ctypes.c_int
    _check(fn(target.encode()), f"umount {target}")


def finit_module(fd: int, params: str = "", flags: int = 0) -> None:
    """Load the kernel module open on `fd` (OSError EEXIST when it is already loaded)."""
    syscall("finit_module", fd, params.encode(), flags)


def kexec_file_load(kernel_fd: int, initrd_fd: int | None, cmdline: str) -> None:
    """Stage a kernel for reboot(LINUX_REBOOT_CMD_KEXEC). The command line length counts its NUL."""
    raw = cmdline.encode() + b"\0"
    flags = 0 if initrd_fd is not None else KEXEC_FILE_NO_INITRAMFS
    syscall("kexec_file_load", kernel_fd, -1 if initrd_fd is None else initrd_fd, len(raw), raw, flags)


class KexecSegment(ctypes.Structure):
    """struct kexec_segment: user buffer and size, physical destination and its (page multiple) size."""

    _fields_ = [("buf", ctypes.c_void_p), ("bufsz", ctypes.c_size_t),
                ("mem", ctypes.c_void_p), ("memsz", ctypes.c_size_t)]


def kexec_load(entry: int, segments: list[tuple[bytes | memoryview, int, int]], flags: int) -> None:
    """Stage an image of (data, physical address, memory size) segments entered at `entry` (physical); `data` is
    bytes or a writable buffer (a file mapped copy-on-write). The buffers are passed in place (no copy); the
    kernel copies them during the call."""
    array = (KexecSegment * len(segments))()
    keep = []
    for i, (data, mem, memsz) in enumerate(segments):
        if len(data) > memsz:
            raise OSError(22, f"kexec_load: segment {i} has {len(data)} bytes for {memsz} bytes of memory")
        if isinstance(data, bytes):
            buf = ctypes.c_char_p(data)  # points at the bytes object's own storage
            addr = ctypes.cast(buf, ctypes.c_void_p).value
        else:
            buf = (ctypes.c_char * len(data)).from_buffer(data)
            addr = ctypes.addressof(buf)
        keep.append(buf)
        array[i] = KexecSegment(addr, len(data), mem, memsz)
    fn = libc().syscall
    fn.restype = ctypes.c_long
    _check(fn(ctypes.c_long(syscall_number("kexec_load")), ctypes.c_ulong(entry), ctypes.c_ulong(len(segments)),
              ctypes.byref(array), ctypes.c_ulong(flags)), "kexec_load")
    del keep


def reboot(cmd: int) -> None:
    """reboot(2) with the magic numbers; returns only on failure (as OSError)."""
    syscall("reboot", LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, cmd, None)


def fresh_random(n: int) -> bytes | None:
    """`n` bytes from the kernel's RNG once it is seeded, else None, never waiting: os.urandom would block until
    the seeding (2.5 s into an amd64 boot under TCG, which has no hardware RNG). As the kernel's own
    kexec_file_load, which passes a seed only once rng_is_initialized()."""
    try:
        return os.getrandom(n, os.GRND_NONBLOCK)
    except BlockingIOError:
        return None
