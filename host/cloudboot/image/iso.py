"""Hybrid multi-arch boot image: ISO9660 (+ Joliet, Rock Ridge) with an El Torito EFI entry whose image is a
FAT ESP, and a GPT whose partition 2 (ESP type) covers exactly the same bytes, so the one file boots from
CD-ROM (El Torito) and as a disk (GPT ESP), and has 0x55AA at offset 510 (Apple VZ insists)."""

from __future__ import annotations

import hashlib
import io

from cloudboot.errors import CloudBootError
from cloudboot.image.clock import frozen_clock
from cloudboot.image.esp import build_esp, fat_info
from cloudboot.image.gpt import BASIC_DATA_TYPE, ENTRY_SECTORS, ESP_TYPE, SECTOR, Partition, write_gpt

VOLUME_ID = "CLOUDBOOT"
README = b"cloud-boot multi-arch bootable image: the boot files live in GPT partition 2 (the ESP).\n"
ESP_ISO_PATH = "/BOOT/ESP.IMG;1"


def eltorito_sectors(esp_size: int) -> int:
    """The El Torito entry's sector count (512-byte units) for an ESP of `esp_size` bytes: the size when it
    fits the 16-bit field, else 0, which EDK2 reads as "up to the end of the volume" (what xorriso writes
    too). EDK2 counts these in 2 KiB CD blocks, so a capped 0xFFFF cuts an ESP over 128 MiB short."""
    sectors = -(-esp_size // SECTOR)
    return sectors if sectors <= 0xFFFF else 0


def build_iso(efi_files: dict[str, bytes], extra: dict[str, bytes] | None = None,
              esp_size: int | None = None) -> tuple[bytes, dict]:
    """`efi_files` maps ESP paths (EFI/BOOT/BOOTX64.EFI...) to bytes; `extra` adds more ESP files (a path
    named in both is refused); `esp_size` overrides the ESP sizing rule.

    Returns the image and a layout dict (ESP offset and size, partition LBAs) for inspection and tests."""
    import pycdlib

    from cloudboot.image.esp import check_paths

    clash = {k.upper() for k in check_paths(efi_files)} & {k.upper() for k in check_paths(extra or {})}
    if clash:
        raise CloudBootError(f"extra ESP file {sorted(clash)[0]} would replace an EFI boot file")
    esp = build_esp({**efi_files, **(extra or {})}, esp_size)
    iso = pycdlib.PyCdlib()
    out = io.BytesIO()
    with frozen_clock():
        iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_ID, sys_ident="cloud-boot",
                app_ident_str="cloud-boot")
        iso.add_fp(io.BytesIO(README), len(README), "/README.TXT;1", rr_name="README.txt",
                   joliet_path="/README.txt")
        iso.add_directory("/BOOT", rr_name="boot", joliet_path="/boot")
        iso.add_fp(io.BytesIO(esp), len(esp), ESP_ISO_PATH, rr_name="esp.img", joliet_path="/boot/esp.img")
        iso.add_eltorito(ESP_ISO_PATH, bootcatfile="/BOOT/BOOT.CAT;1", rr_bootcatname="boot.cat",
                         joliet_bootcatfile="/boot/boot.cat", efi=True, platform_id=0xEF, media_name="noemul",
                         boot_load_size=eltorito_sectors(len(esp)))
        iso.write_fp(out)
        esp_lba2k = iso.get_record(iso_path=ESP_ISO_PATH).extent_location()
        iso.close()
    image = bytearray(out.getvalue())
    # Room for the backup GPT, keeping the image a whole number of 2 KiB CD sectors.
    tail = ENTRY_SECTORS * SECTOR + SECTOR
    image += bytes((len(image) + tail + 2047) // 2048 * 2048 - len(image))
    esp_first = esp_lba2k * 4
    esp_last = esp_first + len(esp) // SECTOR - 1
    parts = [Partition(BASIC_DATA_TYPE, 64, esp_first - 1, "ISO9660"),
             Partition(ESP_TYPE, esp_first, esp_last, "ESP")]
    write_gpt(image, parts, hashlib.sha256(image).digest())
    if image[esp_first * SECTOR:(esp_last + 1) * SECTOR] != esp:
        raise CloudBootError("internal error: GPT partition 2 does not hold the El Torito ESP image")
    layout = {"esp_offset": esp_first * SECTOR, "esp_size": len(esp), "size": len(image),
              "fat_type": fat_info(esp).fat_type, "eltorito_sectors": eltorito_sectors(len(esp)),
              "partitions": [(p.first_lba, p.last_lba) for p in parts]}
    return bytes(image), layout
