"""Hybrid ISO/GPT images, checked with xorriso, isoinfo, sgdisk, fdisk, fsck.vfat and mtools as oracles."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cloudboot.fwbuild.hello import build_hello

ARCHES = {"amd64": "x86_64", "arm64": "aarch64", "riscv64": "riscv64", "loong64": "loongarch64"}
BOOT_NAMES = {"x86_64": "BOOTX64.EFI", "aarch64": "BOOTAA64.EFI", "riscv64": "BOOTRISCV64.EFI",
              "loongarch64": "BOOTLOONGARCH64.EFI"}


@pytest.fixture(scope="module")
def hellos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("hello")
    return {deb: build_hello(arch, out) for deb, arch in ARCHES.items()}


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cloudboot", *args], capture_output=True, text=True, env=env)


def _build(tmp_path: Path, hellos: dict[str, Path], name: str = "boot.iso", env: dict | None = None,
           extra: tuple[str, ...] = ()) -> Path:
    out = tmp_path / name
    args = [a for deb, p in hellos.items() for a in ("--efi", f"linux/{deb}={p}")]
    proc = _cli("iso", *args, *extra, "-o", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    return out


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout


def _partition(iso: Path, n: int) -> tuple[str, int, int]:
    info = _run("sgdisk", "-i", str(n), str(iso))
    guid = re.search(r"Partition GUID code: (\S+)", info).group(1)
    first = int(re.search(r"First sector: (\d+)", info).group(1))
    last = int(re.search(r"Last sector: (\d+)", info).group(1))
    return guid, first, last


def test_el_torito_image_is_gpt_partition_2(tmp_path: Path, hellos: dict[str, Path]) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("console=ttyS0\n")
    iso = _build(tmp_path, hellos, extra=("--extra", f"{cmdline}=cmdline", "--extra",
                                          f"{hellos['amd64']}=EFI/Linux/cloud-boot.efi"))
    data = iso.read_bytes()
    assert data[510:512] == b"\x55\xaa" and len(data) % 2048 == 0
    report = _run("xorriso", "-indev", str(iso), "-report_el_torito", "plain")
    assert "Volume id    : 'CLOUDBOOT'" in report
    m = re.search(r"El Torito boot img :\s+1\s+UEFI\s+y\s+none\s+\S+\s+\S+\s+(\d+)\s+(\d+)", report)
    assert m, report
    sectors, lba = int(m.group(1)), int(m.group(2))
    assert "No problems found" in _run("sgdisk", "-v", str(iso))
    fdisk = _run("fdisk", "-l", str(iso))
    assert "Disklabel type: gpt" in fdisk and "EFI System" in fdisk, fdisk
    guid, first, last = _partition(iso, 2)
    assert guid == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    assert first == lba * 4 and last - first + 1 == sectors
    # xorriso extracts the El Torito image (by the catalog) and GPT partition 2 (by the GPT): the same bytes.
    out = tmp_path / "boot-images"
    out.mkdir()
    _run("xorriso", "-osirrox", "on", "-indev", str(iso), "-extract_boot_images", f"{out}/")
    eltorito = (out / "eltorito_img1_uefi.img").read_bytes()
    assert eltorito == (out / "gpt_part2_efi.img").read_bytes() == data[first * 512:(last + 1) * 512]
    fsck = subprocess.run(["fsck.vfat", "-n", str(out / "gpt_part2_efi.img")], capture_output=True, text=True)
    assert fsck.returncode == 0 and "differences" not in fsck.stdout, fsck.stdout + fsck.stderr
    listing = _run("mdir", "-b", "-i", f"{iso}@@{first * 512}", "::/EFI/BOOT")
    assert sorted(line.rsplit("/", 1)[-1] for line in listing.split()) == sorted(BOOT_NAMES.values())
    for deb, arch in ARCHES.items():
        got = subprocess.run(["mtype", "-i", f"{iso}@@{first * 512}", f"::/EFI/BOOT/{BOOT_NAMES[arch]}"],
                             capture_output=True).stdout
        assert got == hellos[deb].read_bytes(), arch
    assert subprocess.run(["mtype", "-i", f"{iso}@@{first * 512}", "::/cmdline"],
                          capture_output=True).stdout == b"console=ttyS0\n"
    # ISO9660 with Joliet and Rock Ridge (isoinfo from genisoimage as the second reader).
    desc = _run("isoinfo", "-d", "-i", str(iso))
    assert "Volume id: CLOUDBOOT" in desc and "Joliet with UCS level 3 found" in desc
    assert "Rock Ridge signatures version 1 found" in desc
    assert "/README.txt" in _run("isoinfo", "-J", "-f", "-i", str(iso)).split()
    assert "/README.txt" in _run("isoinfo", "-R", "-f", "-i", str(iso)).split()


def test_large_esp_gets_sector_count_0(tmp_path: Path, hellos: dict[str, Path]) -> None:
    """EDK2 counts an EFI no-emulation entry in 2 KiB blocks: over 0xFFFF the count must be 0 ("to the end of
    the volume", as xorriso writes it), never a cap that cuts the ESP short. The boot test is in
    test_iso_boot.py."""
    from cloudboot.image.iso import eltorito_sectors

    assert eltorito_sectors(32 * 1024 * 1024 - 512) == 0xFFFF and eltorito_sectors(32 * 1024 * 1024) == 0
    iso = _build(tmp_path, {"amd64": hellos["amd64"]}, extra=("--esp-size", "48M"))
    report = _run("xorriso", "-indev", str(iso), "-report_el_torito", "plain")
    assert re.search(r"El Torito boot img :\s+1\s+UEFI\s+y\s+none\s+0x0000\s+0x00\s+0\s+\d+", report), report
    assert "El Torito img path :   1  /boot/esp.img" in report
    out = tmp_path / "boot-images"
    out.mkdir()
    _run("xorriso", "-osirrox", "on", "-indev", str(iso), "-extract_boot_images", f"{out}/")
    assert (out / "eltorito_img1_uefi.img").stat().st_size == 48 * 1024 * 1024  # all of the ESP
    assert (out / "eltorito_img1_uefi.img").read_bytes() == (out / "gpt_part2_efi.img").read_bytes()


def test_reproducible_with_source_date_epoch(tmp_path: Path, hellos: dict[str, Path]) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    a = _build(tmp_path, hellos, "a.iso", env)
    b = _build(tmp_path, hellos, "b.iso", env)
    assert a.read_bytes() == b.read_bytes()
    assert "Creation Time: 2023111422132000" in _run("xorriso", "-indev", str(a), "-pvd_info")
    c = _build(tmp_path, hellos, "c.iso", {**env, "SOURCE_DATE_EPOCH": "1700000002"})
    assert c.read_bytes() != a.read_bytes()


@pytest.mark.parametrize(("args", "message"), [
    (["--efi", "linux/sparc=x.efi"], "cloud-boot: error: unknown architecture 'sparc': use one of x86_64"),
    (["--efi", "amd64=x.efi"], "invalid --efi platform 'amd64' (want linux/<arch>)"),
    (["--efi", "linux/amd64"], "invalid --efi 'linux/amd64' (want linux/<arch>=<path>)"),
    (["--efi", "linux/loong64=a.efi", "--efi", "linux/loongarch64=b.efi"],
     "duplicate EFI input for loongarch64"),
    (["--efi", "linux/amd64=/nonexistent.efi"], "/nonexistent.efi: no such file"),
    (["--efi", "linux/amd64=/"], "/: not a regular file"),
    (["--from-build", "-o", "/nonexistent-dir/boot.iso"], "the directory /nonexistent-dir does not exist"),
    (["--extra", "x"], "invalid --extra 'x' (want SRC=DST"),
    ([], "no EFI inputs supplied"),
])
def test_bad_arguments_fail_clearly(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "x.iso"
    proc = _cli("iso", *args, *([] if "-o" in args else ["-o", str(out)]))
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def test_bad_inputs_fail_clearly(tmp_path: Path, hellos: dict[str, Path]) -> None:
    out = tmp_path / "x.iso"
    junk = tmp_path / "junk.efi"
    junk.write_bytes(b"not a pe")
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(20 << 20))
    amd64 = f"linux/amd64={hellos['amd64']}"
    for args, message in [
        (["--efi", f"linux/amd64={hellos['arm64']}"],
         "machine 0xaa64 (aarch64) is not x86_64's (0x8664)"),
        (["--efi", f"linux/riscv64={junk}"], "not a PE32+ image"),
        (["--efi", amd64, "--extra", f"{junk}=EFI/BOOT/BootX64.efi"], "would replace an EFI boot file"),
        (["--efi", amd64, "--extra", f"{junk}=../x"], "'..' is not a valid FAT file name"),
        (["--efi", amd64, "--extra", f"{big}=big", "--esp-size", "16M"], "cannot hold the files"),
        (["--efi", amd64, "--esp-size", "1M"], "must be a multiple of 512 between 8 MiB"),
    ]:
        proc = _cli("iso", *args, "-o", str(out))
        assert proc.returncode == 1 and message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and not out.exists() and not list(tmp_path.glob(".x.iso.*"))
    proc = _cli("iso", "--efi", amd64, "-o", str(tmp_path))
    assert proc.returncode == 1 and "is a directory" in proc.stderr
