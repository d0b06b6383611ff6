"""Path C pieces on the host: EFI_LOAD_OPTION bytes (REFERENCE §5.2's examples), BootOrder edits, efivarfs
writes and reset (Python and the sh script, on a directory laid out like efivarfs), file-name sanitising,
staging (atomic, space checked, leftovers removed), cache-ESP discovery over real GPT images, and the
sink end to end with its faults (ESP full, efivarfs not writable): the boot order only changes after the
files are complete, and a failure never reboots."""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import struct
import subprocess
import uuid
from pathlib import Path

import pytest

from cloudboot.image import gpt
from cloudboot.init import efivars, esp, reboot
from cloudboot.init.errors import InitError
from cloudboot.init.target import Target

G = efivars.GLOBAL
PART_GUID = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"


# ---- load options ------------------------------------------------------------------------------------------

def test_short_form_example_bytes() -> None:
    """REFERENCE §5.2: description "d", \\foo.efi, no optional data: 36 bytes, exactly."""
    want = bytes.fromhex("01000000 1a00 6400 0000 0404 1600 5c00 6600 6f00 6f00 2e00 6500 6600 6900 0000 7fff 0400")
    assert efivars.load_option("d", efivars.file_path_node("\\foo.efi")) == want


def test_debian_example_bytes() -> None:
    """REFERENCE §5.2: target debian, initrd, `console=hvc0 ro`, short form: 206 bytes starting 01 00 00 00 44 00."""
    data = efivars.boot_entry("debian", "\\EFI\\Linux\\debian-vmlinuz.efi", "\\EFI\\Linux\\debian-initrd",
                              "console=hvc0 ro")
    assert len(data) == 206 and data[:6] == bytes.fromhex("010000004400")
    path = "\\EFI\\Linux\\debian-vmlinuz.efi".encode("utf-16-le") + b"\0\0"
    want = (struct.pack("<IH", 1, 68) + "cloud-boot debian".encode("utf-16-le") + b"\0\0"
            + struct.pack("<BBH", 4, 4, 64) + path + b"\x7f\xff\x04\x00"
            + "initrd=\\EFI\\Linux\\debian-initrd console=hvc0 ro".encode("utf-16-le") + b"\0\0")
    assert data == want


def test_full_device_path_and_parse() -> None:
    data = efivars.boot_entry("deb ian", "\\EFI\\Linux\\deb_ian-vmlinuz.efi", "", "console=ttyS0",
                              (1, 2048, 522207, PART_GUID))
    opt = efivars.parse_load_option(data)
    assert opt["attributes"] == 1 and opt["description"] == "cloud-boot deb ian"
    (k1, s1, hd), (k2, s2, _), end = opt["nodes"]
    assert (k1, s1, k2, s2, end[:2]) == (4, 1, 4, 4, (0x7F, 0xFF))
    assert hd == (bytes.fromhex("04012a00 01000000") + struct.pack("<QQ", 2048, 522207)
                  + uuid.UUID(PART_GUID).bytes_le + b"\x02\x02")
    assert uuid.UUID(PART_GUID).bytes_le[:4] == bytes.fromhex("e3bc684f")  # GPT's mixed-endian signature
    node = efivars.file_path_node("\\EFI\\Linux\\deb_ian-vmlinuz.efi")
    assert struct.unpack_from("<H", data, 4)[0] == 42 + len(node) + 4
    assert opt["optional"] == "console=ttyS0".encode("utf-16-le") + b"\0\0"  # no initrd: no initrd= word
    assert efivars.describe_load_option(data) == (
        f"cloud-boot deb ian\tHD(1,GPT,{PART_GUID},0x800,0x7f7df)/File(\\EFI\\Linux\\deb_ian-vmlinuz.efi) "
        "console=ttyS0")
    bare = efivars.boot_entry("t", "\\k.efi", "", "")
    assert efivars.parse_load_option(bare)["optional"] == b""  # empty arguments: no optional data at all


@pytest.mark.parametrize("data, why", [
    (b"\x01\x00", "shorter than its 6-byte header"),
    (struct.pack("<IH", 1, 4) + b"d\x00", "no NUL terminator"),
    (struct.pack("<IH", 1, 40) + b"d\x00\x00\x00" + b"\x7f\xff\x04\x00", "runs past the end"),
    (struct.pack("<IH", 1, 4) + b"\x00\x00" + b"\x04\x04\x02\x00", "bad length 2"),
    (struct.pack("<IH", 1, 4) + b"\x00\x00" + b"\x04\x04\x04\x00", "does not end with an END node"),
])
def test_bad_load_options(data: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        efivars.parse_load_option(data)


# ---- BootOrder ----------------------------------------------------------------------------------------------

def test_boot_order_updates() -> None:
    assert efivars.pack_boot_order(efivars.prepend([0, 2], 1)) == bytes.fromhex("010000000200")  # REFERENCE §5.2
    assert efivars.prepend([1, 0, 2], 1) == [1, 0, 2]  # already first: unchanged
    assert efivars.prepend([0, 1, 2, 1], 1) == [1, 0, 2]  # moved to the front once
    assert efivars.prepend([], 1) == [1]
    assert efivars.without([1, 0, 3, 1, 2], {1, 3}) == [0, 2]  # only those slots
    assert efivars.boot_order(bytes.fromhex("0100ff00")) == [1, 255] and efivars.boot_order(None) == []
    with pytest.raises(ValueError, match="odd length"):
        efivars.boot_order(b"\x01")


# ---- efivarfs and reset ---------------------------------------------------------------------------------------

def _option(description: str) -> bytes:
    return efivars.load_option(description, efivars.file_path_node("\\x.efi"))


def _fake_vars(root: Path) -> efivars.Efivarfs:
    """A machine after Path C: Boot0000 (firmware), Boot0001 ours, Boot0002 (another OS), Boot0003 ours (older),
    BootOrder 0001,0000,0003,0002, BootNext 0003, the loader's two variables."""
    store = efivars.Efivarfs(str(root))
    store.write("Boot0000", _option("UiApp"))
    store.write("Boot0001", _option("cloud-boot debian"))
    store.write("Boot0002", _option("debian"))
    store.write("Boot0003", _option("cloud-boot old"))
    store.set_boot_order([1, 0, 3, 2])
    store.write("BootNext", b"\x03\x00")
    store.write("CloudBootCmdline", b"console=ttyS0", efivars.CLOUDBOOT)
    store.write("CloudBootTarget", b"t", efivars.CLOUDBOOT)
    return store


def test_efivarfs_files(tmp_path: Path) -> None:
    store = _fake_vars(tmp_path)
    raw = (tmp_path / f"BootOrder-{G}").read_bytes()
    assert raw == bytes.fromhex("07000000") + bytes.fromhex("0100000003000200")  # one write: attributes + data
    assert store.boot_order() == [1, 0, 3, 2]
    assert store.ours() == [1, 3] and sorted(store.boot_entries()) == [0, 1, 2, 3]
    store.set_boot_order([2])  # shorter than before: nothing of the old value may remain
    assert (tmp_path / f"BootOrder-{G}").read_bytes() == bytes.fromhex("070000000200")
    assert store.read("Nope") is None and not store.delete("Nope")
    (tmp_path / f"Broken-{G}").write_bytes(b"")  # efivarfs shows a variable removed behind its back so
    assert store.read("Broken") is None


def test_immutable_variables_are_made_writable(tmp_path: Path) -> None:
    """efivarfs marks variables it does not know immutable (chattr +i); writes and deletes clear the flag first
    (checked on the test directory's filesystem, when it has the flag: ext4 does, tmpfs does not)."""
    store = efivars.Efivarfs(str(tmp_path))
    store.write("CloudBootTarget", b"a", efivars.CLOUDBOOT)
    path = store.path("CloudBootTarget", efivars.CLOUDBOOT)
    if subprocess.run(["chattr", "+i", path], capture_output=True).returncode != 0:
        pytest.skip("no immutable flag on this filesystem")
    try:
        store.write("CloudBootTarget", b"b", efivars.CLOUDBOOT)
        assert store.read("CloudBootTarget", efivars.CLOUDBOOT) == (efivars.NV_BS_RT, b"b")
        subprocess.run(["chattr", "+i", path], check=True)
        assert store.delete("CloudBootTarget", efivars.CLOUDBOOT) and not os.path.exists(path)
    finally:
        subprocess.run(["chattr", "-i", path], capture_output=True)


def test_reset_removes_only_ours(tmp_path: Path) -> None:
    store = _fake_vars(tmp_path)
    done = efivars.reset(store)
    assert done == ["deleted Boot0001", "deleted Boot0003", "BootOrder 0001,0000,0003,0002 -> 0000,0002",
                    "deleted BootNext", "deleted CloudBootCmdline", "deleted CloudBootTarget"]
    assert sorted(store.boot_entries()) == [0, 2] and store.boot_order() == [0, 2]
    assert efivars.reset(store) == []  # idempotent
    store.write("Boot0002", _option("cloud-boot only"))
    store.set_boot_order([2])
    assert efivars.reset(store, [2]) == ["deleted Boot0002", "BootOrder 0002 -> (empty)"]
    assert store.read("BootOrder") is None


def _busybox() -> Path | None:
    from cloudboot.initramfs import debian

    try:
        archive = debian.Archive("amd64")
        return archive.unpack(archive.fetch(["busybox-static"])[0]) / "usr/bin/busybox"
    except Exception:  # noqa: BLE001 - no archive here: the dash run still checks the script
        return None


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_reset_script_matches_python(tmp_path: Path, shell: str) -> None:
    """The shipped sh script does what `efivars.reset` does, under dash and under busybox's ash (the
    target-side shells), on the same variables; its output lines are the same."""
    if os.geteuid() != 0:
        pytest.skip("the script checks for root")
    if shell == "busybox":
        bb = _busybox()
        if bb is None:
            pytest.skip("busybox-static not available")
        bindir = tmp_path / "bin"
        bindir.mkdir()
        for applet in "sh od tr sed dd wc rm ls id chattr mount printf cat cut".split():
            (bindir / applet).symlink_to(bb)
        cmd, env_path = [str(bindir / "sh")], str(bindir)
    else:
        cmd, env_path = ["dash"], os.environ["PATH"]
    script = tmp_path / "reset.sh"
    script.write_text(efivars.reset_script())
    py_dir, sh_dir = tmp_path / "py", tmp_path / "sh"
    for d in (py_dir, sh_dir):
        d.mkdir()
        _fake_vars(d)
    want = efivars.reset(efivars.Efivarfs(str(py_dir)))
    proc = subprocess.run([*cmd, str(script)], env={"PATH": env_path, "EFIVARS": str(sh_dir), "TMPDIR": str(tmp_path)},
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [*want, "next boot: the firmware's next boot entry (the boot medium)"]
    assert sorted(os.listdir(sh_dir)) == sorted(os.listdir(py_dir))
    for name in os.listdir(py_dir):
        assert (sh_dir / name).read_bytes() == (py_dir / name).read_bytes(), name
    again = subprocess.run([*cmd, str(script)], env={"PATH": env_path, "EFIVARS": str(sh_dir)}, capture_output=True,
                           text=True)
    assert again.returncode == 0 and "no cloud-boot boot entry found" in again.stdout
    bad = subprocess.run([*cmd, str(script), "--bogus"], env={"PATH": env_path}, capture_output=True, text=True)
    assert bad.returncode == 64 and "usage:" in bad.stderr
    # BOOTNUM picks one entry whatever its description (the original script's knob).
    efivars.Efivarfs(str(sh_dir)).set_boot_order([0, 2])
    proc = subprocess.run([*cmd, str(script)], env={"PATH": env_path, "EFIVARS": str(sh_dir), "BOOTNUM": "0002"},
                          capture_output=True, text=True)
    assert proc.stdout.splitlines()[:2] == ["deleted Boot0002", "BootOrder 0000,0002 -> 0000"], proc.stdout
    assert efivars.Efivarfs(str(sh_dir)).boot_order() == [0]


def test_reset_command(tmp_path: Path, capsys) -> None:
    from cloudboot.cli import main as cli

    _fake_vars(tmp_path)
    assert cli(["reset", "--efivars", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "deleted Boot0001" in out and "BootOrder 0001,0000,0003,0002 -> 0000,0002" in out
    assert cli(["reset", "--efivars", str(tmp_path / "missing"), "--json"]) == 1
    assert "cannot list EFI variables" in capsys.readouterr().err
    assert cli(["reset", "--print-script"]) == 0
    assert capsys.readouterr().out == efivars.reset_script()


# ---- staging -----------------------------------------------------------------------------------------------

def test_sanitise_and_paths() -> None:
    assert reboot.sanitize("debian-cloud") == "debian-cloud"
    assert reboot.sanitize("../escape me/.. ") == ".._escape_me_.._"  # REFERENCE §5.2
    assert reboot.sanitize("café/ü") == "caf___"
    assert reboot.firmware_paths("debian-cloud", True) == ("\\EFI\\Linux\\debian-cloud-vmlinuz.efi",
                                                           "\\EFI\\Linux\\debian-cloud-initrd")
    assert reboot.firmware_paths(".._escape_me_.._", False) == ("\\EFI\\Linux\\.._escape_me_.._-vmlinuz.efi", "")


def _files(tmp_path: Path, kernel: bytes = b"K" * 5000, initrd: bytes | None = b"I" * 3000) -> tuple[str, str | None]:
    k = tmp_path / "kernel"
    k.write_bytes(kernel)
    if initrd is None:
        return str(k), None
    i = tmp_path / "initrd"
    i.write_bytes(initrd)
    return str(k), str(i)


def test_stage_writes_whole_files_and_cleans_leftovers(tmp_path: Path) -> None:
    root = tmp_path / "esp"
    (root / "EFI/Linux").mkdir(parents=True)
    (root / "EFI/Linux/old-vmlinuz.efi.part").write_bytes(b"half")  # a power cut's leftover
    (root / "EFI/Linux/keep.efi").write_bytes(b"other")
    kernel, initrd = _files(tmp_path)
    assert reboot.stage(str(root), "debian cloud", kernel, initrd) == ("\\EFI\\Linux\\debian_cloud-vmlinuz.efi",
                                                                      "\\EFI\\Linux\\debian_cloud-initrd")
    assert sorted(os.listdir(root / "EFI/Linux")) == ["debian_cloud-initrd", "debian_cloud-vmlinuz.efi", "keep.efi"]
    assert (root / "EFI/Linux/debian_cloud-vmlinuz.efi").read_bytes() == b"K" * 5000
    kernel2, _ = _files(tmp_path, b"N" * 10, None)
    assert reboot.stage(str(root), "debian cloud", kernel2, None)[1] == ""  # no initrd: none written
    assert (root / "EFI/Linux/debian_cloud-vmlinuz.efi").read_bytes() == b"N" * 10


def test_stage_when_the_esp_is_full(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "esp"
    root.mkdir()
    kernel, initrd = _files(tmp_path)
    real = os.statvfs(tmp_path)

    class Full:
        f_bavail, f_frsize, f_bsize = 2, 4096, 4096

    monkeypatch.setattr(reboot.os, "statvfs", lambda p: Full)
    with pytest.raises(InitError, match=r"the cache ESP has 0 MiB free, staging 't' needs 0 MiB \(kernel 5000 bytes, "
                                        r"initrd 3000 bytes\): make a bigger cache disk"):
        reboot.stage(str(root), "t", kernel, initrd)
    assert os.listdir(root / "EFI/Linux") == []
    # statvfs said yes, the disk said no (ENOSPC when the initrd's .part is synced): nothing was renamed, the
    # old pair of the same target is whole and untouched, no .part is left.
    monkeypatch.setattr(reboot.os, "statvfs", lambda p: real)
    (root / "EFI/Linux/t-vmlinuz.efi").write_bytes(b"old kernel")
    (root / "EFI/Linux/t-initrd").write_bytes(b"old initrd")
    real_fsync, calls = os.fsync, []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(reboot.os, "fsync", fsync)
    with pytest.raises(InitError, match="staging 't' on the cache ESP failed: the cache ESP is full"):
        reboot.stage(str(root), "t", kernel, initrd)
    assert sorted(os.listdir(root / "EFI/Linux")) == ["t-initrd", "t-vmlinuz.efi"]
    assert (root / "EFI/Linux/t-vmlinuz.efi").read_bytes() == b"old kernel"
    assert (root / "EFI/Linux/t-initrd").read_bytes() == b"old initrd"
    monkeypatch.setattr(reboot.os, "fsync", real_fsync)
    reboot.stage(str(root), "t", kernel, initrd)  # and then it works: both replaced
    assert (root / "EFI/Linux/t-initrd").read_bytes() == b"I" * 3000


def _pe(machine: int, size: int = 4096) -> bytes:
    head = bytearray(size)
    head[:2] = b"MZ"
    struct.pack_into("<I", head, 0x3C, 0x80)
    head[0x80:0x86] = b"PE\0\0" + struct.pack("<H", machine)
    return bytes(head)


def test_bootable_kernel(tmp_path: Path) -> None:
    k = tmp_path / "k"
    k.write_bytes(_pe(0x8664))
    assert reboot.bootable_kernel(str(k), "x86_64", str(tmp_path)) == str(k)
    with pytest.raises(InitError, match="is a PE image for x86_64, this machine is aarch64"):
        reboot.bootable_kernel(str(k), "aarch64", str(tmp_path))
    k.write_bytes(gzip.compress(_pe(0xAA64)))  # a gzip'ed EFI-stub Image: unpacked for the firmware
    out = reboot.bootable_kernel(str(k), "arm64", str(tmp_path))
    assert out != str(k) and Path(out).read_bytes() == _pe(0xAA64)
    k.write_bytes(b"\x7fELF" + bytes(100))
    with pytest.raises(InitError, match="not an EFI-stub kernel .* an ELF file"):
        reboot.bootable_kernel(str(k), "x86_64", str(tmp_path))
    k.write_bytes(b"\x1f\x8b" + bytes(20))
    with pytest.raises(InitError, match="the gzip kernel .* does not unpack"):
        reboot.bootable_kernel(str(k), "x86_64", str(tmp_path))


def test_entry_number(tmp_path: Path) -> None:
    store = efivars.Efivarfs(str(tmp_path))
    assert reboot.entry_number(store) == (1, "free")
    store.write("Boot0001", _option("UEFI Misc Device"))
    store.write("Boot0002", _option("UiApp"))
    assert reboot.entry_number(store) == (3, "Boot0001 is taken by another entry")
    store.write("Boot0005", _option("cloud-boot x"))
    assert reboot.entry_number(store) == (5, "our earlier entry")
    assert reboot.entry_number(store, "00aB") == (0xAB, "cloudboot.reboot.bootnum")


# ---- cache ESP discovery -------------------------------------------------------------------------------------

def _disk(path: Path, parts: list[tuple[uuid.UUID, str]]) -> Path:
    """A 4 MiB GPT image with the given (type, name) partitions, 1 MiB each from LBA 2048."""
    image = bytearray(4 << 20)
    gpt.write_gpt(image, [gpt.Partition(t, 2048 + 2048 * i, 2048 + 2048 * i + 2047, n) for i, (t, n) in
                          enumerate(parts)], path.name.encode())
    path.write_bytes(image)
    return path


def _sysfs(root: Path, disk: Path, count: int) -> None:
    for n in range(1, count + 1):
        d = root / disk.name / f"{disk.name}{n}"
        d.mkdir(parents=True)
        (d / "partition").write_text(f"{n}\n")


def test_esp_discovery(tmp_path: Path, capsys) -> None:
    sysfs = tmp_path / "sys"
    data = _disk(tmp_path / "vda", [(gpt.BASIC_DATA_TYPE, "root")])
    plain = _disk(tmp_path / "vdb", [(gpt.BASIC_DATA_TYPE, "x"), (gpt.ESP_TYPE, "")])
    cache = _disk(tmp_path / "vdc", [(gpt.ESP_TYPE, esp.CACHE_NAME)])
    other = _disk(tmp_path / "vdd", [(gpt.ESP_TYPE, "EFI system partition")])
    junk = tmp_path / "vde"
    junk.write_bytes(bytes(1 << 20))
    for d, n in ((data, 1), (plain, 2), (cache, 1), (other, 1)):
        _sysfs(sysfs, d, n)

    def find(*disks: Path) -> esp.Esp:
        return esp.find(lambda: [str(d) for d in disks], 0, str(sysfs), "/dev")

    chosen = find(data, plain, cache, other, junk)  # the named one wins over unnamed ones
    assert (chosen.device, chosen.number, chosen.start_lba, chosen.size_lba) == ("/dev/vdc1", 1, 2048, 2048)
    assert chosen.hd()[3] == chosen.part_guid and chosen.sector_size == 512
    capsys.readouterr()
    only = find(data, plain, junk)  # one unnamed ESP: used, with a warning
    assert (only.device, only.number, only.start_lba) == ("/dev/vdb2", 2, 4096)
    warning = "WARNING: no partition named cloud-boot-cache; using the only EFI System Partition"
    assert warning in capsys.readouterr().out
    with pytest.raises(InitError, match=r"2 EFI System Partitions and none named cloud-boot-cache .* attach a cache "
                                        r"disk made by `cloud-boot cache-disk PATH`"):
        find(plain, other)
    with pytest.raises(InitError, match=r"no EFI System Partition on any disk \(seen: .*vda: gpt; .*vde: no partition "
                                        r"table\): attach a cache disk"):
        find(data, junk)
    twin = _disk(tmp_path / "vdf", [(gpt.ESP_TYPE, esp.CACHE_NAME)])
    _sysfs(sysfs, twin, 1)
    with pytest.raises(InitError, match="several partitions are named cloud-boot-cache"):
        find(cache, twin)


def test_cache_disk_is_found(tmp_path: Path) -> None:
    """`cloud-boot cache-disk` output is what discovery looks for, with the HD() values of its GPT."""
    from cloudboot.image import cachedisk

    img = tmp_path / "vdb"
    cachedisk.make(img, 64)
    _sysfs(tmp_path / "sys", img, 1)
    found = esp.find(lambda: [str(img)], 0, str(tmp_path / "sys"), "/dev")
    info = cachedisk.describe(img)
    assert found.hd() == (1, 2048, 64 * 2048 - 2048 - 33, info["partition"]["guid"])


# ---- the sink end to end (fake ESP, fake efivarfs) ------------------------------------------------------------

@pytest.fixture
def sink(tmp_path: Path, monkeypatch):
    """run(target, cmd) with the ESP a directory, efivarfs a directory, reboot recorded."""
    root = tmp_path / "esp"
    root.mkdir()
    store = efivars.Efivarfs(str(tmp_path / "vars"))
    os.mkdir(store.root)
    store.write("Boot0000", _option("UiApp"))
    store.write("Boot0001", _option("UEFI Misc Device"))
    store.set_boot_order([0, 1])
    part = esp.Esp("/dev/vdb", "/dev/vdb1", 1, 2048, 522207, PART_GUID, esp.CACHE_NAME, 512)
    events: list[str] = []
    monkeypatch.setattr(esp, "find", lambda disks_fn, wait: part)
    monkeypatch.setattr(esp, "mount", lambda p: events.append("mount") or str(root))
    monkeypatch.setattr(esp, "unmount", lambda p: events.append("umount"))
    kernel = tmp_path / "kernel"
    kernel.write_bytes(_pe(0x8664, 9000))
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"initrd" * 100)
    target = Target(str(kernel), str(initrd), "console=ttyS0 quiet", "test", name="deb ian", exit="reboot")

    def run(cmd: dict[str, str]) -> None:
        reboot.run(target, cmd, str(tmp_path), lambda: [], store.root, "x86_64",
                   reboot=lambda how: events.append(f"reboot {how:#x}"))

    return run, store, root, events


def test_sink_stages_then_writes_the_entry_then_reboots(sink, capsys) -> None:
    run, store, root, events = sink
    with pytest.raises(InitError, match="returned"):  # our fake reboot returns; the real one does not
        run({})
    assert events == ["mount", "umount", f"reboot {0x01234567:#x}"]
    assert (root / "EFI/Linux/deb_ian-vmlinuz.efi").read_bytes()[:2] == b"MZ"
    assert store.boot_order() == [2, 0, 1]  # Boot0001 is another entry's: ours is the lowest free number
    entry = store.read("Boot0002")[1]
    assert entry == efivars.boot_entry("deb ian", "\\EFI\\Linux\\deb_ian-vmlinuz.efi", "\\EFI\\Linux\\deb_ian-initrd",
                                       "console=ttyS0 quiet", (1, 2048, 522207, PART_GUID))
    out = capsys.readouterr().out
    for line in ("reboot-sink: target=deb ian kernel=", "reboot-sink: cmdline=console=ttyS0 quiet",
                 "reboot-sink: staged kernel=\\EFI\\Linux\\deb_ian-vmlinuz.efi initrd=\\EFI\\Linux\\deb_ian-initrd",
                 f"reboot-sink: Boot0002 written ({len(entry)} bytes)", "reboot-sink: BootOrder prefixed with 0002",
                 "reboot-sink: rebooting"):
        assert line in out, line
    assert out.index("staged kernel=") < out.index("Boot0002 written")
    events.clear()
    with pytest.raises(InitError, match="returned"):  # staging again: same entry, order unchanged, nothing written
        run({})
    out = capsys.readouterr().out
    assert store.boot_order() == [2, 0, 1] and "BootOrder already starts with 0002" in out
    assert f"Boot0002 already holds this entry ({len(entry)} bytes)" in out


def test_sink_boot_next(sink) -> None:
    run, store, _, events = sink
    with pytest.raises(InitError, match="returned"):
        run({"cloudboot.reboot.next": "1", "cloudboot.reboot.bootnum": "0001"})  # and over Boot0001, as asked
    assert store.read("BootNext")[1] == b"\x01\x00" and store.boot_order() == [0, 1]
    assert efivars.parse_load_option(store.read("Boot0001")[1])["description"] == "cloud-boot deb ian"


def test_sink_when_efivarfs_is_not_writable(sink, monkeypatch) -> None:
    run, store, root, events = sink
    real = efivars.Efivarfs.write

    def refuse(self, name, data, guid=G, attributes=efivars.NV_BS_RT):
        if name.startswith("Boot"):
            raise efivars.EfiVarError(errno.EROFS, f"cannot write EFI variable {name}: Read-only file system")
        return real(self, name, data, guid, attributes)

    monkeypatch.setattr(efivars.Efivarfs, "write", refuse)
    with pytest.raises(InitError, match="cannot write EFI variable Boot0002: Read-only file system; the staged files "
                                        "stay on the cache ESP and the boot order is as it was"):
        run({})
    assert events == ["mount", "umount"]  # no reboot
    assert store.boot_order() == [0, 1] and (root / "EFI/Linux/deb_ian-initrd").exists()


def test_sink_without_efivars(sink, tmp_path: Path) -> None:
    run, store, root, events = sink
    shutil.rmtree(store.root)
    with pytest.raises(InitError, match="cannot list EFI variables|cannot read EFI variable"):
        run({})
    assert events == []  # nothing staged before the variables were checked
