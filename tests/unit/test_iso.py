"""Hybrid ISO/GPT images, checked with xorriso, sgdisk and fsck.vfat as oracles."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from cloudboot.fwbuild.hello import build_hello

ARCHES = {"amd64": "x86_64", "arm64": "aarch64", "riscv64": "riscv64", "loong64": "loongarch64"}


@pytest.fixture(scope="module")
def hellos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("hello")
    return {deb: build_hello(arch, out) for deb, arch in ARCHES.items()}


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cloudboot", *args], capture_output=True, text=True, env=env)


def _build(tmp_path: Path, hellos: dict[str, Path], name: str = "boot.iso", env: dict | None = None) -> Path:
    out = tmp_path / name
    args = [a for deb, p in hellos.items() for a in ("--efi", f"linux/{deb}={p}")]
    proc = _cli("iso", *args, "-o", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    return out


def test_el_torito_image_is_gpt_partition_2(tmp_path: Path, hellos: dict[str, Path]) -> None:
    iso = _build(tmp_path, hellos)
    data = iso.read_bytes()
    assert data[510:512] == b"\x55\xaa"
    report = subprocess.run(["xorriso", "-indev", str(iso), "-report_el_torito", "plain"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    assert "Volume id    : 'CLOUDBOOT'" in report
    m = re.search(r"El Torito boot img :\s+1\s+UEFI\s+y\s+none\s+\S+\s+\S+\s+(\d+)\s+(\d+)", report)
    assert m, report
    sectors, lba = int(m.group(1)), int(m.group(2))
    verify = subprocess.run(["sgdisk", "-v", str(iso)], capture_output=True, text=True).stdout
    assert "No problems found" in verify, verify
    info = subprocess.run(["sgdisk", "-i", "2", str(iso)], capture_output=True, text=True).stdout
    assert "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" in info
    first = int(re.search(r"First sector: (\d+)", info).group(1))
    last = int(re.search(r"Last sector: (\d+)", info).group(1))
    assert first == lba * 4 and last - first + 1 == sectors
    esp = data[first * 512:(last + 1) * 512]
    (tmp_path / "esp.img").write_bytes(esp)
    fsck = subprocess.run(["fsck.vfat", "-n", str(tmp_path / "esp.img")], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    for deb, arch in ARCHES.items():
        name = {"x86_64": "BOOTX64.EFI", "aarch64": "BOOTAA64.EFI", "riscv64": "BOOTRISCV64.EFI",
                "loongarch64": "BOOTLOONGARCH64.EFI"}[arch]
        got = subprocess.run(["mtype", "-i", f"{iso}@@{first * 512}", f"::/EFI/BOOT/{name}"],
                             capture_output=True).stdout
        assert got == hellos[deb].read_bytes(), name
    assert len(esp) == sectors * 512


def test_reproducible_with_source_date_epoch(tmp_path: Path, hellos: dict[str, Path]) -> None:
    import os

    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    a = _build(tmp_path, hellos, "a.iso", env)
    b = _build(tmp_path, hellos, "b.iso", env)
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize(("args", "message"), [
    (["--efi", "linux/sparc=x.efi"], "unsupported arch 'sparc'"),
    (["--efi", "amd64=x.efi"], "invalid --efi platform 'amd64' (want linux/<arch>)"),
    (["--efi", "linux/amd64"], "invalid --efi 'linux/amd64' (want linux/<arch>=<path>)"),
    (["--efi", "linux/loong64=a.efi", "--efi", "linux/loongarch64=b.efi"], "duplicate EFI input for loongarch64"),
    (["--efi", "linux/amd64=/nonexistent.efi"], "/nonexistent.efi: no such file"),
    (["--from-build", "-o", "/nonexistent-dir/boot.iso"], "the directory /nonexistent-dir does not exist"),
    ([], "no EFI inputs supplied"),
])
def test_bad_arguments_fail_clearly(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "x.iso"
    proc = _cli("iso", *args, *([] if "-o" in args else ["-o", str(out)]))
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def test_machine_mismatch_and_non_pe_refused(tmp_path: Path, hellos: dict[str, Path]) -> None:
    proc = _cli("iso", "--efi", f"linux/amd64={hellos['arm64']}", "-o", str(tmp_path / "x.iso"))
    assert proc.returncode == 1 and "does not match --arch x86_64" in proc.stderr
    junk = tmp_path / "junk.efi"
    junk.write_bytes(b"not a pe")
    proc = _cli("iso", "--efi", f"linux/riscv64={junk}", "-o", str(tmp_path / "x.iso"))
    assert proc.returncode == 1 and "not a PE32+ image" in proc.stderr
