"""Handing over to the target kernel: check the image, unwrap EFI zboot, kexec_file_load (a kernel without it:
kexec_load through our loaders, kexec_arm64, kexec_riscv64, kexec_loongarch or kexec_x86_64; on riscv64 and
x86_64 our loader goes first, see CLASSIC_FIRST), reboot(KEXEC).

riscv64's kexec_file_load reads ELF only (its Image loader came after Linux 6.12), so a RISC-V Image is handed
over wrapped in a one-segment ELF (riscv64_elf): the loader puts the segment in a 2 MiB-aligned hole and
starts it at its first byte, where a RISC-V Image (EFI stub or not) begins with code.

EFI zboot (REFERENCE.md §5.1): `MZ`, `zimg` at 4, payload offset u32 at 8, size u32 at 12, compression
name NUL-padded at 24; gzip is unpacked with zlib, zstd with libzstd (_unzstd), else with the portable
compat.zstd."""

from __future__ import annotations

import errno
import os
import struct
import zlib

from cloudboot.init import linux
from cloudboot.init.errors import InitError, KexecLoadError
from cloudboot.init.log import log

WORKDIR = "/run/cloud-boot"


def describe(head: bytes) -> str:
    """What a file that should be a kernel looks like, for error messages."""
    if head[:2] == b"\x1f\x8b":
        return "a gzip stream"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "a zstd stream"
    if head[:6] == b"070701":
        return "a cpio archive (an initrd?)"
    if head[:4] == b"\x7fELF":
        return "an ELF file (vmlinux, not a bootable image)"
    if not head:
        return "an empty file"
    return f"unknown data starting with {head[:8].hex()}"


def check_kernel(head: bytes, machine: str) -> None:
    """InitError unless `head` (the image's first 1 KiB) is a kernel kexec can load on `machine`."""
    if machine == "x86_64":
        if len(head) >= 0x206 and head[0x202:0x206] == b"HdrS":
            return
        raise InitError(f"not an x86 bzImage (no 'HdrS' at 0x202): {describe(head)}")
    if machine == "aarch64" and head[56:60] == b"ARM\x64":  # an arm64 Image (an EFI stub one starts with MZ too)
        return
    if head[:2] == b"MZ":
        return
    raise InitError(f"not an EFI-stub kernel image for {machine} (no MZ header): {describe(head)}")


def zboot_header(head: bytes) -> tuple[int, int, str] | None:
    """(payload offset, payload size, compression name) of an EFI zboot image's first 56+ bytes, else None."""
    if len(head) < 56 or head[:2] != b"MZ" or head[4:8] != b"zimg":
        return None
    offset, size = struct.unpack_from("<II", head, 8)
    return offset, size, head[24:56].split(b"\0")[0].decode(errors="replace")


def unwrap_zboot(path: str, out_path: str) -> str:
    """`path` itself, or the kernel an EFI zboot image at `path` carries, written to out_path."""
    with open(path, "rb") as f:
        zboot = zboot_header(f.read(64))
        if zboot is None:
            return path
        offset, size, kind = zboot
        f.seek(offset)
        payload = f.read(size)
    if len(payload) != size:
        raise InitError(f"{path}: EFI zboot payload truncated ({len(payload)} of {size} bytes)")
    if kind == "gzip":
        decoder = "zlib"
        try:
            data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload)
        except zlib.error as exc:
            raise InitError(f"{path}: EFI zboot gzip payload is corrupt: {exc}") from None
    elif kind == "zstd":
        data, decoder = _unzstd(payload, path)
    else:
        raise InitError(f"{path}: zboot: unsupported compression {kind!r} (need gzip or zstd)")
    with open(out_path, "wb") as f:
        f.write(data)
    log(f"zboot: unpacked {kind} kernel {size} -> {len(data)} bytes ({decoder})")
    return out_path


def _unzstd(payload: bytes, path: str) -> tuple[bytes | bytearray, str]:
    """One zstd frame unpacked, and by what: by libzstd, through CPython 3.14's compression.zstd where the init's
    Python has it (sid's), else through ctypes (init.libzstd: trixie's 3.13); 27 MB in well under a second, where
    the portable decoder, compat.zstd (the last resort, with no libzstd), takes ~50 s under TCG."""
    try:
        from compression import zstd as stdzstd
    except ImportError:
        stdzstd = None
    if stdzstd is not None:
        try:
            data = stdzstd.decompress(payload)
        except stdzstd.ZstdError as exc:
            raise InitError(f"{path}: EFI zboot zstd payload is corrupt: {exc}") from None
        if len(data) > ZBOOT_MAX:
            raise InitError(f"{path}: EFI zboot zstd payload unpacks to more than {ZBOOT_MAX} bytes")
        return data, "libzstd, compression.zstd"
    from cloudboot.init import libzstd

    if libzstd.library() is not None:
        try:
            return libzstd.decompress(payload, ZBOOT_MAX), "libzstd, ctypes"
        except libzstd.ZstdError as exc:
            raise InitError(f"{path}: EFI zboot zstd payload is corrupt: {exc}") from None
    from compat import zstd

    try:
        return zstd.decompress_bytearray(payload, max_output=ZBOOT_MAX, single=True), "the portable decoder: no libzstd"
    except zstd.ZstdError as exc:
        raise InitError(f"{path}: EFI zboot zstd payload is corrupt: {exc}") from None


#: The most an EFI zboot payload may unpack to (kernels are tens of MB).
ZBOOT_MAX = 1 << 30


def _file_load(kernel: str, initrd: str | None, cmdline: str) -> None:
    try:
        kfd = os.open(kernel, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise InitError(f"kexec: cannot open the kernel {kernel}: {exc.strerror}") from None
    try:
        ifd = os.open(initrd, os.O_RDONLY | os.O_CLOEXEC) if initrd else None
    except OSError as exc:
        os.close(kfd)
        raise InitError(f"kexec: cannot open the initrd {initrd}: {exc.strerror}") from None
    try:
        linux.kexec_file_load(kfd, ifd, cmdline)
    finally:
        os.close(kfd)
        if ifd is not None:
            os.close(ifd)


def _prepare(kernel: str, machine: str) -> tuple[str, bytes | None, bool]:
    """(path of a kernel kexec_file_load takes, the arm64 Image in memory or None, whether the path is a
    temporary file of ours): EFI zboot unwrapped, a gzip'ed arm64 Image gunzipped, the result checked. A raw
    arm64 Image is not read here: kexec_file_load reads it itself (37 MB for Debian's; our loader, the
    fallback, reads it when it runs)."""
    unwrapped = unwrap_zboot(kernel, os.path.join(WORKDIR, "kernel-zboot.img"))
    temporary = unwrapped != kernel
    image = None
    if machine == "aarch64":
        with open(unwrapped, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        if gzipped:  # kexec_file_load takes a raw Image only
            from cloudboot.init import kexec_arm64

            image = kexec_arm64.read_image(unwrapped)  # gunzipped, header checked
            unwrapped = os.path.join(WORKDIR, "kernel-Image")
            with open(unwrapped, "wb") as f:
                f.write(image)
            temporary = True
    with open(unwrapped, "rb") as f:
        check_kernel(f.read(1024), machine)
    return unwrapped, image, temporary


EM_RISCV = 243


def riscv64_elf(path: str, out_path: str) -> str:
    """The RISC-V Image at `path` as an ELF64 executable at out_path: one PT_LOAD (vaddr = paddr = entry = 0,
    memsz = the header's image_size, 2 MiB aligned) holding the Image, the file padded to memsz (the loader
    places what follows the kernel after the file's length)."""
    from cloudboot.init import kexec_riscv64

    with open(path, "rb") as src:
        filesz = os.fstat(src.fileno()).st_size
        memsz = max(kexec_riscv64.image_size(src.read(64)), filesz)
        offset = 0x1000  # the segment's file offset, page aligned
        ehdr = struct.pack("<4s5B7xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, 2, EM_RISCV, 1, 0, 64, 0, 0,
                           64, 56, 1, 0, 0, 0)
        phdr = struct.pack("<IIQQQQQQ", 1, 7, offset, 0, 0, filesz, memsz, 0x200000)
        src.seek(0)
        with open(out_path, "wb") as out:
            out.write((ehdr + phdr).ljust(offset, b"\0"))
            while chunk := src.read(1 << 20):
                out.write(chunk)
            out.truncate(offset + memsz)
    return out_path


def load(kernel: str, initrd: str | None, cmdline: str, machine: str | None = None) -> None:
    """Stage the kernel (and initrd) with `cmdline` for boot(); InitError with the reason when refused.

    kexec_file_load first (riscv64: the Image wrapped as ELF); a kernel without it (ENOSYS) falls back to
    kexec_load with our own layout on aarch64 (Debian's arm64 kernels: CONFIG_KEXEC_FILE unset; kexec_arm64:
    DTB and purgatory), riscv64 (sid's: unset too; kexec_riscv64) and loongarch64 (Linux 6.12 has no
    kexec_file_load there, Debian's 7.2 leaves it unset; kexec_loongarch). On CLASSIC_FIRST machines (riscv64,
    and x86_64 with kexec_x86_64) the order is the other way round."""
    machine = machine or os.uname().machine
    try:
        path, image, temporary = _prepare(kernel, machine)
    except OSError as exc:
        raise InitError(f"kexec: preparing the kernel {kernel}: {exc.strerror or exc}") from None
    try:
        first = None  # why our loader did not do it, on CLASSIC_FIRST machines
        if machine in CLASSIC_FIRST:
            try:
                _classic(machine, kernel, path, image, initrd, cmdline)
                return
            except KexecLoadError as exc:
                if exc.errno not in (errno.ENOSYS, errno.EPERM):
                    raise
                first = exc
            except InitError as exc:  # no layout of ours (no device tree, no room): the kernel's may still do
                first = exc
            log(f"kexec: {first}; trying kexec_file_load")
        try:
            _file_load_as(path, initrd, cmdline, machine)
            return
        except OSError as exc:
            if first is not None or not (exc.errno == errno.ENOSYS and machine in CLASSIC_LOADERS):
                hint = {errno.ENOEXEC: "the kernel refused the image format",
                        errno.EKEYREJECTED: "signature check failed (lockdown/Secure Boot)",
                        errno.EPERM: "not permitted (lockdown or kexec disabled)",
                        errno.ENOSYS: "this kernel has no kexec_file_load",
                        errno.ENOMEM: "not enough memory for the new kernel and initrd"}.get(exc.errno or 0, "")
                raise InitError((f"{first}; then " if first else "")
                                + f"kexec_file_load({path}, {initrd}) failed: {exc.strerror}"
                                + (f" ({hint})" if hint else "")) from None
        log(f"kexec: this kernel has no kexec_file_load (ENOSYS); kexec_load with our {CLASSIC_LOADERS[machine]}")
        if machine == "aarch64" and image is not None:  # a gunzipped Image is in memory: give its tmpfs copy back
            _unlink(path)
        _classic(machine, kernel, path, image, initrd, cmdline)
    finally:
        if temporary:
            _unlink(path)


#: The machines whose kernels may lack kexec_file_load, and our kexec_load loader for each.
CLASSIC_LOADERS = {"aarch64": "arm64 loader", "riscv64": "riscv64 loader", "loongarch64": "LoongArch loader",
                   "x86_64": "x86_64 loader"}
#: Where our kexec_load loader goes first: kexec_file_load on riscv64 and x86_64 carries a purgatory that hashes
#: every segment with SHA-256 when loading and again before the jump (under TCG about 8 s for a 40 MB riscv64
#: Image, 2 s for a Debian amd64 kernel and initrd); ours has none. kexec_file_load stays the fallback for a
#: kernel that refuses kexec_load (lockdown: EPERM; no CONFIG_KEXEC: ENOSYS; it verifies signatures there) and
#: for a machine our layout cannot serve (no device tree; a memory map the zero page cannot hold).
CLASSIC_FIRST = ("riscv64", "x86_64")


def _classic(machine: str, kernel: str, path: str, image: bytes | None, initrd: str | None, cmdline: str) -> None:
    """kexec_load through our loader for `machine` (KexecLoadError from the syscall, InitError otherwise)."""
    if machine == "aarch64":
        from cloudboot.init import kexec_arm64

        p = kexec_arm64.load(path, initrd, cmdline, image)  # path: an EFI zboot kernel's unwrapped Image
        log(f"kexec: loaded with kexec_load (entry {p.entry:#x}, kernel {p.kernel_entry:#x}, dtb {p.dtb:#x})")
    elif machine == "x86_64":
        from cloudboot.init import kexec_x86_64

        x = kexec_x86_64.load(path, initrd, cmdline)
        log(f"kexec: loaded with kexec_load (kernel {x.kernel:#x}, zero page {x.zero_page:#x}, "
            + ("EFI runtime passed on)" if x.efi else "no EFI runtime: the target boots without it)"))
    elif machine == "riscv64":
        from cloudboot.init import kexec_riscv64

        log(f"kexec: loaded with kexec_load (entry {kexec_riscv64.load(path, initrd, cmdline):#x})")
    else:
        from cloudboot.init import kexec_loongarch

        q = kexec_loongarch.load(path, initrd, cmdline)
        log(f"kexec: loaded with kexec_load (entry {q.entry:#x}, command line {q.cmdline!r})")


def _file_load_as(path: str, initrd: str | None, cmdline: str, machine: str) -> None:
    """kexec_file_load of the kernel at `path` (riscv64: through a temporary ELF wrapper, removed after, also
    when writing it failed half-way: tmpfs is RAM)."""
    elf = os.path.join(WORKDIR, "kernel-riscv64.elf") if machine == "riscv64" else None
    try:
        if elf:
            try:
                riscv64_elf(path, elf)
            except OSError as exc:
                raise InitError(f"kexec: writing the ELF wrapper {elf} of {path}: {exc.strerror or exc}") from None
        _file_load(elf or path, initrd, cmdline)
    finally:
        if elf:
            _unlink(elf)
    log(f"kexec: loaded with kexec_file_load ({path})")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def boot() -> None:
    """Sync and reboot into the loaded kernel; returns only by raising InitError."""
    os.sync()
    try:
        linux.reboot(linux.LINUX_REBOOT_CMD_KEXEC)
    except OSError as exc:
        raise InitError(f"reboot(LINUX_REBOOT_CMD_KEXEC) failed: {exc.strerror}") from None
    raise InitError("reboot(LINUX_REBOOT_CMD_KEXEC) returned")
