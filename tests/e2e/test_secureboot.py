"""Secure Boot on EDK2 with our own key enrolled: the signed firmware boots (and sees SecureBoot=1), the
unsigned one is refused."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cloudboot.harness.machine import HarnessTimeout
from cloudboot.harness.repl import Repl
from cloudboot.harness.secureboot import secure_boot_firmware
from tests.e2e.conftest import firmware_file

pytestmark = pytest.mark.e2e
ARCH = "aarch64"  # its Secure Boot EDK2 needs no SMM machine model


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("keys")
    proc = subprocess.run([sys.executable, "-m", "cloudboot", "genkey", "-d", str(d)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    signed = d / "signed.efi"
    proc = subprocess.run([sys.executable, "-m", "cloudboot", "sign", str(firmware_file(ARCH)), "--key",
                           str(d / "db.key"), "--cert", str(d / "db.crt"), "-o", str(signed)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return d, signed, secure_boot_firmware(ARCH, d / "db.crt", d)


def test_signed_firmware_boots_under_secure_boot(keys, machine) -> None:
    _, signed, fw = keys
    m = machine(ARCH, efi=signed, append="cloudboot.repl", firmware=fw)
    repl = Repl(m)
    repl.wait_banner(120)
    out = repl.exec("import uefi\nprint(uefi.get_variable('SecureBoot', uefi.GLOBAL_VARIABLE))")
    assert out == "b'\\x01'\n"


def test_unsigned_firmware_is_refused(keys, machine) -> None:
    _, _, fw = keys
    m = machine(ARCH, efi=firmware_file(ARCH), append="cloudboot.repl", firmware=fw)
    with pytest.raises(HarnessTimeout):
        Repl(m).wait_banner(30)  # the signed image shows it in about a second
