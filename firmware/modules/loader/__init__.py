"""The firmware's boot cascade (firmware-only): UKI stub -> \\EFI\\Linux\\<target>.efi on FAT -> disks.

Each step prints what it found and why it wins or is skipped; the first bootable candidate is started.
"""

import uefi
from loader import uki
from uefi import fs, handoff

DEFAULT_TARGET = "cloud-boot"


def target_name():
    """CloudBootTarget (ASCII, at most 64 characters) or the default."""
    raw = uefi.get_variable("CloudBootTarget")
    name = "".join(chr(b) for b in raw[:64]).strip("\r\n \t\0") if raw else ""
    return name or DEFAULT_TARGET


def _cmdline_for(volume):
    """CloudBootCmdline wins over a \\cmdline file on the volume's root."""
    text = uefi.cmdline_variable()
    if text:
        return text, "CloudBootCmdline variable"
    if volume is not None and volume.exists("\\cmdline"):
        return volume.read("\\cmdline").decode().strip("\r\n \t\0"), "\\cmdline file"
    return "", "no command line"


def boot_uki():
    """Step (a): this image carries .linux (+ .initrd, .cmdline): boot them."""
    sections = uki.own_sections()
    if ".linux" not in sections:
        return False
    cmdline = uefi.cmdline_variable()
    why = "CloudBootCmdline variable"
    if not cmdline and ".cmdline" in sections:
        addr, size = sections[".cmdline"]
        cmdline, why = uki.text_at(addr, size), ".cmdline section"
    # Short lines: firmware terminals wrap at their column count (80 or 100).
    print("cloud-boot: UKI stub mode: .linux %d bytes, .initrd %d bytes" % (
        sections[".linux"][1], sections.get(".initrd", (0, 0))[1]))
    print("cloud-boot: command line from %s: %s" % (why, cmdline))
    handoff.start_image(*sections[".linux"], cmdline, sections.get(".initrd"), uefi.loaded_image().device_handle)
    return True


def boot_esp_target():
    """Step (b): \\EFI\\Linux\\<target>.efi on any FAT volume."""
    name = target_name()
    path = "\\EFI\\Linux\\%s.efi" % name
    for vol in fs.volumes():
        if not vol.exists(path):
            continue
        cmdline, why = _cmdline_for(vol)
        addr, size = vol.read_into_pages(path)
        print("cloud-boot: booting %s (%d bytes) from volume %x" % (path, size, vol.handle))
        print("cloud-boot: command line from %s: %s" % (why, cmdline))
        handoff.start_image(addr, size, cmdline, None, vol.handle)
        return True
    print("cloud-boot: no %s on any FAT volume (target %r)" % (path, name))
    return False


def run():
    """Try each step in order; returns (to the REPL) only if nothing could be booted."""
    for step in (boot_uki, boot_esp_target):
        try:
            if step():
                print("cloud-boot: %s: the image returned" % step.__name__)
        except OSError as exc:
            print("cloud-boot: %s failed: %s" % (step.__name__, exc))
    print("cloud-boot: nothing bootable found; entering the REPL")
