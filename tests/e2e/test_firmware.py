"""The firmware runtime booted under QEMU + EDK2 on all four arches, driven through its raw REPL."""

from __future__ import annotations

import pytest

from cloudboot.harness.repl import FirmwareError, Repl
from tests.e2e.conftest import firmware_file

pytestmark = pytest.mark.e2e


def test_exec_returns_output(firmware_repl) -> None:
    arch, repl, _ = firmware_repl
    assert repl.exec("print(1+1)") == "2\n"
    assert repl.exec("import uefi; print(uefi.ARCH)") == f"{arch}\n"


def test_exception_in_firmware_raises_in_test(firmware_repl) -> None:
    _, repl, _ = firmware_repl
    with pytest.raises(FirmwareError) as info:
        repl.exec("def f():\n    raise ValueError('boom %d' % 42)\nf()")
    assert info.value.exc_type == "ValueError"
    assert "boom 42" in info.value.traceback
    assert repl.exec("print('still alive')") == "still alive\n"  # the REPL survives


def test_exec_of_many_windows_and_non_ascii_text(firmware_repl) -> None:
    """1 KB of code: eight raw-paste windows (the serial input path is slowest on x86_64, ~200 B/s)."""
    _, repl, _ = firmware_repl
    code = "t = 0\n" + "".join(f"t += {i}  # line {i:04d} of a longer program\n" for i in range(25))
    assert repl.exec(code + "print(t)", timeout=120) == f"{sum(range(25))}\n"
    assert repl.exec("print('grüße', len('grüße'))") == "grüße 5\n"


def test_reads_own_load_options(firmware_repl) -> None:
    arch, repl, _ = firmware_repl
    assert repl.exec("import uefi; print(uefi.load_options())").split() == ["cloudboot.repl", f"cb.test={arch}"]


def test_firmware_vendor_is_edk2(firmware_repl) -> None:
    _, repl, _ = firmware_repl
    assert "EDK II" in repl.exec("import uefi; print(uefi.firmware_vendor())")


def test_variable_round_trip(firmware_repl) -> None:
    arch, repl, _ = firmware_repl
    value = f"console=ttyS0 cb.arch={arch}"
    out = repl.exec(
        "import uefi\n"
        f"uefi.set_variable('CloudBootCmdline', b'{value}\\r\\n')\n"
        "print(repr(uefi.get_variable('CloudBootCmdline')))\n"
        "print(uefi.cmdline_variable())\n"
        "uefi.set_variable('CloudBootCmdline', b'console=ttyS0 \\xff\\x01junk')\n"
        "print(repr(uefi.cmdline_variable()))\n"
        "uefi.set_variable('CloudBootCmdline', b'')\n"
        "print(uefi.get_variable('CloudBootCmdline'))\n"
        "import loader\n"
        "uefi.set_variable('CloudBootTarget', b'../../evil')\n"
        "print(loader.target_name())\n"
        "uefi.set_variable('CloudBootTarget', b'')\n"
    )
    assert out.splitlines() == [repr(f"{value}\r\n".encode()), value,
                                "cloud-boot: CloudBootCmdline ignored: byte 0xff at offset 14 is not printable ASCII",
                                "''", "None",
                                "cloud-boot: CloudBootTarget ignored: '/' at offset 2"
                                " (want at most 64 of A-Z a-z 0-9 . _ -)",
                                "cloud-boot"]


def test_cmdline_tokenized_as_init_does(firmware_repl) -> None:
    """REFERENCE §1's vectors tokenized inside the firmware (bootplan.cmdline, frozen) give what the init's
    cmdline gives on CPython; the loader's options merge LoadOptions and CloudBootCmdline in that grammar and
    report malformed and unknown keys as the init would refuse or warn about them."""
    import json

    from cloudboot.init import cmdline as init_cmdline
    from tests.portable.test_cmdline_arches import VECTORS

    arch, repl, _ = firmware_repl
    texts = [text for text, _ in VECTORS]
    out = repl.exec(
        "import json\n"
        "from bootplan import cmdline\n"
        f"for t in json.loads({json.dumps(texts)!r}):\n"
        "    print(json.dumps([cmdline.split(t), sorted(cmdline.parse(t).items())]))\n", timeout=120)
    got = [json.loads(line) for line in out.splitlines()]
    want = [[init_cmdline.split(t), sorted([k, v] for k, v in init_cmdline.parse(t).items())] for t in texts]
    assert got == want
    assert [dict(pairs) for _, pairs in got] == [parsed for _, parsed in VECTORS]

    out = repl.exec(
        "import json, uefi, loader\n"
        "uefi.set_variable('CloudBootCmdline', b'cloudboot.menu.prompt=\"Pick one:\" cloudboot.menu=yes '\n"
        "                  b'cloudboot.bogus cloudboot.menu.timeout=1m30s')\n"
        "try:\n"
        "    print(json.dumps(sorted(loader.options(report=True).items())))\n"
        "finally:\n"
        "    uefi.set_variable('CloudBootCmdline', b'')\n", timeout=120)
    lines = out.splitlines()
    assert lines[:2] == ["cloud-boot: bad kernel command line value cloudboot.menu='yes': want one of '0', '1' "
                         "(ignored)", "cloud-boot: unknown key cloudboot.bogus='1' ignored"], out
    assert dict(json.loads(lines[2])) == {"cloudboot.repl": "1", "cb.test": arch,
                                          "cloudboot.menu.prompt": "Pick one:", "cloudboot.bogus": "1",
                                          "cloudboot.menu.timeout": "1m30s"}


def test_blockio_reads_attached_disk(firmware_repl) -> None:
    _, repl, disk = firmware_repl
    out = repl.exec(
        "import uefi, binascii\n"
        "devs = [d for d in uefi.block_devices(partitions=False) if d.size == 1 << 20]\n"
        "print(len(devs), devs[0].block_size)\n"
        "print(binascii.hexlify(devs[0].read_blocks(0, 8)).decode())\n"
    )
    count, block_size, data = out.split()
    assert (count, block_size) == ("1", "512")
    assert bytes.fromhex(data) == disk.read_bytes()[:8 * 512]


def test_gc_heap_grows_and_collects(firmware_repl) -> None:
    _, repl, _ = firmware_repl
    out = repl.exec(
        "import gc\n"
        "keep = [bytearray(1 << 20) for _ in range(96)]\n"  # more than the 64 MiB initial heap
        "print(sum(len(b) for b in keep))\n"
        "del keep\n"
        "gc.collect()\n"
        "def depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n"
        "print(depth(500))\n", timeout=120)
    assert out.split() == [str(96 << 20), "500"]


def test_zstd_frames_decode_through_libzstd(firmware_repl) -> None:
    """compat.zstd hands frames to the firmware's _libzstd (libzstd in C): output, checksum and limit errors."""
    import hashlib
    import subprocess

    _, repl, _ = firmware_repl
    raw = bytes((i * i * 7 + i // 3) % 251 for i in range(300000))  # several 128 KiB blocks, ~800 B as zstd
    frame = subprocess.run(["zstd", "-q", "-19", "--check", "-c"], input=raw, capture_output=True,
                           check=True).stdout
    skippable = bytes.fromhex("5a2a4d18") + (3).to_bytes(4, "little") + b"pad"
    out = repl.exec(
        "import hashlib, binascii, _libzstd\n"
        "from compat import zstd\n"
        f"f = binascii.unhexlify('{frame.hex()}')\n"
        f"two = f + binascii.unhexlify('{skippable.hex()}') + f\n"
        "print(binascii.hexlify(hashlib.sha256(zstd.decompress(two)).digest()).decode())\n"
        "print(len(zstd.decompress(f + b'tail', single=True)))\n"
        "bad = f[:-4] + bytes(4)\n"
        "print(len(zstd.decompress(bad, check=False)))\n"
        "for data, kw in ((bad, {}), (f, {'max_output': 1000}), (f[:-40], {}), (b'\\x28\\xb5\\x2f\\xfd', {})):\n"
        "    try:\n"
        "        zstd.decompress(data, **kw)\n"
        "    except zstd.ZstdError as exc:\n"
        "        print('error:', exc)\n", timeout=180)
    lines = out.splitlines()
    assert lines[:3] == [hashlib.sha256(raw + raw).hexdigest(), str(len(raw)), str(len(raw))]
    errors = lines[3:]
    assert len(errors) == 4 and all(e.startswith("error: zstd: ") for e in errors), out
    assert "checksum" in errors[0] and "exceeds max_output" in errors[1] and errors[2].endswith("at byte 0")


@pytest.mark.parametrize("cpu", [(), ("-cpu", "max")], ids=["plain-c", "sha-ni"])
def test_sha256_and_unaligned_copies_match_cpython(machine, cpu: tuple[str, ...]) -> None:
    """x86_64's SHA-256 block function both ways (sha256_x86.c picks by CPUID: QEMU's default CPU has no SHA
    extensions, -cpu max has SHA-NI), whole and fed in odd pieces; and memcpy (memcopy.c) for every pair of
    alignments and the lengths around its 8-byte steps."""
    import hashlib

    m = machine("x86_64", efi=firmware_file("x86_64"), append="cloudboot.repl", extra=list(cpu))
    repl = Repl(m)
    repl.wait_banner(120)
    repl.enter()
    out = repl.exec(
        "import hashlib, binascii\n"
        "b = bytes(range(256)) * 4099\n"
        "h = hashlib.sha256()\n"
        "for i in range(0, len(b), 1000):\n    h.update(b[i:i + 1000])\n"
        "for d in (hashlib.sha256(b'abc').digest(), hashlib.sha256(b).digest(), h.digest()):\n"
        "    print(binascii.hexlify(d).decode())\n"
        "src = bytes(range(256)) * 20\n"
        "dst = bytearray(len(src) + 16)\n"
        "bad = 0\n"
        "for so in range(9):\n"
        "    for do in range(9):\n"
        "        for n in (0, 1, 7, 8, 15, 16, 17, 63, 100, 4099):\n"
        "            memoryview(dst)[do:do + n] = memoryview(src)[so:so + n]\n"
        "            bad += dst[do:do + n] != src[so:so + n]\n"
        "print('bad copies', bad)\n", timeout=180)
    data = bytes(range(256)) * 4099
    assert out.split() == [hashlib.sha256(b"abc").hexdigest(), hashlib.sha256(data).hexdigest(),
                           hashlib.sha256(data).hexdigest(), "bad", "copies", "0"], out


def test_poweroff_ends_qemu_with_status_zero(arch, machine) -> None:
    m = machine(arch, efi=firmware_file(arch), append="cloudboot.repl")
    repl = Repl(m)
    repl.wait_banner(120)
    repl.enter()
    m.send(b"import uefi\nuefi.poweroff()\x04")
    assert m.wait(60) == 0


def test_nic_appears_and_qmp_quit_ends_qemu(arch, machine) -> None:
    """A virtio-net NIC on user networking (no option ROM) gets a SimpleNetwork handle once connected; QMP
    answers while the firmware runs, and `quit` ends QEMU with status 0."""
    m = machine(arch, efi=firmware_file(arch), append="cloudboot.repl", nics=1)
    repl = Repl(m)
    repl.wait_banner(120)
    out = repl.exec("import uefi\n"
                    "snp = uefi.guid.guid_bytes('a19832b9-ac25-11d3-9a2d-0090273fc14d')\n"
                    "uefi.connect_all()\n"
                    "print(len(uefi.locate_handles(snp)))\n")
    assert out == "1\n"
    assert m.qmp("query-status")["status"] == "running"
    assert m.quit() == 0


def test_key_press_in_boot_window_enters_repl_from_esp(machine) -> None:
    """Booted as \\EFI\\BOOT\\BOOTX64.EFI from a FAT ESP (removable-media path, no LoadOptions)."""
    m = machine("x86_64", efi=firmware_file("x86_64"), esp=True)
    repl = Repl(m)
    repl.wait_banner(120)
    repl.enter()  # sees the prompt for a key, presses one, then enters raw mode
    assert "cloud-boot: press any key for the REPL" in m.text
    assert repl.exec("import uefi; print(repr(uefi.load_options()), 6*7)") in ("'' 42\n",)


def test_hanging_exec_is_killed_at_timeout_with_transcript(machine) -> None:
    from cloudboot.harness.machine import HarnessTimeout

    m = machine("aarch64", efi=firmware_file("aarch64"), append="cloudboot.repl")
    repl = Repl(m)
    repl.wait_banner(120)
    with pytest.raises(HarnessTimeout) as info:
        repl.exec("while True:\n    pass", timeout=5)
    assert "did not finish within 5 s" in str(info.value)
    assert "cloud-boot firmware" in str(info.value)  # the console transcript comes with it
    assert m.proc.poll() is not None  # QEMU was killed
