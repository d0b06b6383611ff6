"""Harness pieces that need no VM: PE checks, console cleaning, raw-REPL framing, firmware discovery."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

import arches
from cloudboot.errors import CloudBootError
from cloudboot.harness import console
from cloudboot.harness.firmware import find_firmware
from cloudboot.harness.repl import FirmwareError, parse_response
from cloudboot.image.pe import PeImage


def _pe(tmp_path: Path, machine: int, magic: int = 0x20B, subsystem: int = 10) -> Path:
    data = bytearray(1024)
    data[:2] = b"MZ"
    struct.pack_into("<I", data, 0x3C, 0x80)
    data[0x80:0x84] = b"PE\0\0"
    struct.pack_into("<HH", data, 0x84, machine, 0)  # no sections
    struct.pack_into("<H", data, 0x94, 240)  # SizeOfOptionalHeader
    struct.pack_into("<H", data, 0x98, magic)
    struct.pack_into("<H", data, 0x98 + 68, subsystem)
    path = tmp_path / "app.efi"
    path.write_bytes(bytes(data))
    return path


def check_efi(path: Path, arch: str) -> None:
    PeImage(path.read_bytes(), str(path)).check_efi(arch)


def test_check_efi_accepts_matching_machine(tmp_path: Path) -> None:
    for arch in arches.ARCHES:
        check_efi(_pe(tmp_path, arch.pe_machine), arch.name)
        check_efi(_pe(tmp_path, arch.pe_machine), arch.go)


@pytest.mark.parametrize(("kw", "reason"), [
    ({"machine": 0xAA64}, "machine 0xaa64 (aarch64) is not x86_64's (0x8664)"),
    ({"machine": 0x8664, "magic": 0x10B}, "not a PE32+ image: optional header magic 0x10b"),
    ({"machine": 0x8664, "subsystem": 3}, "subsystem 3 is not an EFI application or driver"),
])
def test_check_efi_refuses_with_reason(tmp_path: Path, kw: dict, reason: str) -> None:
    with pytest.raises(CloudBootError, match=re.escape(reason)):
        check_efi(_pe(tmp_path, **kw), "x86_64")


def test_check_efi_refuses_non_pe(tmp_path: Path) -> None:
    path = tmp_path / "x.efi"
    path.write_bytes(b"\x7fELF" + bytes(100))
    with pytest.raises(CloudBootError, match="no MZ header"):
        check_efi(path, "x86_64")


def test_cli_refuses_non_pe_image_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "notpe.efi"
    path.write_bytes(b"hello")
    proc = subprocess.run([sys.executable, "-m", "cloudboot", "qemu", "--arch", "riscv64", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert f"{path}: not a PE32+ image: no MZ header" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_console_clean_removes_escapes_and_firmware_noise() -> None:
    raw = (b"\x1b[2J\x1b[01;01H\x1b[=3hcloud-boot firmware 0.1.0 (MicroPython 1.25.0) loongarch64\r\n"
           b"OKPROGRESS CODE: V02010000 I0\r\n1 512\r\n")
    assert console.clean(raw) == b"cloud-boot firmware 0.1.0 (MicroPython 1.25.0) loongarch64\r\nOK1 512\r\n"


def test_console_clean_moves_kernel_records_out_of_a_cut_line() -> None:
    """printk writes to the UART while a program's line is still going out: the records go after that line."""
    raw = (b"cloud-boot: [    3.100000] init: Pyt[    3.200000] random: crng init done\r\n"
           b"[    3.200100] virtio_blk virtio1: [vda] 8 512-byte blocks\r\nhon 3.11.2 on x86_64[   23.2] no\r\n"
           b"login: [    9.000000] rcu: INFO: stall\r\nroot\r\n"
           b"cloud-boot: [    4.000000] phase mounts\r\n"  # our own prefix: its timestamp stays
           b"half a li[    5.000000] line whose rest is not here yet\r\n")
    assert console.clean(raw).split(b"\r\n") == [
        b"cloud-boot: [    3.100000] init: Python 3.11.2 on x86_64[   23.2] no",
        b"[    3.200000] random: crng init done",
        b"[    3.200100] virtio_blk virtio1: [vda] 8 512-byte blocks",
        b"login: root", b"[    9.000000] rcu: INFO: stall",
        b"cloud-boot: [    4.000000] phase mounts",
        b"half a li[    5.000000] line whose rest is not here yet", b""]
    # Cut twice: both runs leave the line.
    raw = b"a[    1.000000] k1\nb[    2.000000] k2\nc\n"
    assert console.clean(raw) == b"abc\n[    2.000000] k2\n[    1.000000] k1\n"


def test_parse_response_framing() -> None:
    assert parse_response(b"OK2\r\n\x04\x04") == ("2\n", "")
    assert parse_response(b"OKa^DTraceback (most recent call last):\r\nValueError: x\r\n^D") == (
        "a", "Traceback (most recent call last):\nValueError: x\n")
    with pytest.raises(CloudBootError, match="not framed"):
        parse_response(b"OK2\r\n")
    with pytest.raises(CloudBootError, match="did not acknowledge"):
        parse_response(b"raw REPL; CTRL-B")


def test_firmware_error_carries_type_and_traceback() -> None:
    err = FirmwareError("x86_64", "Traceback (most recent call last):\n  File \"<stdin>\"\nKeyError: 'k'\n")
    assert err.exc_type == "KeyError" and "KeyError: 'k'" in str(err)


def test_machine_accepts_every_arch_spelling() -> None:
    from cloudboot.harness.machine import Machine

    for spelling, name in (("amd64", "x86_64"), ("x64", "x86_64"), ("loong64", "loongarch64")):
        m = Machine(spelling)
        m.kill()
        assert m.arch == name
    with pytest.raises(arches.ArchError, match="unknown architecture 'sparc'"):
        Machine("sparc")


def test_firmware_override_and_missing_file_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, nvram = tmp_path / "CODE.fd", tmp_path / "VARS.fd"
    code.write_bytes(b"c")
    nvram.write_bytes(b"v")
    monkeypatch.setenv("CLOUDBOOT_FIRMWARE_RISCV64_CODE", str(code))
    monkeypatch.setenv("CLOUDBOOT_FIRMWARE_RISCV64_VARS", str(nvram))
    assert find_firmware("riscv64").code == code
    monkeypatch.setenv("CLOUDBOOT_FIRMWARE_RISCV64_VARS", str(tmp_path / "gone.fd"))
    with pytest.raises(CloudBootError, match="gone.fd does not exist"):
        find_firmware("riscv64")


def test_descriptor_discovery_finds_edk2_for_every_arch() -> None:
    for arch in arches.NAMES:  # `make test` installs them first
        fw = find_firmware(arch)
        assert fw.code.is_file() and fw.vars.is_file() and fw.descriptor is not None


def test_command_line_devices_and_vars_copy(tmp_path: Path) -> None:
    from cloudboot.harness.machine import Machine
    from tests.udifwrite import write

    disk, qcow, dmg = tmp_path / "a.img", tmp_path / "b.qcow2", tmp_path / "c.dmg"
    disk.write_bytes(bytes(4096))
    qcow.write_bytes(b"QFI\xfb" + bytes(4092))
    write(disk, dmg, "UDZO")
    m = Machine("riscv64", efi=tmp_path / "app.efi", append="x y", disks=[disk, qcow, dmg], nics=1)
    try:
        cmd = m.command()
        line = " ".join(cmd)
        assert cmd[cmd.index("-M") + 1] == "virt,acpi=off"
        assert "-kernel" in cmd and cmd[cmd.index("-append") + 1] == "x y"
        assert f"format=raw,file={disk}" in line and f"format=qcow2,file={qcow}" in line
        assert f"format=dmg,file={dmg},readonly=on" in line  # content, not the name, tells the format
        # every disk has a boot index (OVMF connects only those once any device has one)
        assert "virtio-blk-pci,drive=d0,bootindex=1" in line and "virtio-blk-pci,drive=d1,bootindex=2" in line
        assert "virtio-net-pci,netdev=n0,romfile=" in line and "-net none" not in line
        assert "readonly=on" in line.split("unit=0")[1].split(" ")[0]
        vars_copy = m.workdir / "vars.fd"
        assert vars_copy.read_bytes() == find_firmware("riscv64").vars.read_bytes()
        assert f"unit=1,file={vars_copy}" in line
        assert "menu=on,splash-time=0" in cmd and f"unix:{m.qmp_path},server=on,wait=off" in cmd
    finally:
        m.kill()
    assert not m.workdir.exists()
    plain = Machine("riscv64", linux=False)
    try:
        cmd = plain.command()
        assert cmd[cmd.index("-M") + 1] == "virt" and "-net" in cmd and cmd[cmd.index("-net") + 1] == "none"
    finally:
        plain.kill()


def test_direct_kernel_boot_command_line(tmp_path: Path) -> None:
    """trial.machine: QEMU's own kernel boot (no EDK2), read-only disks with serial dN unless writable."""
    from cloudboot.harness import trial

    kernel, initrd, disk = tmp_path / "vmlinuz", tmp_path / "initrd", tmp_path / "d.img"
    for f in (kernel, initrd, disk):
        f.write_bytes(bytes(4096))
    m = trial.machine("arm64", kernel, initrd, "panic=-1 x", [disk], nic=True)
    try:
        cmd = m.command()
        line = " ".join(cmd)
        assert cmd[cmd.index("-append") + 1] == f"console=ttyAMA0 {trial.GUEST_CMDLINE} panic=-1 x"
        assert cmd[cmd.index("-kernel") + 1] == str(kernel) and cmd[cmd.index("-initrd") + 1] == str(initrd)
        assert "pflash" not in line and "-boot" not in cmd and "bootindex" not in line
        assert cmd[cmd.index("-smp") + 1] == "2" and "-no-reboot" in cmd and "-cpu" in cmd
        assert f"format=raw,file={disk},readonly=on" in line and "virtio-blk-pci,drive=d0,serial=d0" in line
        assert "virtio-net-pci,netdev=n0" in line
        assert not (m.workdir / "vars.fd").exists()
    finally:
        m.kill()
    m = trial.machine("amd64", kernel, initrd, "", [disk, disk], efi=True, writable=True)
    try:
        line = " ".join(m.command())
        assert "if=pflash" in line and "readonly=on" not in line.split("unit=1")[1] and "-net none" in line
        assert "drive=d1,bootindex=2,serial=d1" in line
    finally:
        m.kill()


def test_expect_line_reads_whole_lines_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """expect_line: per line (escapes, CR/LF stripped; ^/$ anchor to the line), consuming, the unterminated last
    line only once the process has exited; a timeout is HarnessTimeout with the transcript's tail."""
    from cloudboot.harness.machine import HarnessTimeout, Machine

    script = ("import sys, time\nw = sys.stdout.write\n"
              "w('boot: one\\r\\n\\x1b[1mFATAL: \\x1b[0mbad value x\\r\\n>>> 42 1\\r\\n'); sys.stdout.flush()\n"
              "time.sleep(0.3)\nw('tail wit'); sys.stdout.flush(); time.sleep(0.3); w('hout newline')\n")
    m = Machine("x86_64")
    monkeypatch.setattr(m, "command", lambda: [sys.executable, "-c", script])
    with m:
        fatal = m.expect_line(r"FATAL: ", 30)
        assert fatal.text == "FATAL: bad value x" and fatal.at >= 0
        assert m.expect_line(r"^(>>> )?42 1$", 30).text == ">>> 42 1"
        assert m.expect_line(r"^tail without newline$", 30).text == "tail without newline"
        assert m.lines()[:3] == ["boot: one", "FATAL: bad value x", ">>> 42 1"]
        with pytest.raises(HarnessTimeout, match="boot: one"):  # consumed: not found again
            m.expect_line(r"boot: one", 5)


def test_output_still_in_the_pipe_when_qemu_exits_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """QEMU may exit before the reader has drained its output: the last line counts once the output has ended,
    not at the exit (a slow reader here; on a loaded machine this raced)."""
    from cloudboot.harness import machine

    real_read = machine.os.read

    def slow_read(fd: int, n: int) -> bytes:
        time.sleep(0.5)  # the process has long exited when its output is read
        return real_read(fd, n)

    monkeypatch.setattr(machine.os, "read", slow_read)
    m = machine.Machine("x86_64")
    monkeypatch.setattr(m, "command", lambda: [sys.executable, "-c", "print('first'); print('last', end='')"])
    with m:
        assert m.expect_line(r"^last$", 30).text == "last"


def test_missing_qemu_names_the_debian_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cloudboot.harness.machine import Machine

    monkeypatch.setenv("PATH", str(tmp_path))
    m = Machine("loongarch64")
    try:
        with pytest.raises(CloudBootError, match="'qemu-system-loongarch64' not found: install the Debian package "
                                                 "'qemu-system-misc'"):
            m.command()
    finally:
        m.kill()


def test_kernel_images_in_both_debian_package_layouts(tmp_path: Path) -> None:
    """linux-image-<v> with /boot/vmlinuz-<v> (Debian 13), sid's linux-binary-<v> with
    /usr/lib/modules/<v>/vmlinuz; the real packages of both layouts: guests x86_64 (trixie), riscv64 (sid)."""
    from cloudboot.harness.guests import guest
    from cloudboot.initramfs.debian import find_image

    for rel in ("boot/vmlinuz-6.12.1-amd64", "usr/lib/modules/6.12.1-amd64/vmlinuz", "boot/vmlinux-6.12.1-amd64"):
        tree = tmp_path / rel.replace("/", "_")
        (tree / rel).parent.mkdir(parents=True)
        (tree / rel).write_bytes(b"MZ")
        (tree / "boot/vmlinuz-6.1.0-9-amd64").parent.mkdir(exist_ok=True)
        (tree / "boot/vmlinuz-6.1.0-9-amd64").write_bytes(b"an older kernel")
        assert find_image(tree, "6.12.1-amd64", "linux-image-6.12.1-amd64") == tree / rel
    with pytest.raises(CloudBootError, match=r"no kernel image for 7\.0 in linux-binary-7\.0 \(looked for "
                                             r"boot/vmlinuz-7\.0, .*usr/lib/modules/7\.0/vmlinuz"):
        find_image(tmp_path, "7.0", "linux-binary-7.0")
    for arch in ("x86_64", "riscv64"):
        g = guest(arch)
        assert g.kernel.read_bytes()[:2] == b"MZ", arch  # the EFI stub's PE header
        assert g.version.endswith(("amd64", "riscv64")), g.version


_LOST_TIMER = (b"[  232.210239] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\r\n"
               b"[  232.215856] rcu: rcu_preempt kthread timer wakeup didn't happen for 5251 jiffies! g-1147 f0x0\r\n"
               b"[  232.217771] rcu: \tPossible timer handling issue on cpu=1 timer-softirq=3\r\n")


def test_a_guest_that_lost_a_vcpu_timer_fails_at_once_as_guest_stalled() -> None:
    """The kernel's report of a vCPU whose timer never fired ends the wait with GuestStalled (pytest runs such a test
    once more), long before the timeout; a CPU stall of the guest's own making stays an ordinary timeout."""
    from cloudboot.harness.machine import GuestStalled, HarnessTimeout, Machine

    def machine(transcript: bytes) -> Machine:
        m = Machine("x86_64")
        m.proc = subprocess.Popen(["sleep", "600"])
        m.raw += transcript
        return m

    m = machine(b"cloud-boot: init\r\n" + _LOST_TIMER)
    with pytest.raises(GuestStalled, match=r"waiting for 'FATAL: ': a vCPU stopped taking timer interrupts"):
        m.expect_line("FATAL: ", 600)
    assert m.proc.poll() is not None  # killed
    own = b"[   30.1] rcu: INFO: rcu_preempt self-detected stall on CPU\r\n[   30.2] rcu: \t1-....: (5250 ticks)\r\n"
    m = machine(own)
    with pytest.raises(HarnessTimeout, match="timed out after 0 s") as e:
        m.expect_line("FATAL: ", 0.2)
    assert not isinstance(e.value, GuestStalled)


def test_pytest_runs_a_guest_stalled_test_once_more(tmp_path: Path) -> None:
    """The project's pytest options (pyproject.toml) rerun a test that failed with GuestStalled, and only that."""
    (tmp_path / "test_x.py").write_text(
        "from pathlib import Path\nfrom cloudboot.harness.machine import GuestStalled\n\n"
        "def test_stalls_once(tmp_path_factory):\n"
        f"    mark = Path({str(tmp_path / 'ran')!r})\n"
        "    if not mark.exists():\n"
        "        mark.write_text('')\n"
        "        raise GuestStalled('x86_64: waiting for x: a vCPU stopped taking timer interrupts')\n\n"
        "def test_other_failure():\n    raise AssertionError('ours')\n")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", str(root / "pyproject.toml"),
                           "--rootdir", str(tmp_path), str(tmp_path / "test_x.py")],
                          capture_output=True, text=True, cwd=root)
    assert "1 failed, 1 passed, 1 rerun" in proc.stdout, proc.stdout + proc.stderr
