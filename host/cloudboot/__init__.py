"""cloud-boot host package: builds the MicroPython UEFI firmware, images, and boots them under QEMU."""

__version__ = "0.1.0"
