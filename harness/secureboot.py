"""Secure Boot for tests: a VARS image with our certificate enrolled as PK, KEK and db, Secure Boot on."""

from __future__ import annotations

import uuid
from pathlib import Path

from cloudboot.harness.firmware import Firmware, find_firmware
from cloudboot.run import run, which

#: Owner GUID of the enrolled entries (any fixed GUID will do; this one names cloud-boot).
OWNER = uuid.UUID("c10ddb07-83c5-4d3e-9b76-1f4c0e7a3b8e")


def secure_boot_firmware(arch: str, cert_pem: Path, workdir: Path) -> Firmware:
    """A Secure Boot capable EDK2 for arch whose VARS trust only `cert_pem` (PK, KEK and db)."""
    fw = find_firmware(arch, secure_boot=True)
    tool = which("virt-fw-vars", "enrolling test Secure Boot keys (make deps installs it)")
    out = workdir / f"sb-vars-{arch}.fd"
    run([tool, "-i", fw.vars, "-o", out, "--set-pk", str(OWNER), cert_pem, "--add-kek", str(OWNER), cert_pem,
         "--add-db", str(OWNER), cert_pem, "--sb"], quiet=True)
    return Firmware(arch, fw.code, out, fw.descriptor)
