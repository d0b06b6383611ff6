"""The built firmware files (`make firmware`, which `make test` runs first): PE32+ facts and size budget."""

from __future__ import annotations

import subprocess
import sys

import pefile
import pytest

import arches
from cloudboot.fwbuild.firmware import firmware_dir

MAX_SIZE = 3 << 19  # issue 13: each BOOT<ARCH>.EFI with the network stack, TLS and CA roots <= 1.5 MiB


@pytest.mark.parametrize("arch", arches.NAMES)
def test_firmware_is_pe32plus_of_its_arch(arch: str) -> None:
    target = arches.get(arch)
    path = firmware_dir() / target.efi_name
    assert path.is_file(), f"{path} missing: run `make firmware`"
    size = path.stat().st_size
    assert size <= MAX_SIZE, f"{path.name} is {size} bytes, over the 1.5 MiB budget"
    pe = pefile.PE(str(path), fast_load=False)
    assert pe.OPTIONAL_HEADER.Magic == 0x20B
    assert pe.FILE_HEADER.Machine == target.pe_machine
    assert pe.OPTIONAL_HEADER.Subsystem == 10
    assert pe.OPTIONAL_HEADER.CheckSum == pe.generate_checksum()
    relocs = pe.OPTIONAL_HEADER.DATA_DIRECTORY[5]
    assert relocs.Size > 0, "no base relocations: the image could only load at its link address"
    assert not pe.get_warnings(), pe.get_warnings()


def test_unknown_arch_is_refused_naming_the_supported_ones() -> None:
    proc = subprocess.run([sys.executable, "-m", "cloudboot", "firmware", "--arch", "sparc"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("cloud-boot: error: argument --arch: unknown architecture 'sparc'")
    assert len(proc.stderr.splitlines()) == 1
    for arch in arches.NAMES:
        assert arch in proc.stderr
    assert "Traceback" not in proc.stderr


def test_manifest_freezes_bootplan_but_its_cpython_only_hcl() -> None:
    """bootplan.hcl needs python-hcl2 (the firmware evaluates plans pushed pre-parsed): every other bootplan
    module is frozen, so a new one cannot be forgotten."""
    from cloudboot.paths import MODULES_DIR, ROOT

    frozen: dict[str, list[str] | None] = {}
    manifest = (ROOT / "firmware/uefi_port/manifest.py").read_text()
    exec(manifest, {"package": lambda name, files=None, base_path=".": frozen.__setitem__(name, files),
                    "module": lambda *a, **k: None})
    have = sorted(p.name for p in (MODULES_DIR / "bootplan").glob("*.py"))
    assert sorted(frozen["bootplan"]) == [n for n in have if n != "hcl.py"]


def test_the_build_epoch_is_the_last_commits_time(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Firmware, initramfs and medium share one SOURCE_DATE_EPOCH default (the TLS clock's floor here), so a
    rebuild of the same commit on another day gives the same bytes."""
    import time

    from cloudboot.fwbuild import firmware

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    monkeypatch.setattr(firmware, "ROOT", tmp_path)
    today = int(time.time()) // 86400 * 86400
    assert firmware.build_epoch() in (today, today + 86400)  # not a git checkout: the start of today
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True,
                   env={"GIT_COMMITTER_DATE": "@1700000000 +0000", "PATH": "/usr/bin:/bin"})
    assert firmware.build_epoch() == 1700000000
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1800000000")
    assert firmware.build_epoch() == 1800000000
