"""The riscv64 kexec_load path of init: the Image header check, the layout from a real guest's /proc/iomem (kernel
2 MiB aligned in free RAM, the initrd past the 2 MiB boundary that ends the kernel's own reservation, then the
device tree, whose /chosen carries the command line and initrd and which QEMU's own riscv64 DTB survives), and
kexec.load() trying it first, and kexec_file_load (the Image wrapped as ELF) when the kernel refuses it."""

from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from cloudboot.init import fdt, kexec, kexec_riscv64, kexec_segments, linux
from cloudboot.init.errors import InitError

#: /proc/iomem of the e2e's riscv64 guest (QEMU virt, 1 GiB, sid's 7.2 kernel, direct -kernel boot).
IOMEM = """\
00101000-00101fff : 101000.rtc rtc@101000
10000000-100000ff : serial
30000000-3fffffff : PCI ECAM
80000000-8005ffff : Reserved
80060000-bfffffff : System RAM
  80200000-80201fff : Reserved
  80202000-8259fa8f : Kernel image
    80202000-80fd39f9 : Kernel code
    82200000-824f45ff : Kernel data
  8259fa90-825fffff : Reserved
  a0200000-a038dfff : Reserved
  b4b00000-bfdfffff : Reserved
  bfe00000-bfffffff : Reserved
"""


def _image(image_size: int = 0x23A0000, size: int = 0x4000) -> bytes:
    head = bytearray(64)
    head[:2] = b"MZ"
    struct.pack_into("<QQ", head, 8, 0x200000, image_size)
    head[48:60] = kexec_riscv64.RISCV_MAGIC + kexec_riscv64.RISCV_MAGIC2
    return bytes(head).ljust(size, b"\x13")


def _dtb() -> bytes:
    root = fdt.Node("", {"#address-cells": struct.pack(">I", 2), "compatible": b"riscv-virtio\0"})
    root.children.append(fdt.Node("chosen", {"bootargs": b"old\0", "linux,elfcorehdr": bytes(16)}))
    return fdt.serialize(fdt.Fdt(root, [], 0))


def test_image_size_and_refusals() -> None:
    assert kexec_riscv64.image_size(_image()[:64]) == 0x23A0000
    with pytest.raises(InitError, match="not a RISC-V Image .*an ELF file"):
        kexec_riscv64.image_size(b"\x7fELF" + bytes(60))
    with pytest.raises(InitError, match="not a RISC-V Image"):
        kexec_riscv64.image_size(_image()[:60])
    with pytest.raises(InitError, match="image_size 0"):
        kexec_riscv64.image_size(_image(image_size=0)[:64])


def test_plan_layout() -> None:
    initrd = b"\x07" * 0x18E001
    rand = bytes(8 + kexec_segments.RNG_SEED_SIZE)
    entry, segs = kexec_riscv64.plan(_image(), initrd, "console=ttyS0 cbtest=1", _dtb(), IOMEM, rand=rand)
    k, i, d = segs
    # the lowest 2 MiB aligned fit above the running kernel's reservations; entered at the Image's first byte
    assert (k.name, k.mem, k.memsz, entry) == ("kernel", 0x82600000, 0x23A0000, 0x82600000)
    # the kernel reserves up to the next 2 MiB: 0x849a0000 would be refused at boot
    assert (i.name, i.mem, i.memsz, i.data) == ("initrd", 0x84A00000, 0x18F000, initrd)
    assert (d.name, d.mem) == ("dtb", 0x84B8F000)
    chosen = fdt.parse(d.data).root.child("chosen")
    assert chosen.props["bootargs"] == b"console=ttyS0 cbtest=1\0"
    assert struct.unpack(">QQ", chosen.props["linux,initrd-start"] + chosen.props["linux,initrd-end"]) == \
        (0x84A00000, 0x84A00000 + len(initrd))
    assert "linux,elfcorehdr" not in chosen.props  # the running kernel's crash-dump leftovers stay behind


def test_plan_refusals() -> None:
    with pytest.raises(InitError, match="no room for the kernel"):
        kexec_riscv64.plan(_image(image_size=1 << 30), None, "", _dtb(), IOMEM)
    with pytest.raises(InitError, match="fdt|device tree"):
        kexec_riscv64.plan(_image(), None, "", b"\xd0\x0d\xfe\xed" + bytes(4), IOMEM)


def test_qemu_riscv64_dtb_round_trip(tmp_path: Path) -> None:
    """QEMU's own riscv64 virt DTB, edited as the loader does, is still a tree dtc reads back."""
    qemu = shutil.which("qemu-system-riscv64")
    if not qemu:
        pytest.skip("qemu-system-riscv64 is not installed")
    out = tmp_path / "virt.dtb"
    subprocess.run([qemu, "-M", f"virt,dumpdtb={out}", "-m", "1024", "-smp", "2", "-display", "none"],
                   check=True, capture_output=True, timeout=60)
    _, segs = kexec_riscv64.plan(_image(), b"x" * 100, 'console=ttyS0 a="b c"', out.read_bytes(), IOMEM)
    tree = fdt.parse(segs[-1].data)
    assert tree.root.child("chosen").props["bootargs"] == b'console=ttyS0 a="b c"\0'
    assert tree.root.child("cpus") is not None  # the rest of QEMU's tree is passed on
    dtc = shutil.which("dtc")
    if dtc:
        (tmp_path / "edited.dtb").write_bytes(segs[-1].data)
        text = subprocess.run([dtc, "-I", "dtb", "-O", "dts", str(tmp_path / "edited.dtb")], check=True,
                              capture_output=True, text=True).stdout
        assert "linux,initrd-start" in text


@pytest.fixture
def image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A RISC-V Image in tmp_path, which is also kexec's work directory; /proc/iomem and the running device tree
    come from the e2e guest (a test may replace kexec_riscv64.read again)."""
    monkeypatch.setattr(kexec, "WORKDIR", str(tmp_path))
    real_read = kexec_riscv64.read
    fake = {"/proc/iomem": IOMEM.encode(), "/sys/firmware/fdt": _dtb()}
    monkeypatch.setattr(kexec_riscv64, "read", lambda path, what: fake.get(path) or real_read(path, what))
    out = tmp_path / "Image"
    out.write_bytes(_image())
    return out


def test_load_uses_kexec_load_first(image: Path, tmp_path: Path, kexec_without_file_load: list) -> None:
    """Through kexec.load as the init calls it: on riscv64 our loader goes first (kexec_file_load's purgatory
    would hash every segment twice), staging the raw Image with the device tree; no ELF copy is made."""
    kexec.load(str(image), None, "console=ttyS0", "riscv64")
    [(_, entry, segs, flags)] = kexec_without_file_load
    assert entry == 0x82600000 and flags == linux.KEXEC_ARCH_RISCV == 243 << 16
    assert segs[0] == (image.read_bytes(), 0x82600000, 0x23A0000) and segs[1][0][:4] == b"\xd0\x0d\xfe\xed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Image"]


@pytest.mark.parametrize("err", [errno.EPERM, errno.ENOSYS])
def test_refused_kexec_load_falls_back_to_kexec_file_load(image: Path, tmp_path: Path, kexec_calls, err: int) -> None:
    """A kernel that refuses kexec_load (lockdown: EPERM; no CONFIG_KEXEC: ENOSYS) gets kexec_file_load with the
    Image wrapped as ELF; the ELF copy is removed after."""
    calls = kexec_calls(load=err)
    kexec.load(str(image), None, "console=ttyS0", "riscv64")
    assert [c[0] for c in calls] == ["load", "file"] and calls[1][1] == b"\x7fELF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Image"]


def test_other_kexec_load_errors_are_fatal(image: Path, kexec_calls) -> None:
    """EBUSY/EINVAL/ENOMEM from kexec_load are the reason given, not a cue to try the other call."""
    calls = kexec_calls(load=errno.ENOMEM)
    with pytest.raises(InitError, match=r"kexec_load\(entry=0x82600000, 2 segments\) failed: .*not enough memory"):
        kexec.load(str(image), None, "console=ttyS0", "riscv64")
    assert [c[0] for c in calls] == ["load"]


def test_no_device_tree_falls_back_and_both_reasons_are_told(image: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             kexec_without_file_load: list) -> None:
    """A machine our layout cannot serve (no /sys/firmware/fdt: an ACPI boot) gets kexec_file_load; when that is
    missing too, the error says why each call failed."""
    faked = kexec_riscv64.read  # the fixture's, with the device tree made missing
    monkeypatch.setattr(kexec_riscv64, "read",
                        lambda path, what: faked(str(tmp_path / "no-fdt") if "fdt" in path else path, what))
    with pytest.raises(InitError, match=r"cannot read the running device tree .*; then kexec_file_load\(.*\) failed: "
                                        r"Function not implemented \(this kernel has no kexec_file_load\)"):
        kexec.load(str(image), None, "console=ttyS0", "riscv64")
    assert kexec_without_file_load == [("file", b"\x7fELF")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Image"]


def test_a_half_written_elf_wrapper_is_removed(image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               kexec_calls) -> None:
    """Writing the ELF wrapper fails (tmpfs full): a clear error naming it, and no partial copy left in RAM."""
    calls = kexec_calls(load=errno.EPERM)

    def full(path, out):
        Path(out).write_bytes(b"\x7fELF partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(kexec, "riscv64_elf", full)
    with pytest.raises(InitError, match=r"writing the ELF wrapper .*kernel-riscv64\.elf of .*Image: No space left"):
        kexec.load(str(image), None, "console=ttyS0", "riscv64")
    assert [c[0] for c in calls] == ["load"] and sorted(p.name for p in tmp_path.iterdir()) == ["Image"]
