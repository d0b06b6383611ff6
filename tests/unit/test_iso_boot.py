"""A hybrid ISO whose ESP is larger than the El Torito sector count can say (over 128 MiB, where EDK2 would
cut a capped 0xFFFF-block partition short) still boots our firmware, from CD-ROM and as a disk: the boot file
sits beyond the first 128 MiB of the ESP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cloudboot.harness.machine import Machine
from cloudboot.harness.repl import Repl
from tests.e2e.conftest import firmware_file

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def big_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bigiso")
    pad = d / "pad.bin"
    with open(pad, "wb") as f:
        f.truncate(140 << 20)  # written first (sorted paths), so the boot files land past 140 MiB
    out = d / "boot.iso"
    proc = subprocess.run([sys.executable, "-m", "cloudboot", "iso",
                           "--efi", f"linux/amd64={firmware_file('x86_64')}",
                           "--efi", f"linux/arm64={firmware_file('aarch64')}", "--extra", f"{pad}=A/PAD.BIN",
                           "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    pad.unlink()
    listing = subprocess.run(["xorriso", "-indev", str(out), "-report_el_torito", "plain"],
                             capture_output=True, text=True).stdout
    assert " 0x0000  0x00      0 " in listing, listing  # sector count 0: the whole ESP
    return out


@pytest.mark.parametrize(("arch", "as_disk"), [("x86_64", False), ("x86_64", True), ("aarch64", False)],
                         ids=["x86_64-cdrom", "x86_64-disk", "aarch64-cdrom"])
def test_large_esp_iso_boots(big_iso: Path, arch: str, as_disk: bool) -> None:
    with Machine(arch, iso=None if as_disk else big_iso, disks=[big_iso] if as_disk else []) as m:
        assert Repl(m).wait_banner(60).endswith(arch)
