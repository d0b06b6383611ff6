"""The arm64 kexec_load path of init: our FDT reader/writer (round trips, /chosen edits, malformed blobs, checked
against QEMU's own DTB and dtc when present), the arm64 Image header, the memory layout from /proc/iomem,
the purgatory's instruction bytes (against the documented encodings, and GNU as when present) and the
kexec.load() dispatch (kexec_file_load first, kexec_load on ENOSYS)."""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from cloudboot.init import fdt, kexec, kexec_arm64, kexec_segments, linux
from cloudboot.init.errors import InitError

#: /proc/iomem of the e2e's arm64 guest (QEMU virt, 1 GiB, Debian 6.12), direct -kernel boot.
IOMEM_DIRECT = """\
09000000-09000fff : pl011@9000000
  09000000-09000fff : 9000000.pl011 pl011@9000000
09010000-09010fff : pl031@9010000
  09010000-09010fff : rtc-pl031
09030000-09030fff : pl061@9030000
  09030000-09030fff : 9030000.pl061 pl061@9030000
10000000-3efeffff : pcie@10000000
  10000000-10000fff : 0000:00:01.0
40000000-7fffffff : System RAM
  40200000-41f2ffff : Kernel code
  41f30000-4223ffff : reserved
  42240000-426fffff : Kernel data
  48000000-488aefff : reserved
  48a00000-48afffff : reserved
  7ab00000-7fbfffff : reserved
  7fc10000-7fc12fff : reserved
  7fc13000-7fd93fff : reserved
  7fd94000-7fdd7fff : reserved
  7fdda000-7fddbfff : reserved
  7fddc000-7fddcfff : reserved
  7fddd000-7fe01fff : reserved
  7fe02000-7fe0bfff : reserved
  7fe0c000-7fffffff : reserved
4010000000-401fffffff : PCI ECAM
8000000000-ffffffffff : pcie@10000000
  8000000000-8000003fff : 0000:00:01.0
    8000000000-8000003fff : virtio-pci-modern
"""
#: The same guest booted through EDK2 (virtio-mmio lines trimmed): RAM split around the firmware's runtime
#: regions (nomap: not System RAM), the kernel high up, many reserved blocks nested in System RAM.
IOMEM_EFI = """\
09000000-09000fff : ARMH0011:00
  09000000-09000fff : ARMH0011:00 ARMH0011:00
09020000-09020017 : QEMU0002:00
10000000-3efeffff : PCI Bus 0000:00
  10000000-10000fff : 0000:00:01.0
40000000-7f10ffff : System RAM
  71400000-753fffff : reserved
  75400000-7712ffff : Kernel code
  77130000-7743ffff : reserved
  77440000-778fffff : Kernel data
  7b890000-7b890fff : reserved
  7ba90000-7c33efff : reserved
  7c349000-7c34afff : reserved
  7c34c000-7c34cfff : reserved
  7c34e000-7c34efff : reserved
  7c353000-7c354fff : reserved
  7e000000-7effffff : reserved
  7f0be000-7f0befff : reserved
7f110000-7f18ffff : reserved
7f190000-7f1cffff : System RAM
7f1d0000-7f38ffff : reserved
7f390000-7f42ffff : System RAM
7f430000-7f5bffff : reserved
7f5c0000-7fe1ffff : System RAM
  7f96b000-7fa6dfff : reserved
  7fa6e000-7fbeefff : reserved
  7fbef000-7fc32fff : reserved
  7fc35000-7fc37fff : reserved
  7fc38000-7fe1ffff : reserved
7fe20000-7feaffff : reserved
7feb0000-7febffff : System RAM
  7feb0000-7febffff : reserved
7fec0000-7ffdffff : reserved
7ffe0000-7fffffff : System RAM
  7ffe0000-7fffffff : reserved
4010000000-401fffffff : PCI ECAM
8000000000-ffffffffff : PCI Bus 0000:00
  8000000000-8000003fff : 0000:00:01.0
    8000000000-8000003fff : virtio-pci-modern
"""


def _image(size: int = 0x200000, image_size: int = 0x300000, text_offset: int = 0, flags: int = 0b1010) -> bytes:
    head = bytearray(size)
    head[:2] = b"MZ"
    struct.pack_into("<QQQ", head, 8, text_offset, image_size, flags)
    head[56:60] = b"ARM\x64"
    return bytes(head)


def _tree() -> fdt.Fdt:
    root = fdt.Node("", {"#address-cells": struct.pack(">I", 2), "compatible": b"linux,dummy-virt\0"})
    root.children.append(fdt.Node("chosen", {"bootargs": b"old\0", "linux,elfcorehdr": bytes(16),
                                             "kaslr-seed": b"\x11" * 8, "stdout-path": b"/pl011@9000000\0"}))
    root.children.append(fdt.Node("memory@40000000", {"device_type": b"memory\0", "reg": bytes(16)},
                                  [fdt.Node("deeper", {"empty": b""})]))
    return fdt.Fdt(root, [(0x48000000, 0x1000)], 0)


# ---- FDT ----

def test_fdt_round_trip() -> None:
    t = _tree()
    blob = fdt.serialize(t)
    assert struct.unpack_from(">I", blob)[0] == fdt.MAGIC and len(blob) == struct.unpack_from(">I", blob, 4)[0]
    back = fdt.parse(blob)
    assert back == t
    assert fdt.serialize(back) == blob
    assert back.node("/memory@40000000/deeper").props == {"empty": b""}
    assert back.node("/chosen").get_str("stdout-path") == "/pl011@9000000"
    assert back.node("/nope") is None
    assert back.reservations == [(0x48000000, 0x1000)]


def test_fdt_nop_tokens_are_skipped() -> None:
    blob = bytearray(fdt.serialize(_tree()))
    off_struct = struct.unpack_from(">I", blob, 8)[0]
    # turn the root's first property (#address-cells: 12 bytes of header + 4 of value) into 4 NOPs
    root_name_end = off_struct + 8
    assert struct.unpack_from(">I", blob, root_name_end)[0] == fdt.FDT_PROP
    for i in range(4):
        struct.pack_into(">I", blob, root_name_end + 4 * i, fdt.FDT_NOP)
    t = fdt.parse(bytes(blob))
    assert "#address-cells" not in t.root.props and "compatible" in t.root.props


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b[:20], "too short for a device tree header"),
    (lambda b: b"\0\0\0\0" + b[4:], "bad magic 0x00000000"),
    (lambda b: b[:-8], "header totalsize"),
    (lambda b: b[:20] + struct.pack(">I", 1) + b[24:], "version 1"),
    (lambda b: b[:12] + struct.pack(">I", 0x10000) + b[16:], "strings block .* lies outside the blob"),
    (lambda b: b[:16] + struct.pack(">I", 4) + b[20:], "memory reservation map offset 0x4 is invalid"),
])
def test_fdt_malformed_header(mutate, message: str) -> None:
    with pytest.raises(InitError, match=message):
        fdt.parse(mutate(fdt.serialize(_tree())))


def _struct_patch(offset_in_struct: int, value: int) -> bytes:
    blob = bytearray(fdt.serialize(_tree()))
    off_struct = struct.unpack_from(">I", blob, 8)[0]
    struct.pack_into(">I", blob, off_struct + offset_in_struct, value)
    return bytes(blob)


def test_fdt_malformed_structure() -> None:
    with pytest.raises(InitError, match="unknown token 0x7 at offset"):
        fdt.parse(_struct_patch(0, 7))
    with pytest.raises(InitError, match="FDT_END_NODE without an open node"):
        fdt.parse(_struct_patch(0, fdt.FDT_END_NODE))
    with pytest.raises(InitError, match="property outside any node"):
        fdt.parse(_struct_patch(0, fdt.FDT_PROP))
    with pytest.raises(InitError, match="name offset .* outside the strings block"):
        fdt.parse(_struct_patch(16, 0xFFFF))  # nameoff of the root's first property
    with pytest.raises(InitError, match="property value .* runs past"):
        fdt.parse(_struct_patch(12, 0xFFFFFF))  # its length
    blob = fdt.serialize(_tree())
    size_struct = struct.unpack_from(">I", blob, 36)[0]
    with pytest.raises(InitError, match="still open|without FDT_END"):
        fdt.parse(_struct_patch(size_struct - 4, fdt.FDT_NOP))  # FDT_END gone
    empty = fdt.serialize(fdt.Fdt(fdt.Node("")))
    with pytest.raises(InitError, match="no root node"):
        fdt.parse(_replace_struct(empty, struct.pack(">I", fdt.FDT_END)))


def _replace_struct(blob: bytes, new: bytes) -> bytes:
    """`blob` with its structure block replaced (strings kept), offsets and sizes fixed up."""
    _, _, off_struct, off_strings, off_rsv, ver, last, cpu, size_strings, size_struct = fdt.HEADER.unpack_from(blob)
    strings = blob[off_strings:off_strings + size_strings]
    body = blob[fdt.HEADER.size:off_struct] + new + strings
    total = fdt.HEADER.size + len(body)
    off_strings = off_struct + len(new)
    return fdt.HEADER.pack(fdt.MAGIC, total, off_struct, off_strings, off_rsv, ver, last, cpu, size_strings,
                           len(new)) + body


def test_fdt_unterminated_name_and_non_ascii() -> None:
    bad = struct.pack(">I", fdt.FDT_BEGIN_NODE) + b"abcd"
    blob = _replace_struct(fdt.serialize(_tree()), bad)
    with pytest.raises(InitError, match="node name .* is not NUL-terminated"):
        fdt.parse(blob)
    bad = struct.pack(">I", fdt.FDT_BEGIN_NODE) + b"\xff\0\0\0" + struct.pack(">II", fdt.FDT_END_NODE, fdt.FDT_END)
    with pytest.raises(InitError, match="not ASCII"):
        fdt.parse(_replace_struct(fdt.serialize(_tree()), bad))
    with pytest.raises(InitError, match="not ASCII"):
        fdt.serialize(fdt.Fdt(fdt.Node("", {"b\u00e4d": b""})))


def test_edit_chosen() -> None:
    t = _tree()
    rand = bytes(range(8)) + bytes(range(100, 100 + kexec_segments.RNG_SEED_SIZE))
    kexec_segments.edit_chosen(t, "console=ttyAMA0 quiet", (0x44000000, 0x44123456), rand)
    chosen = fdt.parse(fdt.serialize(t)).node("/chosen")
    assert chosen.get_str("bootargs") == "console=ttyAMA0 quiet"
    assert chosen.props["linux,initrd-start"] == struct.pack(">Q", 0x44000000)
    assert chosen.get_int("linux,initrd-end") == 0x44123456
    assert "linux,elfcorehdr" not in chosen.props
    assert chosen.props["kaslr-seed"] == rand[:8] and chosen.props["rng-seed"] == rand[8:]
    assert chosen.get_str("stdout-path") == "/pl011@9000000"  # the rest is kept
    kexec_segments.edit_chosen(t, "", None)
    assert not {"bootargs", "linux,initrd-start", "linux,initrd-end"} & set(t.node("/chosen").props)
    assert t.node("/chosen").props["kaslr-seed"] != rand[:8]  # fresh random by default
    bare = fdt.Fdt(fdt.Node(""))
    kexec_segments.edit_chosen(bare, "x", None)  # no /chosen yet: made
    assert bare.node("/chosen").get_str("bootargs") == "x"
    with pytest.raises(InitError, match="random bytes"):
        kexec_segments.edit_chosen(bare, "x", None, b"short")


def test_edit_chosen_before_the_rng_is_seeded(monkeypatch: pytest.MonkeyPatch) -> None:
    """No waiting for the kernel's RNG: without fresh bytes the spent seeds of the running tree are removed,
    not passed on again (as kexec_file_load, which adds seeds only once the RNG is initialized)."""
    def unseeded(n, flags):
        assert flags == os.GRND_NONBLOCK
        raise BlockingIOError(errno.EAGAIN, "unseeded")

    monkeypatch.setattr(os, "getrandom", unseeded)
    t = _tree()
    t.node("/chosen").props["kaslr-seed"] = b"\1" * 8
    t.node("/chosen").props["rng-seed"] = b"\2" * 64
    kexec_segments.edit_chosen(t, "x", None)
    assert not {"kaslr-seed", "rng-seed"} & set(t.node("/chosen").props)


@pytest.fixture(scope="module")
def qemu_dtb(tmp_path_factory) -> bytes:
    """QEMU's own virt DTB for a direct kernel boot (bootargs, initrd, seeds in /chosen)."""
    qemu = shutil.which("qemu-system-aarch64")
    if not qemu:
        pytest.skip("qemu-system-aarch64 is not installed")
    d = tmp_path_factory.mktemp("dtb")
    initrd = d / "initrd"
    initrd.write_bytes(b"x" * 1000)
    kernel = d / "Image"
    kernel.write_bytes(_image())
    out = d / "virt.dtb"
    subprocess.run([qemu, "-M", f"virt,dumpdtb={out}", "-cpu", "cortex-a57", "-m", "1024", "-smp", "2",
                    "-display", "none", "-kernel", str(kernel), "-initrd", str(initrd), "-append", "console=ttyAMA0"],
                   check=True, capture_output=True, timeout=60)
    return out.read_bytes()


def _dts(blob: bytes, tmp: Path) -> str:
    p = tmp / "x.dtb"
    p.write_bytes(blob)
    return subprocess.run([shutil.which("dtc") or "dtc", "-I", "dtb", "-O", "dts", str(p)], check=True,
                          capture_output=True, text=True).stdout


def test_fdt_qemu_round_trip(qemu_dtb: bytes, tmp_path: Path) -> None:
    t = fdt.parse(qemu_dtb)
    chosen = t.node("/chosen")
    assert chosen.get_str("bootargs") == "console=ttyAMA0"
    assert {"linux,initrd-start", "linux,initrd-end", "kaslr-seed", "rng-seed"} <= set(chosen.props)
    assert t.root.get_str("compatible") == "linux,dummy-virt"
    out = fdt.serialize(t)
    assert fdt.parse(out) == t and len(out) < len(qemu_dtb)  # QEMU's blob carries 1 MiB of free space
    if shutil.which("dtc"):
        assert _dts(out, tmp_path) == _dts(qemu_dtb, tmp_path)


def test_fdt_qemu_chosen_edit_seen_by_dtc(qemu_dtb: bytes, tmp_path: Path) -> None:
    if not shutil.which("dtc"):
        pytest.skip("dtc (device-tree-compiler) is not installed")
    t = fdt.parse(qemu_dtb)
    kexec_segments.edit_chosen(t, 'console=ttyAMA0 cbtest="a b"', (0x44D00000, 0x44EE2A8C), bytes(136))
    dts = _dts(fdt.serialize(t), tmp_path)
    assert 'bootargs = "console=ttyAMA0 cbtest=\\"a b\\"";' in dts
    assert "linux,initrd-start = <0x00 0x44d00000>;" in dts
    assert "linux,initrd-end = <0x00 0x44ee2a8c>;" in dts
    assert "kaslr-seed = <0x00 0x00>;" in dts


# ---- arm64 Image ----

def test_image_header() -> None:
    h = kexec_arm64.parse_image_header(_image(text_offset=0x80000))
    assert (h.text_offset, h.image_size, h.flags, h.page_size_kib) == (0x80000, 0x300000, 0b1010, 4)
    with pytest.raises(InitError, match="no 'ARM\\\\x64' magic"):
        kexec_arm64.parse_image_header(b"MZ" + bytes(100))
    with pytest.raises(InitError, match="too short"):
        kexec_arm64.parse_image_header(b"MZ")
    with pytest.raises(InitError, match="big-endian"):
        kexec_arm64.parse_image_header(_image(flags=1))
    with pytest.raises(InitError, match="image_size 0"):
        kexec_arm64.parse_image_header(_image(image_size=0))
    with pytest.raises(InitError, match="smaller than the file"):
        kexec_arm64.parse_image_header(_image(image_size=0x1000))
    with pytest.raises(InitError, match="text_offset 0x123"):
        kexec_arm64.parse_image_header(_image(text_offset=0x123))


def test_read_image(tmp_path: Path) -> None:
    img = _image()
    raw, gz = tmp_path / "Image", tmp_path / "vmlinuz"
    raw.write_bytes(img)
    gz.write_bytes(gzip.compress(img))
    assert kexec_arm64.read_image(str(raw)) == img
    assert kexec_arm64.read_image(str(gz)) == img
    gz.write_bytes(gzip.compress(img)[:1000])
    with pytest.raises(InitError, match="truncated"):
        kexec_arm64.read_image(str(gz))
    gz.write_bytes(b"\x1f\x8b" + bytes(100))
    with pytest.raises(InitError, match="corrupt"):
        kexec_arm64.read_image(str(gz))
    gz.write_bytes(gzip.compress(b"070701" + bytes(1000)))
    with pytest.raises(InitError, match="not an arm64 Image"):
        kexec_arm64.read_image(str(gz))
    with pytest.raises(InitError, match="No such file"):
        kexec_arm64.read_image(str(tmp_path / "missing"))


def test_check_kernel_accepts_arm64_image_without_mz() -> None:
    kexec.check_kernel(b"\0\0" + _image(size=1022)[2:], "aarch64")
    with pytest.raises(InitError, match="no MZ header"):
        kexec.check_kernel(b"\0\0" + _image(size=1022)[2:], "riscv64")


# ---- memory layout ----

def test_parse_iomem() -> None:
    assert kexec_segments.parse_iomem(IOMEM_DIRECT) == [
        (0x40000000, 0x40200000), (0x42700000, 0x48000000), (0x488AF000, 0x48A00000), (0x48B00000, 0x7AB00000),
        (0x7FC00000, 0x7FC10000), (0x7FDD8000, 0x7FDDA000)]
    free = kexec_segments.parse_iomem(IOMEM_EFI)
    assert free[:2] == [(0x40000000, 0x71400000), (0x77900000, 0x7B890000)]
    assert (0x7F0BF000, 0x7F110000) in free and (0x7F190000, 0x7F1D0000) in free  # top-level RAM between nomap
    assert not [r for r in free if r[0] < 0x7FFE0000 < r[1] or r[0] >= 0x7FEB0000]  # all-reserved RAM: none
    with pytest.raises(InitError, match="no System RAM"):
        kexec_segments.parse_iomem("00000000-00000000 : System RAM\n")
    with pytest.raises(InitError, match="no System RAM"):
        kexec_segments.parse_iomem("garbage\n")


def _check_plan(p: kexec_arm64.Plan, free: list[tuple[int, int]], page: int = 4096) -> None:
    segs = sorted(p.segments, key=lambda s: s.mem)
    for s in segs:
        assert s.mem % page == 0 and s.memsz % page == 0 and len(s.data) <= s.memsz, s.name
        assert any(a <= s.mem and s.mem + s.memsz <= b for a, b in free), (s.name, hex(s.mem))
    for a, b in zip(segs, segs[1:], strict=False):
        assert a.mem + a.memsz <= b.mem, (a.name, b.name)


def test_plan_layout() -> None:
    image, initrd = _image(text_offset=0x80000), b"I" * 5000
    rand = bytes(136)
    for iomem, kernel_entry in ((IOMEM_DIRECT, 0x42880000), (IOMEM_EFI, 0x40080000)):
        free = kexec_segments.parse_iomem(iomem)
        p = kexec_arm64.plan(image, initrd, "console=ttyAMA0", fdt.serialize(_tree()), iomem, rand=rand)
        _check_plan(p, free)
        by = {s.name: s for s in p.segments}
        assert list(by) == ["kernel", "initrd", "dtb", "purgatory"]
        assert (p.kernel_entry - 0x80000) % (2 << 20) == 0  # 2 MiB aligned base + text_offset
        assert by["kernel"].mem == p.kernel_entry and by["kernel"].memsz == 0x300000 and by["kernel"].data is image
        assert p.kernel_entry == kernel_entry  # the lowest 2 MiB aligned block with room + text_offset
        assert by["initrd"].mem >= p.kernel_entry + 0x300000 and by["initrd"].memsz == 0x2000
        chosen = fdt.parse(by["dtb"].data).node("/chosen")
        assert chosen.get_int("linux,initrd-start") == by["initrd"].mem
        assert chosen.get_int("linux,initrd-end") == by["initrd"].mem + 5000
        assert chosen.get_str("bootargs") == "console=ttyAMA0"
        assert p.dtb == by["dtb"].mem and p.entry == by["purgatory"].mem
        assert struct.unpack_from("<QQ", by["purgatory"].data, 24) == (p.dtb, p.kernel_entry)
    p = kexec_arm64.plan(image, None, "", fdt.serialize(_tree()), IOMEM_DIRECT)
    assert [s.name for s in p.segments] == ["kernel", "dtb", "purgatory"]
    assert "linux,initrd-start" not in fdt.parse(p.segments[1].data).node("/chosen").props


def test_plan_skips_holes_and_reports_no_room() -> None:
    iomem = "40000000-40ffffff : System RAM\n  40100000-401fffff : reserved\n"
    p = kexec_arm64.plan(_image(image_size=0x200000), b"x" * 0x100000, "", fdt.serialize(_tree()), iomem)
    _check_plan(p, kexec_segments.parse_iomem(iomem))
    assert p.kernel_entry == 0x40200000  # the 2 MiB block at 0x40000000 is cut by the reserved range
    with pytest.raises(InitError, match="no room for the initrd .* 0x40000000-0x400fffff, 0x40200000-0x40ffffff"):
        kexec_arm64.plan(_image(image_size=0x200000), b"x" * 0x2000000, "", fdt.serialize(_tree()), iomem)
    with pytest.raises(InitError, match="no room for the kernel"):
        kexec_arm64.plan(_image(image_size=0x2000000), None, "", fdt.serialize(_tree()), iomem)
    with pytest.raises(InitError, match="bad magic"):
        kexec_arm64.plan(_image(), None, "", b"\0" * 64, IOMEM_DIRECT)


def test_allocator_first_fit_above_floor() -> None:
    a = kexec_segments.Allocator([(0x1000, 0x10000)], 0x1000)
    assert a.take("a", 1, 0x1000) == (0x1000, 0x1000)
    assert a.take("b", 0x1001, 0x1000) == (0x2000, 0x2000)
    assert a.take("c", 10, 0x4000) == (0x4000, 0x1000)
    assert a.take("d", 10, 0x1000, floor=0x9000) == (0x9000, 0x1000)
    assert a.take("e", 10, 0x1000) == (0x5000, 0x1000)


# ---- purgatory ----

#: The stub, as GNU as encodes it (see kexec_arm64's encoding table):
#:   0: 580000c0  ldr x0, 0x18      4: 580000e4  ldr x4, 0x20
#:   8: aa1f03e1  mov x1, xzr       c: aa1f03e2  mov x2, xzr      10: aa1f03e3  mov x3, xzr
#:  14: d61f0080  br x4            18: .quad dtb                 20: .quad kernel entry
PURGATORY_WORDS = [0x580000C0, 0x580000E4, 0xAA1F03E1, 0xAA1F03E2, 0xAA1F03E3, 0xD61F0080]


def test_purgatory_bytes() -> None:
    code = kexec_arm64.purgatory(0x44EE3000, 0x42800000)
    assert len(code) == 40
    assert list(struct.unpack_from("<6I", code)) == PURGATORY_WORDS
    assert struct.unpack_from("<QQ", code, 24) == (0x44EE3000, 0x42800000)
    assert kexec_arm64.ldr_literal(1, -8) == 0x58FFFFC1  # negative offsets wrap into imm19
    with pytest.raises(ValueError):
        kexec_arm64.ldr_literal(0, 2)


def test_purgatory_matches_gnu_as(tmp_path: Path) -> None:
    gas, objcopy = shutil.which("aarch64-linux-gnu-as"), shutil.which("aarch64-linux-gnu-objcopy")
    if not (gas and objcopy):
        pytest.skip("binutils-aarch64-linux-gnu is not installed")
    src = tmp_path / "p.s"
    src.write_text("ldr x0, dtb\nldr x4, entry\nmov x1, xzr\nmov x2, xzr\nmov x3, xzr\nbr x4\n"
                   "dtb: .quad 0x1122334455667788\nentry: .quad 0x40280000\n")
    subprocess.run([gas, str(src), "-o", str(tmp_path / "p.o")], check=True)
    subprocess.run([objcopy, "-O", "binary", "-j", ".text", str(tmp_path / "p.o"), str(tmp_path / "p.bin")],
                   check=True)
    assert kexec_arm64.purgatory(0x1122334455667788, 0x40280000) == (tmp_path / "p.bin").read_bytes()


# ---- syscall and dispatch ----

def test_kexec_load_numbers() -> None:
    assert linux.syscall_number("kexec_load", "aarch64") == 104
    assert linux.syscall_number("kexec_load", "x86_64") == 246
    assert linux.KEXEC_ARCH_AARCH64 == 0xB70000
    assert linux.ctypes.sizeof(linux.KexecSegment) == 32
    with pytest.raises(OSError, match="segment 0 has 3 bytes for 2 bytes"):
        linux.kexec_load(0, [(b"abc", 0, 2)], 0)


def test_kexec_load_passes_a_mapped_file_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel mapped by map_file reaches kexec_load as a pointer into the mapping (no copy), bytes as a
    pointer into the bytes object; an empty file maps to b"" and a missing one is an InitError naming it."""
    data = os.urandom(3 * 4096 + 5)
    (tmp_path / "Image").write_bytes(data)
    mapped = kexec_segments.map_file(str(tmp_path / "Image"), "the kernel")
    assert isinstance(mapped, memoryview) and mapped == data
    (tmp_path / "empty").write_bytes(b"")
    assert kexec_segments.map_file(str(tmp_path / "empty"), "initrd") == b""
    with pytest.raises(InitError, match=r"kexec: cannot read initrd .*/missing: No such file"):
        kexec_segments.map_file(str(tmp_path / "missing"), "initrd")
    seen: list[tuple[int, int, bytes]] = []

    class Syscall:
        restype = None

        def __call__(self, nr, entry, count, segments, flags) -> int:
            for seg in segments._obj[:count.value]:
                seen.append((seg.buf, seg.bufsz, linux.ctypes.string_at(seg.buf, seg.bufsz)))
            return 0

    monkeypatch.setattr(linux, "libc", lambda: type("Libc", (), {"syscall": Syscall()})())
    dtb = b"\xd0\x0d\xfe\xed tree"
    segments = [(mapped, 0x200000, 4 * 4096), (mapped[4096:], 0x400000, 3 * 4096), (dtb, 0x800000, 4096)]
    linux.kexec_load(0x1000, segments, 0)
    start = linux.ctypes.addressof((linux.ctypes.c_char * len(mapped)).from_buffer(mapped))
    assert [(addr - start, size) for addr, size, _ in seen[:2]] == [(0, len(data)), (4096, len(data) - 4096)]
    assert [body for _, _, body in seen] == [data, data[4096:], dtb]


def test_load_falls_back_to_kexec_load_on_enosys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kexec, "WORKDIR", str(tmp_path))
    vmlinuz = tmp_path / "vmlinuz"
    vmlinuz.write_bytes(gzip.compress(_image()))
    calls: list[tuple] = []

    def file_load(kfd, ifd, cmdline):
        calls.append(("file", open(f"/proc/self/fd/{kfd}", "rb").read(60)[56:60]))
        raise OSError(errno.ENOSYS, "nope")

    def arm64_load(kernel, initrd, cmdline, image):
        calls.append(("load", kernel, initrd, cmdline, image == _image()))
        return kexec_arm64.Plan(1, 2, 3, [])

    monkeypatch.setattr(linux, "kexec_file_load", file_load)
    monkeypatch.setattr(kexec_arm64, "load", arm64_load)
    kexec.load(str(vmlinuz), None, "c", "aarch64")
    assert calls == [("file", b"ARM\x64"), ("load", str(tmp_path / "kernel-Image"), None, "c", True)]  # gunzipped
    assert not (tmp_path / "kernel-Image").exists()  # the temporary raw Image is gone once unused
    with pytest.raises(InitError, match="kexec_file_load.*no kexec_file_load"):
        _x86_enosys(tmp_path)

    def refused(kfd, ifd, cmdline):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(linux, "kexec_file_load", refused)
    with pytest.raises(InitError, match="not permitted"):
        kexec.load(str(vmlinuz), None, "c", "aarch64")


def test_zboot_kernel_reaches_kexec_load_unwrapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An EFI zboot arm64 kernel (Fedora's, our cloud kernel) on a first kernel without kexec_file_load: our loader
    gets the unwrapped Image, which is removed only after it was staged."""
    monkeypatch.setattr(kexec, "WORKDIR", str(tmp_path))
    payload = subprocess.run(["zstd", "-q", "-c"], input=_image(), capture_output=True, check=True).stdout
    head = bytearray(b"MZ\0\0zimg" + struct.pack("<II", 0x100, len(payload)) + bytes(8) + b"zstd")
    zboot = tmp_path / "vmlinuz"
    zboot.write_bytes(bytes(head).ljust(0x100, b"\0") + payload)
    staged: list[bytes] = []

    def enosys(kfd, ifd, cmdline):
        raise OSError(errno.ENOSYS, "nope")

    def arm64_load(kernel, initrd, cmdline, image):
        staged.append(kexec_arm64.read_image(kernel) if image is None else b"in memory")
        return kexec_arm64.Plan(1, 2, 3, [])

    monkeypatch.setattr(linux, "kexec_file_load", enosys)
    monkeypatch.setattr(kexec_arm64, "load", arm64_load)
    kexec.load(str(zboot), None, "c", "aarch64")
    assert staged == [_image()]
    assert not (tmp_path / "kernel-zboot.img").exists()


def _x86_enosys(tmp_path: Path) -> None:
    bz = bytearray(1024)
    bz[0x202:0x206] = b"HdrS"
    k = tmp_path / "bzImage"
    k.write_bytes(bytes(bz))
    kexec.load(str(k), None, "c", "x86_64")  # our x86_64 loader refuses this header; kexec_file_load: ENOSYS


def test_load_reports_missing_files_as_init_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kexec, "WORKDIR", str(tmp_path))
    with pytest.raises(InitError, match="No such file"):
        kexec.load(str(tmp_path / "missing"), None, "", "aarch64")
    k = tmp_path / "Image"
    k.write_bytes(_image())
    with pytest.raises(InitError, match="cannot open the initrd .*missing-initrd"):
        kexec.load(str(k), str(tmp_path / "missing-initrd"), "", "aarch64")
