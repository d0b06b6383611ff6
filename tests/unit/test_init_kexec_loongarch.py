"""The LoongArch kexec_load path of init: the kernel image header, the layout from a real guest's /proc/iomem
(kernel at its link address, initrd and the "kexec"-prefixed command line in free RAM above it), the refusals,
and kexec.load()'s fallback to it when kexec_file_load is missing (ENOSYS), through EFI zboot."""

from __future__ import annotations

import errno
import struct
import subprocess
from pathlib import Path

import pytest

from cloudboot.init import kexec, kexec_loongarch, kexec_segments, linux
from cloudboot.init.errors import InitError

#: /proc/iomem of the e2e's loong64 guest (QEMU virt, 1 GiB, EDK2, our 6.12 cloud kernel).
IOMEM = """\
00000000-0d35ffff : System RAM
  00000000-001fffff : Reserved
  00200000-005effff : Kernel code
  005f0000-00784fff : Kernel data
  00785000-0080649f : Kernel bss
  008064a0-048d3fff : Reserved
  0cb70000-0cd73fff : Reserved
0d370000-0d95ffff : System RAM
0db70000-0dbcffff : System RAM
0e110000-0f18ffff : System RAM
0f1e0000-0fffffff : System RAM
1fe001e0-1fe002df : serial
20000000-27ffffff : PCI ECAM
40000000-7fffffff : PCI Bus 0000:00
80000000-afffffff : System RAM
  af4d0000-af657fff : Reserved
  af65c000-af65ffff : Reserved
  af660000-afffffff : Reserved
"""


def _image(entry: int = 0x201000, image_size: int = 0x1000000, load_offset: int = 0x200000, size: int = 0x8000,
           magic: int = kexec_loongarch.LINUX_PE_MAGIC) -> bytes:
    head = b"MZ" + bytes(6) + struct.pack("<QQQ", entry, image_size, load_offset) + bytes(24) + struct.pack("<I", magic)
    return head.ljust(size, b"\xaa")


def test_header() -> None:
    h = kexec_loongarch.parse_header(_image())
    assert (h.kernel_entry, h.image_size, h.load_offset) == (0x201000, 0x1000000, 0x200000)
    # a virtual entry (the direct-mapped window) is reduced to its physical address, as kexec-tools does
    assert kexec_loongarch.parse_header(_image(entry=0x9000000000201000)).kernel_entry == 0x201000


@pytest.mark.parametrize(("image", "message"), [
    (b"MZ" + bytes(10), "too short"),
    (b"PK" + _image()[2:], "not a LoongArch EFI kernel image"),
    (_image(magic=0x12345678), "not a LoongArch EFI kernel image"),
    (_image(image_size=0), "inconsistent"),
    (_image(load_offset=0x200100), "inconsistent"),
    (_image(entry=0x100000), "entry 0x100000 lies outside the image"),
])
def test_header_refusals(image: bytes, message: str) -> None:
    with pytest.raises(InitError, match=message):
        kexec_loongarch.parse_header(image)


def test_plan_layout() -> None:
    initrd = b"\x07" * 0x300001
    p = kexec_loongarch.plan(_image(size=0x1000010), initrd, "console=ttyS0 cbtest=1", IOMEM)
    by_name = {s.name: s for s in p.segments}
    assert [s.name for s in p.segments] == ["kernel", "initrd", "cmdline"]  # address order
    k = by_name["kernel"]
    # at its link address, under the running kernel (kexec copies it there at reboot); what lies past
    # image_size in the file (an appended signature) stays behind
    assert (k.mem, k.memsz, len(k.data)) == (0x200000, 0x1000000, 0x1000000)
    assert p.entry == 0x201000
    i = by_name["initrd"]
    # the first free page above the kernel: 0x1200000 is inside the running kernel's reserved block
    assert (i.mem, i.memsz, i.data) == (0x48D4000, 0x301000, initrd)
    c = by_name["cmdline"]
    assert c.mem == i.mem + i.memsz and c.memsz == 0x1000 and len(c.data) == kexec_loongarch.CMDLINE_BUFFER
    assert c.data.rstrip(b"\0") == b"kexec console=ttyS0 cbtest=1 initrd=0x48d4000,0x300001" == p.cmdline.encode()
    assert all(s.mem % 4096 == 0 and s.memsz % 4096 == 0 for s in p.segments)


def test_plan_without_initrd_and_the_refusals() -> None:
    p = kexec_loongarch.plan(_image(), None, "quiet", IOMEM)
    assert [s.name for s in p.segments] == ["kernel", "cmdline"] and p.cmdline == "kexec quiet"
    with pytest.raises(InitError, match="command line is 512 bytes .* at most 511"):
        kexec_loongarch.plan(_image(), None, "x" * (512 - len("kexec ")), IOMEM)
    kexec_loongarch.plan(_image(), None, "x" * (511 - len("kexec ")), IOMEM)
    with pytest.raises(InitError, match=r"place 0x200000-0x11fffff .* not inside System RAM"):
        kexec_loongarch.plan(_image(), None, "", "80000000-afffffff : System RAM\n")
    with pytest.raises(InitError, match="no room for the initrd"):
        kexec_loongarch.plan(_image(), b"x" * (1 << 30), "", IOMEM)


def test_system_ram_is_top_level_only() -> None:
    assert kexec_segments.system_ram(IOMEM)[0] == (0, 0xD360000)
    assert kexec_segments.system_ram(IOMEM)[-1] == (0x80000000, 0xB0000000)
    assert len(kexec_segments.system_ram(IOMEM)) == 6


def test_kexec_load_numbers() -> None:
    assert linux.syscall_number("kexec_load", "loongarch64") == 104
    assert linux.KEXEC_ARCH_LOONGARCH == 258 << 16


def test_load_falls_back_to_kexec_load_on_enosys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  kexec_without_file_load: list) -> None:
    """Through kexec.load as the init calls it: an EFI zboot (zstd) image is unpacked, kexec_file_load says
    ENOSYS (Linux 6.12 on LoongArch), and our loader stages the PE image with kexec_load; the unpacked copy
    is removed afterwards."""
    monkeypatch.setattr(kexec, "WORKDIR", str(tmp_path))
    image = _image()
    payload = subprocess.run(["zstd", "-q", "-c"], input=image, capture_output=True, check=True).stdout
    head = bytearray(b"MZ\0\0zimg" + struct.pack("<II", 0x100, len(payload)) + bytes(8) + b"zstd")
    zboot = tmp_path / "vmlinuz"
    zboot.write_bytes(bytes(head).ljust(0x100, b"\0") + payload)
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"cpio")
    real_read = kexec_loongarch.read
    monkeypatch.setattr(kexec_loongarch, "read",
                        lambda path, what: IOMEM.encode() if path == "/proc/iomem" else real_read(path, what))
    kexec.load(str(zboot), str(initrd), "console=ttyS0", "loongarch64")
    (_, kind), (_, entry, segs, flags) = kexec_without_file_load
    assert kind == b"MZ\0\0" and entry == 0x201000 and flags == linux.KEXEC_ARCH_LOONGARCH
    assert segs[0] == (image, 0x200000, 0x1000000)
    assert segs[2][0].startswith(b"kexec console=ttyS0 initrd=0x48d4000,0x4\0")
    assert not (tmp_path / "kernel-zboot.img").exists()

    def refused(entry, segs, flags):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(linux, "kexec_load", refused)
    with pytest.raises(InitError, match="kexec_load.*Invalid argument .*found no device tree or command line"):
        kexec.load(str(zboot), None, "", "loongarch64")
