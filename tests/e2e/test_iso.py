"""`make iso`'s image boots our firmware: from CD-ROM (El Torito) and as a disk (GPT ESP)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cloudboot.harness.repl import Repl
from tests.e2e.conftest import firmware_file

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def boot_iso(tmp_path_factory: pytest.TempPathFactory):
    for arch in ("x86_64", "aarch64", "riscv64", "loongarch64"):
        firmware_file(arch)
    out = tmp_path_factory.mktemp("iso") / "boot.iso"
    proc = subprocess.run([sys.executable, "-m", "cloudboot", "iso", "--from-build", "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize("as_disk", [False, True], ids=["cdrom", "disk"])
@pytest.mark.parametrize("arch", ["x86_64", "aarch64", "riscv64", "loongarch64"])
def test_iso_boots_firmware(boot_iso, machine, arch: str, as_disk: bool) -> None:
    m = machine(arch, iso=None if as_disk else boot_iso, disks=[boot_iso] if as_disk else [])
    repl = Repl(m)
    assert repl.wait_banner(120).endswith(arch)
    assert repl.exec("import uefi; print(uefi.ARCH)") == f"{arch}\n"
