"""FAT EFI System Partition images built with pyfatfs (no root, no loop devices, no mtools)."""

from __future__ import annotations

import hashlib
import os
import struct
import warnings
from pathlib import Path

from cloudboot.errors import CloudBootError
from cloudboot.image.clock import frozen_clock

MIB = 1 << 20
#: OVMF rejects a FAT32 with fewer than 65,525 clusters, so small ESPs are FAT16 (REFERENCE §6.2).
FAT32_FROM = 512 * MIB


def esp_size(payload_bytes: int) -> int:
    """The original's multi-arch rule: payload x 3/2 + 8 MiB, rounded up to 16 MiB."""
    size = payload_bytes * 3 // 2 + 8 * MIB
    return (size + 16 * MIB - 1) // (16 * MIB) * (16 * MIB)


def build_esp(files: dict[str, bytes], size: int | None = None, label: str = "ESP") -> bytes:
    """A FAT image holding `files` (destination path -> bytes), e.g. {'EFI/BOOT/BOOTX64.EFI': b'MZ...'}."""
    with warnings.catch_warnings():  # pyfatfs's `fs` dependency imports the deprecated pkg_resources
        warnings.simplefilter("ignore")
        from pyfatfs.PyFat import PyFat
        from pyfatfs.PyFatFS import PyFatFS

    payload = sum(len(d) for d in files.values())
    size = size or esp_size(payload)
    if payload + MIB > size:
        raise CloudBootError(f"ESP of {size} bytes cannot hold {payload} bytes of files")
    fat_type = PyFat.FAT_TYPE_FAT32 if size >= FAT32_FROM else PyFat.FAT_TYPE_FAT16
    # A volume id derived from the content keeps the image reproducible.
    digest = hashlib.sha256(b"".join(k.encode() + v for k, v in sorted(files.items()))).digest()
    volume_id = struct.unpack("<I", digest[:4])[0] or 1
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"cloudboot-esp-{os.getpid()}-{digest[:4].hex()}.img"
    try:
        with open(tmp, "wb") as f:
            f.truncate(size)
        with frozen_clock():
            pf = PyFat()
            pf.mkfs(str(tmp), fat_type, size=size, label=label, volume_id=volume_id)
            pf.close()
            fs = PyFatFS(str(tmp), encoding="ascii")
            try:
                for dest in sorted(files):
                    parent = "/" + "/".join(dest.strip("/").split("/")[:-1])
                    if parent != "/":
                        fs.makedirs(parent, recreate=True)
                    with fs.openbin("/" + dest.strip("/"), "wb") as out:
                        out.write(files[dest])
            finally:
                fs.close()
        image = bytearray(tmp.read_bytes())
    finally:
        tmp.unlink(missing_ok=True)
    # pyfatfs leaves the BPB's CHS geometry zero, which mtools (and some firmware) refuse.
    struct.pack_into("<HH", image, 0x18, 63, 255)
    return bytes(image)
