"""Find EDK2 firmware the way libvirt does: through QEMU's firmware descriptors.

Descriptors (`*.json`, QEMU docs/interop/firmware.json) are read from `/etc/qemu/firmware`, the cache's
unpacked firmware packages and `/usr/share/qemu/firmware`; a descriptor found under an unpacked root has
its file names re-rooted there. `CLOUDBOOT_FIRMWARE_<ARCH>_CODE` / `_VARS` override everything.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import arches
from cloudboot.errors import CloudBootError

#: Features that would change what the firmware does to our unsigned app or to the machine model.
_AVOID = {"secure-boot", "enrolled-keys", "requires-smm"}


@dataclass(frozen=True)
class Firmware:
    """One usable EDK2 build: read-only CODE image and the VARS template to copy per VM."""

    arch: str
    code: Path
    vars: Path
    descriptor: Path | None = None


def _roots() -> list[Path]:
    from cloudboot.toolchain.qemu import firmware_root

    return [Path("/"), firmware_root()]


def _descriptor_dirs() -> list[tuple[Path, Path]]:
    """(root, dir) pairs in priority order: host config, cache-unpacked packages, system packages."""
    from cloudboot.toolchain.qemu import firmware_root

    return [(Path("/"), Path("/etc/qemu/firmware")),
            (firmware_root(), firmware_root() / "usr/share/qemu/firmware"),
            (Path("/"), Path("/usr/share/qemu/firmware"))]


def _candidates(arch: str, secure_boot: bool = False):
    seen: set[str] = set()
    for root, d in _descriptor_dirs():
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.json")):
            if f.name in seen and root == Path("/"):
                continue
            seen.add(f.name)
            try:
                desc = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if "uefi" not in desc.get("interface-types", []):
                continue
            if not any(t.get("architecture") == arch for t in desc.get("targets", [])):
                continue
            features = set(desc.get("features", []))
            if secure_boot:
                # Secure Boot capable, keys not pre-enrolled (tests enroll their own), no SMM machine needed.
                if "secure-boot" not in features or features & {"enrolled-keys", "requires-smm"}:
                    continue
            elif _AVOID & features:
                continue
            mapping = desc.get("mapping", {})
            if mapping.get("device") != "flash" or mapping.get("mode", "split") != "split":
                continue
            try:
                code = mapping["executable"]["filename"]
                nvram = mapping["nvram-template"]["filename"]
            except KeyError:
                continue
            yield Firmware(arch, _reroot(root, code), _reroot(root, nvram), f)


def _reroot(root: Path, filename: str) -> Path:
    return root / filename.lstrip("/") if root != Path("/") else Path(filename)


def find_firmware(arch: str, secure_boot: bool = False) -> Firmware:
    """The EDK2 CODE/VARS pair for arch, or a CloudBootError naming the package (or variable) to set.

    `secure_boot` asks for a build that enforces Secure Boot once keys are enrolled in its VARS."""
    target = arches.get(arch)
    arch = target.name
    key = f"CLOUDBOOT_FIRMWARE_{arch.upper()}"
    code, nvram = os.environ.get(f"{key}_CODE"), os.environ.get(f"{key}_VARS")
    if (code or nvram) and not secure_boot:
        if not (code and nvram):
            raise CloudBootError(f"set both {key}_CODE and {key}_VARS")
        for p in (code, nvram):
            if not Path(p).is_file():
                raise CloudBootError(f"{key}_*: firmware file {p} does not exist")
        return Firmware(arch, Path(code), Path(nvram))
    for fw in _candidates(arch, secure_boot):
        if fw.code.is_file() and fw.vars.is_file():
            return fw
    kind = "Secure Boot capable " if secure_boot else ""
    raise CloudBootError(f"no {kind}EDK2 firmware for {arch}: no usable descriptor in /usr/share/qemu/firmware "
                         f"(install the Debian package '{target.edk2_package}', run 'make deps', or set "
                         f"{key}_CODE and {key}_VARS)")
